"""Conversion events are written in the stage-change transaction, one per change into a
stage that sends, and the send is queued once after commit."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from capi.models import ConversionEvent, SenderState
from capi.outbox import record_stage_changes
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import Entry, enter_pipeline, enter_pipeline_many, move_stage, record_entries
from tests.capi.conftest import make_lead
from tests.conftest import queue_size, queued_tasks, run_tasks

pytestmark = pytest.mark.django_db

SEND_TASK = "capi.tasks.send_pending"


def stage(slug: str) -> PipelineStage:
    return PipelineStage.objects.get(slug=slug)


def test_a_new_lead_gives_one_lead_event_and_three_moves_three_more_in_order(
    django_capture_on_commit_callbacks,
):
    lead = make_lead()
    with django_capture_on_commit_callbacks(execute=True):
        first = enter_pipeline(lead)
    moves = []
    for slug in ("contacted", "qualified", "won"):
        with django_capture_on_commit_callbacks(execute=True):
            moves.append(move_stage(lead, stage=stage(slug), via=StageChange.Via.UI))

    events = list(ConversionEvent.objects.filter(lead=lead).order_by("event_time", "pk"))
    changes = [first, *moves]
    assert [e.event_name for e in events] == ["Lead", "Contacted", "Qualified Lead", "Converted"]
    assert [e.stage_change_id for e in events] == [c.pk for c in changes]
    assert [e.event_time for e in events] == [c.changed_at for c in changes]
    assert all(e.event_time >= lead.created_time for e in events)
    assert [e.event_id for e in events] == [f"leadloop-{c.pk}" for c in changes]
    assert {e.status for e in events} == {ConversionEvent.Status.PENDING}
    # Hashed by the sender when it first claims the event, not in the move's transaction.
    assert {e.user_data for e in events} == {None}
    assert [task["func"] for task in queued_tasks()][:1] == [SEND_TASK]


def test_stages_that_do_not_send_write_no_event():
    PipelineStage.objects.filter(slug="contacted").update(sends_conversion=False)
    lead = make_lead()
    enter_pipeline(lead)
    move_stage(lead, stage=stage("contacted"), via=StageChange.Via.UI)
    assert list(ConversionEvent.objects.values_list("event_name", flat=True)) == ["Lead"]


def test_event_name_falls_back_to_the_stage_name():
    custom = PipelineStage.objects.create(slug="demo", name="Demo booked", position=9)
    lead = make_lead()
    enter_pipeline(lead)
    move_stage(lead, stage=custom, via=StageChange.Via.UI)
    assert ConversionEvent.objects.get(stage_change__to_stage=custom).event_name == "Demo booked"


def test_event_time_is_never_before_the_leads_creation():
    created = timezone.now()
    lead = make_lead(created_time=created)
    enter_pipeline(lead)
    # A change recorded with a clock a little behind Meta's.
    change = move_stage(
        lead, stage=stage("contacted"), via=StageChange.Via.UI, at=created - dt.timedelta(seconds=3)
    )
    event = ConversionEvent.objects.get(stage_change=change)
    assert event.event_time == created


def test_creation_times_sent_with_the_changes_are_used_not_read_again():
    """A bulk read inserts new leads in the first stage and sends their creation times with
    the changes: the event time is clamped to them without reading the leads again."""
    created = timezone.now() + dt.timedelta(seconds=5)  # Meta's clock ahead of ours
    lead = make_lead(created_time=created)
    entry = Entry.now()
    Lead.objects.filter(pk=lead.pk).update(**entry.columns())
    with CaptureQueriesContext(connection) as run:
        (change,) = record_entries([lead.pk], entry=entry, created_times={lead.pk: created})
    assert not [q["sql"] for q in run.captured_queries if 'FROM "leads_lead"' in q["sql"]]
    event = ConversionEvent.objects.get(stage_change=change)
    assert (event.event_time, event.event_name) == (created, "Lead")


def test_the_stage_the_sender_attached_is_used_and_a_missing_one_is_read():
    stages_read = 'FROM "leads_pipelinestage"'
    lead = make_lead()
    entry = Entry.now()  # read by the sender, in its transaction
    Lead.objects.filter(pk=lead.pk).update(**entry.columns())
    with CaptureQueriesContext(connection) as attached:
        record_entries([lead.pk], entry=entry)
    assert not [q for q in attached.captured_queries if stages_read in q["sql"]]

    # A change without its stage attached (read back from the database): read here, and
    # what it says now decides.
    PipelineStage.objects.filter(slug="contacted").update(sends_conversion=False)
    change = StageChange.objects.create(
        lead=lead,
        from_stage=entry.stage,
        to_stage=stage("contacted"),
        changed_at=timezone.now(),
        via="ui",
    )
    bare = StageChange.objects.get(pk=change.pk)
    with CaptureQueriesContext(connection) as read:
        record_stage_changes(StageChange, changes=[bare])
    assert [q for q in read.captured_queries if stages_read in q["sql"]]
    assert list(ConversionEvent.objects.values_list("event_name", flat=True)) == ["Lead"]


def test_a_bulk_entry_writes_every_event_in_a_fixed_number_of_queries():
    # 50 events fit one INSERT even under SQLite's 999-parameter limit; beyond that the
    # inserts are batched, so the count grows by one statement per batch, never per lead.
    small = [make_lead().pk for _ in range(3)]
    large = [make_lead().pk for _ in range(50)]
    with CaptureQueriesContext(connection) as small_run:
        enter_pipeline_many(small)
    with CaptureQueriesContext(connection) as large_run:
        enter_pipeline_many(large)
    assert len(large_run.captured_queries) == len(small_run.captured_queries)
    assert ConversionEvent.objects.filter(lead_id__in=large).count() == 50


def test_several_signals_in_one_transaction_queue_one_send(django_capture_on_commit_callbacks):
    leads = [make_lead() for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for lead in leads:
            enter_pipeline(lead)
            move_stage(lead, stage=stage("contacted"), via=StageChange.Via.SYSTEM)
    assert ConversionEvent.objects.count() == 6
    assert [task["func"] for task in queued_tasks()] == [SEND_TASK]


def test_a_rolled_back_savepoint_does_not_lose_the_send_of_what_stayed(
    django_capture_on_commit_callbacks,
):
    kept, dropped = make_lead(), make_lead()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        try:
            with transaction.atomic():
                enter_pipeline(dropped)
                raise RuntimeError("inner failure")
        except RuntimeError:
            pass
        enter_pipeline(kept)
    assert list(ConversionEvent.objects.values_list("lead_id", flat=True)) == [kept.pk]
    assert [task["func"] for task in queued_tasks()] == [SEND_TASK]


def test_one_event_per_stage_change_is_enforced_by_the_database():
    lead = make_lead()
    change = enter_pipeline(lead)
    duplicate = ConversionEvent(
        stage_change=change,
        lead=lead,
        event_id="leadloop-other",
        event_name="Lead",
        event_time=change.changed_at,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rolled_back_stage_change_leaves_no_event_and_no_task():
    lead = make_lead()
    enter_pipeline(lead)  # commits: one event, one queued task
    queued_tasks()  # take it off the queue
    assert queue_size() == 0
    events_before = ConversionEvent.objects.count()
    changes_before = StageChange.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        move_stage(lead, stage=stage("contacted"), via=StageChange.Via.UI)
        assert ConversionEvent.objects.count() == events_before + 1  # written inside
        raise RuntimeError("the request failed after the move")

    assert ConversionEvent.objects.count() == events_before
    assert StageChange.objects.count() == changes_before
    assert queue_size() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_commits_queue_one_send_until_a_sender_has_run():
    leads = [make_lead() for _ in range(2)]
    enter_pipeline_many([lead.pk for lead in leads])  # one transaction, two events
    for lead in leads:
        move_stage(lead, stage=stage("contacted"), via=StageChange.Via.API)  # one each
    assert ConversionEvent.objects.count() == 4
    # Three commits, one task: the later commits found a send task already queued.
    assert [task["func"] for task in queued_tasks()] == [SEND_TASK]
    assert SenderState.current().send_queued_at is not None

    run_tasks([{"func": SEND_TASK, "args": (), "kwargs": {}}])  # the sender ran (no dataset)
    assert SenderState.current().send_queued_at is None
    move_stage(leads[0], stage=stage("qualified"), via=StageChange.Via.API)
    assert [task["func"] for task in queued_tasks()] == [SEND_TASK]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_lost_send_task_only_delays_the_next_one(monkeypatch):
    from capi import lease

    lead = make_lead()
    enter_pipeline(lead)
    queued_tasks()  # the broker lost it: nobody runs it, nobody clears the mark
    move_stage(lead, stage=stage("contacted"), via=StageChange.Via.API)
    assert queue_size() == 0
    SenderState.objects.update(send_queued_at=timezone.now() - lease.QUEUED_TTL)
    move_stage(lead, stage=stage("qualified"), via=StageChange.Via.API)
    assert [task["func"] for task in queued_tasks()] == [SEND_TASK]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_broker_outage_leaves_no_stale_mark(monkeypatch):
    from capi import lease

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(lease.tasks, "push", down)
    lead = make_lead()
    enter_pipeline(lead)
    assert SenderState.current().send_queued_at is None
    monkeypatch.undo()
    move_stage(lead, stage=stage("contacted"), via=StageChange.Via.API)
    assert [task["func"] for task in queued_tasks()] == [SEND_TASK]


def test_a_failed_send_request_never_fails_the_committed_move(
    monkeypatch, django_capture_on_commit_callbacks, caplog
):
    from capi import lease

    def broken():
        raise RuntimeError("database is locked")

    monkeypatch.setattr(lease, "request_send", broken)
    lead = make_lead()
    with django_capture_on_commit_callbacks(execute=True):
        enter_pipeline(lead)
    assert ConversionEvent.objects.filter(lead=lead).count() == 1  # pending, for the schedule
    assert "Could not request a conversion send" in caplog.text
