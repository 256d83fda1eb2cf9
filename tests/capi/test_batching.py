"""The batching window and the one-sender lease: a burst of commits, each requesting a send
while the worker runs, leaves full batches; a lone move still goes about a window after it
was made; and of two senders only one ever claims.

Time is a fake clock (`timezone.now` and the sender's sleep): a sender "waiting" for its
batch to fill runs the commits that would have happened meanwhile, as the web processes
would, and the worker's queued tasks between them. No test here waits for real, except the
threaded one, briefly."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

import pytest
from django.db import connection
from django.utils import timezone

from capi import batching, lease, sending, tasks
from capi.models import ConversionEvent, SenderState
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import enter_pipeline, move_stage
from tests.capi.conftest import EVENTS_URL, FakeMeta
from tests.capi.test_sending import pending_events
from tests.conftest import queue_size, queued_tasks, run_queued_tasks, run_tasks

pytestmark = pytest.mark.usefixtures("capi_settings")

Status = ConversionEvent.Status
WINDOW = 2.0


class FakeClock:
    """`timezone.now()` for everyone, ticking a microsecond per call (so that the ORM
    broker, which dequeues tasks locked before "now", sees time pass), and the sender's
    sleep, which moves the clock on after running whatever `meanwhile` has due by then."""

    def __init__(self) -> None:
        self.current = dt.datetime.now(tz=dt.UTC)
        self.slept: list[float] = []
        self.meanwhile: Callable[[dt.datetime], None] | None = None

    def now(self) -> dt.datetime:
        self.current += dt.timedelta(microseconds=1)
        return self.current

    def move_to(self, moment: dt.datetime) -> None:
        self.current = max(self.current, moment)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        end = self.current + dt.timedelta(seconds=seconds)
        if self.meanwhile is not None:
            self.meanwhile(end)
        self.move_to(end)


@pytest.fixture
def committed(django_capture_on_commit_callbacks) -> Callable[[Callable[[], object]], object]:
    """Run a change and end it as its own commit would: its on-commit callbacks (the send
    request) run, and are gone. The test's transaction stays open underneath (nothing is
    written to disk), which keeps 2,500 "commits" quick on PostgreSQL too."""

    def run(change: Callable[[], object]) -> object:
        callbacks = connection.run_on_commit
        before = len(callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            result = change()
        del callbacks[before:]
        return result

    return run


@pytest.fixture
def clock(monkeypatch, settings) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timezone, "now", fake.now)
    monkeypatch.setattr(batching, "_sleep", fake.sleep)
    settings.CAPI_BATCH_WINDOW = WINDOW
    settings.CAPI_BATCH_QUIET = 0.0  # the window alone; the quiet rule's tests set it
    return fake


class Burst:
    """Stage changes committed one by one, `step` seconds apart on the fake clock. After
    each commit the worker runs every queued task (the send task, queued by the commit
    unless one is queued already); while a sender waits for its batch, its sleep lets the
    changes due meanwhile happen, each again followed by the worker's queued tasks."""

    def __init__(
        self,
        clock: FakeClock,
        changes: list[Callable[[], object]],
        *,
        step: float,
        commit: Callable[[Callable[[], object]], object],
        trigger_every_commit: bool = False,
    ) -> None:
        self.clock = clock
        self.commit = commit
        self.changes = deque(changes)
        self.step = dt.timedelta(seconds=step)
        self.next_at = clock.current
        self.trigger_every_commit = trigger_every_commit
        self.tasks_run = 0
        self.extra_runs: list[dict] = []
        clock.meanwhile = self.until

    def commit_next(self) -> None:
        change = self.changes.popleft()
        self.clock.move_to(self.next_at)
        self.commit(change)  # the send is requested on commit
        self.next_at = self.clock.current + self.step
        self.tasks_run += run_queued_tasks()
        if self.trigger_every_commit:
            # As the old code did: a send task runs after every commit, whatever is queued
            # (another worker, the minute schedule).
            self.extra_runs.append(tasks.send_pending())

    def until(self, end: dt.datetime) -> None:
        while self.changes and self.next_at <= end:
            self.commit_next()

    def run(self) -> None:
        while self.changes:
            self.commit_next()
        self.tasks_run += run_queued_tasks()


def new_leads(count: int) -> list[Lead]:
    created = timezone.now() - dt.timedelta(minutes=10)
    Lead.objects.bulk_create(
        Lead(
            leadgen_id=str(7_000_000_000_000_000 + i),
            created_time=created,
            field_data=[{"name": "email", "values": [f"burst{i}@example.com"]}],
            email=f"burst{i}@example.com",
            fetch_status=Lead.FetchStatus.COMPLETE,
        )
        for i in range(count)
    )
    return list(Lead.objects.order_by("pk"))


