"""The demo feed of `manage.py meta_sandbox`: new demo leads posted to the app as signed
leadgen webhooks, until the demo has SANDBOX_MAX_LEADS of them.

The Django side of the sandbox (it counts the app's leads), unlike `sandbox.demo` and
`sandbox.server`, which need neither Django nor the apps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models.functions import Length

from leads.models import Lead
from sandbox.demo import DEMO_PAGE_ID, DemoFeed, leadgen_delivery

logger = logging.getLogger("sandbox.feed")


def demo_leads() -> int:
    """How many leads of the demo page the app has, whichever run of the sandbox sent them."""
    return Lead.objects.filter(page__page_id=DEMO_PAGE_ID).count()


def next_demo_lead_id() -> int | None:
    """The id after the highest demo lead the app has, or None when it has none. A sandbox
    forgets its leads when it stops; without this, the next run would send the same ids
    again, and the app would rightly take them for duplicates."""
    highest = (
        Lead.objects.filter(page__page_id=DEMO_PAGE_ID)
        # Leadgen ids are digit strings without leading zeros (core.ids): they compare as
        # numbers once the longer one comes first.
        .order_by(Length("leadgen_id").desc(), "-leadgen_id")
        .values_list("leadgen_id", flat=True)
        .first()
    )
    return int(highest) + 1 if highest else None


@dataclass
class DemoFeeder:
    """Posts new demo leads, `post` being the webhook call (body -> HTTP status, 0 when
    the app is unreachable), and stops once the demo has `max_leads` (0: no limit)."""

    feed: DemoFeed
    post: Callable[[bytes], int]
    max_leads: int
    batch: bool = False
    # Whether the limit stopped the last round: the reason is logged once, not every round.
    full: bool = False

    def send(self, count: int) -> int:
        """Post up to `count` new leads; returns how many were posted."""
        if self.max_leads:
            have = demo_leads()
            count = min(count, self.max_leads - have)
            if count <= 0:
                if not self.full:
                    logger.info(
                        "The demo has %d leads (SANDBOX_MAX_LEADS=%d): no more are sent. "
                        "Those leads, moves and conversion events keep working; raise "
                        "SANDBOX_MAX_LEADS, or set it to 0 for no limit, to get more.",
                        have,
                        self.max_leads,
                    )
                self.full = True
                return 0
        self.full = False
        if count <= 0:
            return 0
        leads = self.feed.new_leads(count)
        groups = [leads] if self.batch else [[lead] for lead in leads]
        for group in groups:
            status = self.post(leadgen_delivery(group))
            logger.info("Sent %d demo lead(s): HTTP %s", len(group), status or "-")
        return len(leads)
