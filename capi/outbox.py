"""Writing conversion events: the receiver of `leads.pipeline.stage_changed`.

It runs inside the stage-change transaction, so an event row exists exactly when its stage
change does: a rolled-back move leaves neither, and no task is queued for it. It only
writes rows: the customer information is hashed by the sender when it first claims the
event, so that a bulk read staging thousands of leads does not hash inside its
transaction (holding SQLite's write lock, which webhooks wait for). The send is
requested after commit, once per transaction however many changes it carries, and queued
only if no send task is already queued or running (capi.lease): a burst of commits wakes
one sender, which gathers the burst into full batches (capi.sending, CAPI_BATCH_WINDOW).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from capi import lease
from capi.models import ConversionEvent
from core.db.inserts import insert_rows
from core.db.queries import on_commit_once
from leads.models import Lead, PipelineStage, StageChange

logger = logging.getLogger(__name__)

TO_STAGE = StageChange._meta.get_field("to_stage")

# Rows per query: under SQLite's default limit of host parameters, whatever its version.
CHUNK = 900


def event_id_for(change: StageChange) -> str:
    return f"leadloop-{change.pk}"


def event_time_for(change: StageChange, created_time: dt.datetime | None) -> dt.datetime:
    """The change time, but never before the lead's creation at Meta (Meta refuses events
    that precede the lead; clocks of Meta and this server can disagree by seconds)."""
    if created_time is not None and change.changed_at < created_time:
        return created_time
    return change.changed_at


def _stages_of(changes: Sequence[StageChange]) -> dict[int, PipelineStage]:
    """{pk: stage} of the changes' stages: the instances the sender attached (read in its
    transaction; a bulk read's page attaches the one it read), else read here."""
    stages: dict[int, PipelineStage] = {}
    for change in changes:  # a bulk read's hundreds share one stage: looked at once
        if change.to_stage_id not in stages and TO_STAGE.is_cached(change):
            stages[change.to_stage_id] = TO_STAGE.get_cached_value(change)
    missing = {change.to_stage_id for change in changes} - stages.keys()
    if missing:
        stages.update(PipelineStage.objects.in_bulk(missing))
    return stages


def record_stage_changes(
    sender: Any,
    *,
    changes: Sequence[StageChange],
    created_times: Mapping[int, dt.datetime | None] | None = None,
    **kwargs: Any,
) -> None:
    """Write one pending event per change into a stage that sends conversions.

    `created_times` ({lead pk: created_time}) are the leads' creation times the sender had
    at hand; the others are read.
    """
    if not changes:
        return
    # {stage pk: its event name} of the stages that send conversions.
    names = {
        pk: stage.event_name or stage.name
        for pk, stage in _stages_of(changes).items()
        if stage.sends_conversion
    }
    wanted = [change for change in changes if change.to_stage_id in names]
    if not wanted:
        return
    created: dict[int, dt.datetime | None] = dict(created_times or {})
    lead_ids = sorted({change.lead_id for change in wanted} - created.keys())
    for start in range(0, len(lead_ids), CHUNK):
        chunk = lead_ids[start : start + CHUNK]
        created.update(Lead.objects.filter(pk__in=chunk).values_list("pk", "created_time"))

    # No skip_existing: a second event for one stage change is a bug, and the unique
    # constraint failing the transaction is the right answer to it.
    insert_rows(
        ConversionEvent,
        [
            {
                "stage_change_id": change.pk,
                "lead_id": change.lead_id,
                "event_id": event_id_for(change),
                "event_name": names[change.to_stage_id],
                "event_time": event_time_for(change, created[change.lead_id]),
            }
            for change in wanted
        ],
        key="stage_change_id",
    )
    queue_send_on_commit()


def _send_after_commit() -> None:
    try:
        lease.request_send()
    except Exception:
        # The move has committed; a failed request must not fail it. The event is pending
        # and the minute schedule sends it.
        logger.exception("Could not request a conversion send; the minute schedule will")


def queue_send_on_commit() -> None:
    """Request a send when the current transaction commits, however often it is asked
    (the task is queued unless one is already queued or running).

    A bulk operation may announce its changes in several signals inside one transaction;
    one task sends them all (a savepoint rollback that drops the request lets the next
    call add it again: `core.db.queries.on_commit_once`).
    """
    on_commit_once(_send_after_commit)