def lead_changes(leads: list[Lead]) -> list[Callable[[], object]]:
    """Each lead enters the pipeline, then is moved three times: four commits a lead."""
    stages = [PipelineStage.objects.get(slug=s) for s in ("contacted", "qualified", "won")]
    changes: list[Callable[[], object]] = []
    for lead in leads:
        changes.append(lambda lead=lead: enter_pipeline(lead))
        for target in stages:
            changes.append(
                lambda lead=lead, target=target: move_stage(
                    lead, stage=target, via=StageChange.Via.UI
                )
            )
    return changes


def delays() -> list[float]:
    return [
        (sent - written).total_seconds()
        for sent, written in ConversionEvent.objects.values_list("sent_at", "created_at")
    ]


# --- A burst ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_2500_changes_committed_one_by_one_with_a_live_worker_leave_3_posts(
    clock, fake_meta, committed
):
    burst = Burst(
        clock,
        lead_changes(new_leads(625)),
        step=0.001,  # 1,000 changes a second
        commit=committed,
    )

    burst.run()

    assert [len(post.events) for post in fake_meta.posts] == [1000, 1000, 500]
    events = ConversionEvent.objects.all()
    assert Counter(fake_meta.accepted_ids) == Counter(e.event_id for e in events)  # once each
    assert Counter(events.values_list("status", flat=True)) == {Status.SENT: 2500}
    # 2,500 commits asked for a send; the queued mark let through one task per sender.
    assert 1 <= burst.tasks_run <= 3
    # The last 500 waited for the window, from their oldest event, and no longer.
    assert max(delays()) == pytest.approx(WINDOW, abs=sending.WINDOW_POLL + 0.01)
    assert max(clock.slept) <= sending.WINDOW_POLL
    state = SenderState.current()
    assert (state.lease_token, state.lease_until, state.send_queued_at) == ("", None, None)


@pytest.mark.django_db
def test_send_tasks_run_after_every_commit_still_leave_full_batches(
    clock, fake_meta, committed, settings
):
    settings.CAPI_MAX_BATCH = 150
    burst = Burst(
        clock,
        lead_changes(new_leads(100)),
        step=0.001,
        commit=committed,
        trigger_every_commit=True,
    )

    burst.run()

    assert [len(post.events) for post in fake_meta.posts] == [150, 150, 100]
    assert Counter(fake_meta.accepted_ids) == Counter(
        ConversionEvent.objects.values_list("event_id", flat=True)
    )
    # The runs that came while a sender was at work ended at once, without a claim.
    assert len(burst.extra_runs) == 400
    assert sum(run["skipped"] for run in burst.extra_runs) >= 390
    assert sum(run["posts"] for run in burst.extra_runs) == 0


@pytest.mark.django_db
def test_a_full_batch_goes_at_once(clock, fake_meta):
    pending_events(1000)  # one bulk read: a full batch, just written
    summary = sending.send_coalesced()
    assert (summary.posts, summary.sent, summary.waited) == (1, 1000, 0.0)
    assert clock.slept == []


# --- As it happens ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_single_change_is_sent_after_the_window(clock, fake_meta, committed):
    (lead,) = new_leads(1)
    committed(lambda: enter_pipeline(lead))
    assert queue_size() == 1

    assert run_queued_tasks() == 1

    assert [len(post.events) for post in fake_meta.posts] == [1]
    (delay,) = delays()
    assert WINDOW <= delay <= WINDOW + sending.WINDOW_POLL
    assert sum(clock.slept) <= WINDOW  # never more than the window


@pytest.mark.django_db
def test_with_a_quiet_rule_a_single_change_goes_once_nothing_follows_it(
    clock, fake_meta, committed, settings
):
    settings.CAPI_BATCH_QUIET = 0.5
    (lead,) = new_leads(1)
    committed(lambda: enter_pipeline(lead))
    assert run_queued_tasks() == 1
    (delay,) = delays()
    assert 0.5 <= delay <= 0.5 + sending.WINDOW_POLL + 0.01


@pytest.mark.django_db
def test_with_a_quiet_rule_a_slow_steady_burst_still_leaves_full_batches(
    clock, fake_meta, committed, settings
):
    """300 changes a second take 3.3 s to fill a batch: longer than the old 2 s window,
    within a 5 s one; events keep coming, so the quiet rule never cuts a batch short."""
    settings.CAPI_BATCH_WINDOW = 5.0
    settings.CAPI_BATCH_QUIET = 0.5
    burst = Burst(clock, lead_changes(new_leads(625)), step=1 / 300, commit=committed)

    burst.run()

    assert [len(post.events) for post in fake_meta.posts] == [1000, 1000, 500]
    assert Counter(fake_meta.accepted_ids) == Counter(
        ConversionEvent.objects.values_list("event_id", flat=True)
    )
    # The last 500 went half a second after the last change, not a window after it.
    last_change = max(ConversionEvent.objects.values_list("created_at", flat=True))
    last_sent = max(ConversionEvent.objects.values_list("sent_at", flat=True))
    assert (last_sent - last_change).total_seconds() <= 0.5 + sending.WINDOW_POLL + 0.01


