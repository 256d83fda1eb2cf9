"""The one write path for a lead's stage: the UI, the API, the admin and the system all call
`move_stage` (or `enter_pipeline` for new leads). Every move is recorded as a StageChange
and announced with `stage_changed`. The bulk read inserts its new leads already in the
first stage (`Entry.columns`) and records their entries with `record_entries`, the same
record and announcement."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import DEFAULT_DB_ALIAS, transaction
from django.dispatch import Signal
from django.utils import timezone

from core.db.inserts import insert_rows
from leads.models import Lead, PipelineStage, StageChange

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# Sent inside the stage-change transaction with `changes`: a list of saved StageChange rows
# (one for a move, many when a bulk read brings new leads), and `created_times`: {lead pk:
# its created_time} for those of the changes' leads the sender has at hand (maybe none).
# Receivers that write rows (capi's conversion outbox) therefore commit or roll back with
# the move, and should write in bulk; any outside work must be queued with
# transaction.on_commit. `leads` does not know who listens.
stage_changed = Signal()

STAGE_FIELD = StageChange._meta.get_field("to_stage")


def move_stage(
    lead: Lead,
    *,
    stage: PipelineStage,
    via: str,
    by: AbstractBaseUser | None = None,
    at: dt.datetime | None = None,
) -> StageChange | None:
    """Move `lead` to `stage`; return the recorded change, or None if it was already there.

    `lead` is updated in place. The lead row is locked for the duration so two concurrent
    moves are serialised and each records the true `from_stage`.
    """
    with transaction.atomic():
        current = Lead.objects.select_for_update().only("pk", "stage").get(pk=lead.pk)
        if current.stage_id == stage.pk:
            lead.stage = stage
            return None
        changed_at = at or timezone.now()
        change = StageChange.objects.create(
            lead=lead,
            from_stage_id=current.stage_id,
            to_stage=stage,
            changed_at=changed_at,
            changed_by=by if by is not None and by.is_authenticated else None,
            via=via,
        )
        Lead.objects.filter(pk=lead.pk).update(
            stage=stage, stage_changed_at=changed_at, updated_at=timezone.now()
        )
        lead.stage = stage
        lead.stage_changed_at = changed_at
        # The caller's instance may be partial: its creation time is sent only if loaded.
        loaded = "created_time" not in lead.get_deferred_fields()
        stage_changed.send(
            sender=StageChange,
            changes=[change],
            created_times={lead.pk: lead.created_time} if loaded else {},
        )
    return change


def enter_pipeline(lead: Lead, *, via: str = StageChange.Via.SYSTEM) -> StageChange | None:
    """Put a lead that has no stage yet into the first stage; that entry is a stage change."""
    changes = enter_pipeline_many([lead.pk], via=via)
    if not changes:
        return None
    lead.stage = changes[0].to_stage
    lead.stage_changed_at = changes[0].changed_at
    return changes[0]


def enter_pipeline_many(
    lead_pks: Sequence[int], *, via: str = StageChange.Via.SYSTEM
) -> list[StageChange]:
    """Put every lead of `lead_pks` that has no stage yet into the first stage, in a fixed
    number of queries (bulk read brings thousands at once). Returns the changes made."""
    if not lead_pks:
        return []
    entry = Entry.now()
    with transaction.atomic():
        staged = stage_waiting_leads(lead_pks, entry=entry)
        return record_entries(staged, entry=entry, via=via) if staged else []


def stage_waiting_leads(lead_pks: Sequence[int], *, entry: Entry) -> list[int]:
    """Put the leads of `lead_pks` that have no stage yet into `entry.stage`; returns them,
    for `record_entries` in the same transaction (which the caller holds).

    The conditional UPDATE (`stage IS NULL`) is the guard: a lead staged meanwhile by
    another process is left alone, and the rows we did stage are read back under lock.
    """
    candidates = list(
        Lead.objects.select_for_update()
        .filter(pk__in=lead_pks, stage__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if candidates:
        Lead.objects.filter(pk__in=candidates, stage__isnull=True).update(
            stage=entry.stage, stage_changed_at=entry.at, updated_at=entry.at
        )
    return candidates


@dataclass(frozen=True)
class Entry:
    """The first stage and the time of entering it, for leads inserted straight into it."""

    stage: PipelineStage
    at: dt.datetime

    @classmethod
    def now(cls) -> Entry:
        return cls(PipelineStage.first(), timezone.now())

    def columns(self) -> dict[str, object]:
        """The lead columns that put a new lead in the stage (see `record_entries`)."""
        return {"stage_id": self.stage.pk, "stage_changed_at": self.at}


def record_entries(
    lead_pks: Sequence[int],
    *,
    entry: Entry,
    via: str = StageChange.Via.SYSTEM,
    created_times: Mapping[int, dt.datetime | None] | None = None,
) -> list[StageChange]:
    """Record that these leads entered `entry.stage` at `entry.at` and announce it.

    For leads this transaction staged: either by `stage_waiting_leads`, or by inserting
    them with `entry.columns()` (a bulk read's new leads: no second write of each row,
    since no other process can stage a row it cannot see yet). `created_times`: the leads'
    created_time, when the caller has them (sent with the changes).
    """
    if not lead_pks:
        return []
    # One statement that returns the new ids (a bulk read stages thousands of leads
    # while it holds the write lock); the instances are built for the receivers.
    # What every change shares is adapted for the database once (`common`).
    common = {"to_stage_id": entry.stage.pk, "changed_at": entry.at, "via": via}
    inserted = insert_rows(
        StageChange, [{"lead_id": pk} for pk in lead_pks], key="lead_id", common=common
    )
    # As rows read back would be (`from_db`, positional: several times cheaper than
    # keyword construction, for hundreds per bulk-read page).
    columns = [field.attname for field in StageChange._meta.concrete_fields]
    changes = []
    for pk in lead_pks:
        row = {**common, "id": inserted[pk], "lead_id": pk}
        change = StageChange.from_db(DEFAULT_DB_ALIAS, columns, [row.get(n) for n in columns])
        STAGE_FIELD.set_cached_value(change, entry.stage)
        changes.append(change)
    stage_changed.send(sender=StageChange, changes=changes, created_times=created_times or {})
    return changes
