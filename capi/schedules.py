"""The django-q2 schedule the Conversions API relies on, created (or updated) on every
`migrate`: a send run every minute, the safety net behind the on-commit task (a broker
outage, a deferred retry coming due, a token replaced while sending was paused, the lease
of a killed sender running out). Like any send run, it ends at once while another run is
the sender (capi.lease)."""

from __future__ import annotations

from typing import Any


def ensure_schedules(**kwargs: Any) -> None:
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="capi: send conversion events",
        defaults={
            "func": "capi.tasks.send_pending",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
