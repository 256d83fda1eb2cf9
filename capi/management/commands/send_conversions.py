"""`manage.py send_conversions`: send every due conversion event now and say what happened."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from capi import sending
from leads.graph import GraphClient


class Command(BaseCommand):
    help = "Send pending conversion events to Meta's Conversions API now."

    def handle(self, *args: Any, **options: Any) -> None:
        # No time budget (nothing kills a command), and a shared rate-limit pause of up to
        # a minute is waited out instead of ending the run.
        summary = sending.send_pending(client=GraphClient(max_wait=60.0), time_budget=None)
        self.stdout.write(
            f"{summary.sent} sent in {summary.posts} POSTs, {summary.failed} failed, "
            f"{summary.expired} expired, {summary.retrying} to retry, "
            f"{summary.waiting} waiting."
        )
        if summary.reason:
            self.stderr.write(f"Events are waiting: {summary.reason}")
