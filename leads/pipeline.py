"""The one write path for a lead's stage: the UI, the API, the admin and the system all call
`move_stage`. Every move is recorded, and announced with `stage_changed`."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from leads.models import Lead, PipelineStage, StageChange

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# Sent inside the stage-change transaction with `change` (a saved StageChange). Receivers
# that write rows (capi's conversion outbox) therefore commit or roll back with the move;
# receivers must queue any outside work with transaction.on_commit. `leads` does not know
# who listens.
stage_changed = Signal()


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
        stage_changed.send(sender=StageChange, change=change)
    return change


def enter_pipeline(lead: Lead, *, via: str = StageChange.Via.SYSTEM) -> StageChange | None:
    """Put a lead that has no stage yet into the first stage; that entry is a stage change."""
    with transaction.atomic():
        # Checked under the row lock: a concurrent move may have staged the lead already.
        if Lead.objects.select_for_update().filter(pk=lead.pk, stage__isnull=False).exists():
            return None
        return move_stage(lead, stage=PipelineStage.first(), via=via)
