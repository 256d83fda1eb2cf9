"""django-q2 task entry points. They take ids only and delegate to services; each is safe
to run twice (claims and unique constraints make repeats no-ops)."""

from __future__ import annotations

import logging

from leads import fetching, queue

logger = logging.getLogger(__name__)


def fetch_leads(lead_pks: list[int]) -> None:
    fetching.fetch_many(lead_pks)


def sweep_lead_fetches() -> dict[str, int]:
    """Scheduled safety net (every minute): release claims of dead workers, resume pages
    whose token changed, and queue every lead whose fetch is due (deferred retries, and
    leads whose task was lost because the broker was down)."""
    released = fetching.release_stale_claims()
    due = fetching.due_lead_ids()
    for chunk in queue.chunks(due):
        queue.enqueue("leads.tasks.fetch_leads", chunk)
    # After the due list, so resumed leads (queued by resume itself) are not queued twice.
    resumed = fetching.resume_pages_with_new_tokens()
    if released or resumed or due:
        logger.info(
            "Lead fetch sweep: %d released, %d resumed, %d queued", released, resumed, len(due)
        )
    return {"released": released, "resumed": resumed, "queued": len(due)}
