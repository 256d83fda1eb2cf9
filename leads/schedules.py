"""The django-q2 schedules this app relies on, created (or updated) on every `migrate`."""

from __future__ import annotations

from typing import Any


def ensure_schedules(**kwargs: Any) -> None:
    from django.conf import settings
    from django_q.models import Schedule

    # The safety net under the webhook: a bulk read of every connected form (and a refresh
    # of every connected page's forms), so a missed webhook costs minutes, not a lead.
    # RECONCILE_MINUTES=0 turns it off (sync_leads still works by hand).
    minutes = int(settings.RECONCILE_MINUTES)
    if minutes > 0:
        Schedule.objects.update_or_create(
            name="leads: reconcile leads",
            defaults={
                "func": "leads.tasks.reconcile_leads",
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )
    else:
        Schedule.objects.filter(name="leads: reconcile leads").delete()
    Schedule.objects.update_or_create(
        name="leads: sweep lead fetches",
        defaults={
            "func": "leads.tasks.sweep_lead_fetches",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
    # SQLite's planner statistics (core.db.sqlite.refresh_statistics); a no-op elsewhere.
    Schedule.objects.update_or_create(
        name="leads: refresh database statistics",
        defaults={
            "func": "leads.tasks.refresh_statistics",
            "schedule_type": Schedule.HOURLY,
            "repeats": -1,
        },
    )
    # Verified webhook deliveries after WEBHOOK_RETENTION_DAYS, those whose signature
    # failed after WEBHOOK_INVALID_RETENTION_DAYS (leads.retention).
    Schedule.objects.update_or_create(
        name="leads: prune webhook deliveries",
        defaults={
            "func": "leads.tasks.prune_webhook_deliveries",
            "schedule_type": Schedule.HOURLY,
            "repeats": -1,
        },
    )