@pytest.mark.django_db
def test_a_slow_trickle_is_never_held_longer_than_the_window(clock, fake_meta, committed):
    burst = Burst(
        clock,
        lead_changes(new_leads(3)),
        step=0.7,  # a change every 0.7 s: a batch never fills
        commit=committed,
    )
    burst.run()
    assert sum(len(post.events) for post in fake_meta.posts) == 12
    assert 3 <= len(fake_meta.posts) <= 6
    assert max(delays()) <= WINDOW + sending.WINDOW_POLL


# --- One sender ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sender_holding_the_lease_makes_others_end_at_once(fake_meta):
    pending_events(3)
    held = lease.Lease.acquire()
    assert held is not None

    summary = tasks.send_pending()

    assert (summary["skipped"], summary["posts"]) == (True, 0)
    assert set(ConversionEvent.objects.values_list("claim_token", flat=True)) == {""}
    held.release()
    assert tasks.send_pending()["sent"] == 3


@pytest.mark.django_db
def test_the_lease_of_a_killed_worker_expires(fake_meta):
    pending_events(2)
    SenderState.current()
    SenderState.objects.update(
        lease_token="killed-worker", lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    summary = tasks.send_pending()
    assert (summary["skipped"], summary["sent"]) == (False, 2)
    assert SenderState.current().lease_token == ""


@pytest.mark.django_db
def test_an_event_committed_as_the_sender_lets_go_is_sent_by_its_last_look(
    fake_meta, monkeypatch, committed
):
    (lead,) = new_leads(1)
    committed(lambda: enter_pipeline(lead))
    (task,) = queued_tasks()
    release = lease.Lease.release
    late: list[StageChange] = []

    def release_after_a_late_commit(self):
        if not late:
            # The sender has claimed its last batch; the queued mark is still set, so this
            # commit queues nothing of its own.
            contacted = PipelineStage.objects.get(slug="contacted")
            late.append(
                committed(lambda: move_stage(lead, stage=contacted, via=StageChange.Via.UI))
            )
            assert queue_size() == 0
        release(self)

    monkeypatch.setattr(lease.Lease, "release", release_after_a_late_commit)
    run_tasks([task])

    assert [post.events[0]["event_name"] for post in fake_meta.posts] == ["Lead", "Contacted"]
    assert set(ConversionEvent.objects.values_list("status", flat=True)) == {Status.SENT}
    assert queue_size() == 0


@pytest.mark.django_db
def test_a_sender_whose_lease_was_taken_over_stops_claiming(clock, fake_meta, settings):
    settings.CAPI_MAX_BATCH = 2
    settings.CAPI_BATCH_WINDOW = 0.0
    pending_events(6)

    def meanwhile(events):
        # The POST hangs past the lease; the lease lapses and another sender takes it.
        clock.move_to(clock.current + lease.LEASE + dt.timedelta(seconds=1))
        SenderState.objects.update(
            lease_token="another-sender", lease_until=clock.current + lease.LEASE
        )

    fake_meta.on_post = meanwhile
    summary = sending.send_coalesced()

    assert (summary.posts, summary.sent, summary.interrupted) == (1, 2, True)
    assert Counter(ConversionEvent.objects.values_list("status", flat=True)) == {
        Status.SENT: 2,
        Status.PENDING: 4,
    }
    assert SenderState.current().lease_token == "another-sender"  # not released by us


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_senders_only_one_claims_and_the_other_ends_quickly(
    mocked_graph, settings, monkeypatch
):
    settings.CAPI_BATCH_WINDOW = 0.5
    fake = FakeMeta()
    mocked_graph.add_callback("POST", EVENTS_URL, callback=fake.callback)
    events = pending_events(5)
    a_is_waiting, b_is_done = threading.Event(), threading.Event()
    results: dict[str, dict] = {}
    durations: dict[str, float] = {}
    errors: list[BaseException] = []

    def sleep(seconds: float) -> None:
        if threading.current_thread().name == "a" and not a_is_waiting.is_set():
            a_is_waiting.set()  # A holds the lease, waiting for its batch to fill
            b_is_done.wait(timeout=20)
        time.sleep(seconds)

    monkeypatch.setattr(batching, "_sleep", sleep)

    def run(name: str) -> None:
        started = time.monotonic()
        try:
            results[name] = tasks.send_pending()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            durations[name] = time.monotonic() - started
            connection.close()
            if name == "b":
                b_is_done.set()

    a = threading.Thread(target=run, args=("a",), name="a")
    a.start()
    assert a_is_waiting.wait(timeout=20)
    b = threading.Thread(target=run, args=("b",), name="b")
    b.start()
    b.join(timeout=20)
    a.join(timeout=20)

    assert errors == []
    assert results["b"]["skipped"] is True
    assert (results["b"]["posts"], results["b"]["sent"]) == (0, 0)
    assert durations["b"] < 2.0  # A waits for B to finish: B did not wait for A
    assert (results["a"]["posts"], results["a"]["sent"]) == (1, 5)
    assert fake.accepted_ids == [event.event_id for event in events]
    assert set(ConversionEvent.objects.values_list("status", flat=True)) == {Status.SENT}
