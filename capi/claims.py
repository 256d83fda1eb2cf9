"""Claims: how pending events become one run's to send, and how they are handed back.

A run claims due pending events with a conditional UPDATE (`pending` -> `sending` with the
run's claim token), so of two runs that picked the same rows each row goes to exactly
one; every later change a run makes to its events is guarded by that token (`ours`), so
a run whose claim was released meanwhile changes nothing. Claims a run still holds when it
ends go back to `pending` in its `finally`; claims of a run that died (a killed worker)
are released once they are older than the task timeout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.utils import timezone

from capi.models import ConversionEvent
from capi.outbox import CHUNK
from capi.user_data import LEAD_FIELDS, build_user_data
from leads.models import Lead

Status = ConversionEvent.Status

# django-q2 kills a task after its `timeout`; a claim older than that (plus slack) belongs
# to a run that died. A task run stops claiming after half the timeout, so it finishes
# (and hands back what it holds) well before it could be killed.
STALE_CLAIM = dt.timedelta(seconds=int(settings.Q_CLUSTER["timeout"]) + 60)  # type: ignore[call-overload]


def due_events(*, due_before: dt.datetime) -> QuerySet[ConversionEvent]:
    return (
        ConversionEvent.objects.filter(status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=due_before))
        .order_by("event_time", "pk")
    )


def take(ids: Iterable[int], *, claim_token: str, dataset: str, now: dt.datetime) -> int:
    """The claim itself: only rows still pending change hands, so of two runs that picked
    the same ids, each row goes to exactly one. An event keeps the dataset of its first
    claim, so its retries go where its first attempt went."""
    return ConversionEvent.objects.filter(pk__in=list(ids), status=Status.PENDING).update(
        status=Status.SENDING,
        claim_token=claim_token,
        claimed_at=now,
        dataset_id=Case(When(dataset_id="", then=Value(dataset)), default=F("dataset_id")),
        updated_at=now,
    )


def claim(
    *, claim_token: str, dataset: str, limit: int, due_before: dt.datetime
) -> list[ConversionEvent]:
    now = timezone.now()
    with transaction.atomic():
        candidates = due_events(due_before=due_before)
        # PostgreSQL: a concurrent run skips the rows this one is taking instead of
        # queueing behind our lock only to find them gone. (SQLite has no row locks;
        # Django ignores select_for_update there, its IMMEDIATE transaction serialises.)
        candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if not ids or not take(ids, claim_token=claim_token, dataset=dataset, now=now):
            return []
    events = list(
        ConversionEvent.objects.filter(claim_token=claim_token, status=Status.SENDING, pk__in=ids)
        .order_by("event_time", "pk")
        .only(
            "pk", "lead_id", "event_id", "event_name", "event_time", "user_data",
            "dataset_id", "failures",
        )
    )  # fmt: skip
    build_missing_user_data(events)
    return events


def build_missing_user_data(events: Sequence[ConversionEvent]) -> None:
    """Hash the customer information of the events that have none yet, from their leads,
    and store it (so the admin shows what was sent). Only claimed events come here, so
    no other run writes them meanwhile; building is deterministic, so doing it twice
    (a claim released and taken again) is harmless."""
    missing = [event for event in events if event.user_data is None]
    if not missing:
        return
    lead_ids = sorted({event.lead_id for event in missing})
    leads = {}
    for start in range(0, len(lead_ids), CHUNK):
        leads.update(Lead.objects.only(*LEAD_FIELDS).in_bulk(lead_ids[start : start + CHUNK]))
    for event in missing:
        event.user_data = build_user_data(leads[event.lead_id])
    ConversionEvent.objects.bulk_update(missing, ["user_data"], batch_size=CHUNK)


def ours(claim_token: str, events: Sequence[ConversionEvent]) -> QuerySet[ConversionEvent]:
    """Those of `events` this run still holds: every change a run makes to them goes
    through here."""
    return ConversionEvent.objects.filter(
        pk__in=[event.pk for event in events], status=Status.SENDING, claim_token=claim_token
    )


def unclaimed(*, now: dt.datetime, **changes: Any) -> dict[str, Any]:
    """The UPDATE of events handed back to `pending`, no longer anyone's claim."""
    return {
        "status": Status.PENDING,
        "claim_token": "",
        "claimed_at": None,
        "updated_at": now,
        **changes,
    }


def release_claims(claim_token: str) -> int:
    """Whatever this run still holds goes back to pending, untouched otherwise."""
    return ConversionEvent.objects.filter(status=Status.SENDING, claim_token=claim_token).update(
        **unclaimed(now=timezone.now())
    )


def release_stale_claims(*, now: dt.datetime | None = None) -> int:
    """Hand back events claimed by a run that died (killed worker). They are sent again:
    if that run's POST did reach Meta, this is the one case of a duplicate, which we
    accept over losing the event."""
    now = now or timezone.now()
    return ConversionEvent.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - STALE_CLAIM
    ).update(**unclaimed(now=now))
