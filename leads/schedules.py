"""The django-q2 schedules this app relies on, created (or updated) on every `migrate`."""

from __future__ import annotations

from typing import Any


def ensure_schedules(**kwargs: Any) -> None:
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="leads: sweep lead fetches",
        defaults={
            "func": "leads.tasks.sweep_lead_fetches",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
