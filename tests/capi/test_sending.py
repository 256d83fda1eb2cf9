"""Sending conversion events: batches, Meta's answers, retries, splits, pauses, expiry and
claims. Meta is `responses` (tests/capi/conftest.py `FakeMeta`); nothing leaves the process."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter

import pytest
import requests
from django.core.cache import cache
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule

from capi import sending
from capi.models import ConversionEvent, SendAttempt, SenderState
from leads.graph import PAUSE_CACHE_KEY, PAUSE_SCOPE
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import enter_pipeline, enter_pipeline_many, move_stage
from tests.capi.conftest import DATASET, EVENTS_URL, TOKEN, graph_error, make_lead
from tests.conftest import GRAPH, queued_tasks, run_queued_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("capi_settings")]

Status = ConversionEvent.Status
Outcome = SendAttempt.Outcome


def pending_events(count: int, **lead_columns) -> list[ConversionEvent]:
    """`count` new leads entering the pipeline in one bulk transaction (one event each)."""
    now = timezone.now()
    leads = Lead.objects.bulk_create(
        Lead(
            leadgen_id=str(5_000_000_000_000_000 + i),
            created_time=now - dt.timedelta(minutes=10),
            field_data=[{"name": "email", "values": [f"lead{i}@example.com"]}],
            email=f"lead{i}@example.com",
            fetch_status=Lead.FetchStatus.COMPLETE,
            **lead_columns,
        )
        for i in range(count)
    )
    if any(lead.pk is None for lead in leads):
        leads = list(Lead.objects.order_by("pk"))
    enter_pipeline_many([lead.pk for lead in leads])
    return list(ConversionEvent.objects.order_by("event_time", "pk"))


def statuses() -> Counter:
    return Counter(ConversionEvent.objects.values_list("status", flat=True))


# --- The shape Meta receives -------------------------------------------------------------------


def test_a_new_lead_and_three_moves_reach_meta_as_four_events_in_order(fake_meta):
    lead = make_lead(leadgen_id="1234567890123456")
    changes = [enter_pipeline(lead)]
    for slug in ("contacted", "qualified", "won"):
        changes.append(
            move_stage(lead, stage=PipelineStage.objects.get(slug=slug), via=StageChange.Via.UI)
        )

    summary = sending.send_pending()

    assert (summary.posts, summary.sent, summary.waiting) == (1, 4, 0)
    (post,) = fake_meta.posts
    assert post.url == EVENTS_URL
    assert post.events == [
        {
            "event_name": name,
            "event_time": int(change.changed_at.timestamp()),
            "action_source": "system_generated",
            "event_id": f"leadloop-{change.pk}",
            "user_data": ConversionEvent.objects.get(stage_change=change).user_data,
            "custom_data": {"event_source": "crm", "lead_event_source": "Leadloop"},
        }
        for name, change in zip(
            ["Lead", "Contacted", "Qualified Lead", "Converted"], changes, strict=True
        )
    ]
    times = [event["event_time"] for event in post.events]
    assert times == sorted(times) and times[0] >= int(lead.created_time.timestamp())
    # lead_id is a JSON integer in the request body itself, not a string.
    assert '"lead_id":1234567890123456' in post.raw_data
    assert sorted(post.events[0]["user_data"]) == [
        "country", "ct", "db", "em", "fn", "ge", "lead_id", "ln", "ph", "st", "zp",
    ]  # fmt: skip
    # The token travels in the header only; test_event_code is absent unless configured.
    assert "access_token" not in post.params and "test_event_code" not in post.params
    assert statuses() == {Status.SENT: 4}


def test_the_queued_task_sends_after_commit(fake_meta, django_capture_on_commit_callbacks):
    lead = make_lead()
    with django_capture_on_commit_callbacks(execute=True):
        enter_pipeline(lead)
    assert run_queued_tasks() == 1
    assert [post.events[0]["event_name"] for post in fake_meta.posts] == ["Lead"]
    assert ConversionEvent.objects.get().status == Status.SENT


def test_test_event_code_is_sent_when_set(fake_meta, settings):
    settings.META_TEST_EVENT_CODE = "TEST12345"
    pending_events(2)
    sending.send_pending()
    assert fake_meta.posts[0].params["test_event_code"] == "TEST12345"
    assert SendAttempt.objects.get().test_event_code == "TEST12345"


def test_the_token_goes_in_the_authorization_header(fake_meta, mocked_graph):
    pending_events(1)
    sending.send_pending()
    assert mocked_graph.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


# --- Batches -----------------------------------------------------------------------------------


def test_2500_pending_events_go_in_exactly_3_posts_of_at_most_1000(fake_meta):
    events = pending_events(2500)

    summary = sending.send_pending()

    assert [len(post.events) for post in fake_meta.posts] == [1000, 1000, 500]
    assert (summary.posts, summary.sent) == (3, 2500)
    assert sorted(fake_meta.accepted_ids) == sorted(event.event_id for event in events)
    assert statuses() == {Status.SENT: 2500}
    assert list(SendAttempt.objects.order_by("pk").values_list("event_count", flat=True)) == [
        1000,
        1000,
        500,
    ]


def test_metas_reply_and_every_attempt_are_recorded(fake_meta):
    pending_events(3)
    sending.send_pending()
    attempt = SendAttempt.objects.get()
    assert (attempt.outcome, attempt.http_status, attempt.events_received) == (
        Outcome.ACCEPTED,
        200,
        3,
    )
    assert (attempt.messages, attempt.fbtrace_id, attempt.dataset_id) == ([], "Atrace1", DATASET)
    assert attempt.event_ids == fake_meta.posts[0].event_ids
    assert set(ConversionEvent.objects.values_list("sent_in", flat=True)) == {attempt.pk}
    assert set(ConversionEvent.objects.values_list("attempts", flat=True)) == {1}
    assert SenderState.current().last_sent_at is not None


def test_events_keep_the_dataset_of_their_first_claim(fake_meta, mocked_graph):
    other_url = f"{GRAPH}/777/events"
    mocked_graph.add_callback("POST", other_url, callback=fake_meta.callback)
    first, second, third = pending_events(3)
    ConversionEvent.objects.filter(pk=first.pk).update(dataset_id="777")

    sending.send_pending()

    assert sorted((post.url, len(post.events)) for post in fake_meta.posts) == sorted(
        [(other_url, 1), (EVENTS_URL, 2)]
    )
    assert dict(ConversionEvent.objects.values_list("event_id", "dataset_id")) == {
        first.event_id: "777",
        second.event_id: DATASET,
        third.event_id: DATASET,
    }


# --- One bad event -----------------------------------------------------------------------------


@pytest.mark.parametrize("name_index", [True, False], ids=["meta-names-data[i]", "no-index"])
def test_a_rejected_event_is_split_out_and_every_other_event_is_sent_once(fake_meta, name_index):
    events = pending_events(10)
    bad = events[3].event_id
    fake_meta.bad = {bad}
    fake_meta.name_index = name_index

    summary = sending.send_pending()

    # Every good event is in exactly one accepted batch; the bad one in none.
    accepted = Counter(fake_meta.accepted_ids)
    assert accepted == Counter(event.event_id for event in events if event.event_id != bad)
    assert statuses() == {Status.SENT: 9, Status.FAILED: 1}
    failed = ConversionEvent.objects.get(event_id=bad)
    assert failed.last_error.startswith("Meta refused this event: (#100) param ")
    assert "must contain at least one customer information parameter" in failed.last_error
    assert (summary.sent, summary.failed) == (9, 1)
    # The bad event was finally POSTed alone, and that is what failed it.
    assert [post.event_ids for post in fake_meta.posts if not post.accepted][-1] == [bad]
    assert SendAttempt.objects.filter(outcome=Outcome.REJECTED).count() == len(
        [post for post in fake_meta.posts if not post.accepted]
    )


def test_with_metas_index_the_split_takes_four_posts(fake_meta):
    events = pending_events(10)
    fake_meta.bad = {events[3].event_id}
    sending.send_pending()
    # The batch, then data[:3] and data[4:] (accepted) and data[3] alone (refused).
    assert [(len(post.events), post.accepted) for post in fake_meta.posts] == [
        (10, False),
        (3, True),
        (1, False),
        (6, True),
    ]


def test_several_bad_events_in_one_batch(fake_meta):
    events = pending_events(40)
    bad = {events[0].event_id, events[17].event_id, events[39].event_id}
    fake_meta.bad = bad

    sending.send_pending()

    assert Counter(fake_meta.accepted_ids) == Counter(e.event_id for e in events) - Counter(bad)
    assert (
        set(ConversionEvent.objects.filter(status=Status.FAILED).values_list("event_id", flat=True))
        == bad
    )


def test_a_too_old_timestamp_refused_by_meta_expires_the_event(fake_meta):
    (event,) = pending_events(1)
    fake_meta.fail_next(
        graph_error(
            100, "(#100) param data[0][event_time] is too far in the past", error_subcode=2804003
        )
    )
    sending.send_pending()
    assert ConversionEvent.objects.get(pk=event.pk).status == Status.EXPIRED


# --- Transient failures ------------------------------------------------------------------------


def test_500_is_retried_with_backoff_and_the_event_is_sent_once(fake_meta, settings):
    settings.CAPI_BACKOFF = 30.0
    (event,) = pending_events(1)
    fake_meta.fail_next((500, {"error": {"message": "Internal error", "code": 1}}))

    first = sending.send_pending()

    event.refresh_from_db()
    assert (first.retrying, event.status, event.failures, event.attempts) == (
        1,
        Status.PENDING,
        1,
        1,
    )
    wait = (event.next_attempt_at - timezone.now()).total_seconds()
    assert 20 < wait <= 36  # 30 s with +-20 % jitter
    # Not due yet: a run now sends nothing.
    assert sending.send_pending().posts == 0

    ConversionEvent.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now())
    second = sending.send_pending()

    assert (second.posts, second.sent) == (1, 1)
    assert fake_meta.accepted_ids == [event.event_id]
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.SENT, 2)
    assert list(SendAttempt.objects.order_by("pk").values_list("outcome", "http_status")) == [
        (Outcome.RETRY, 500),
        (Outcome.ACCEPTED, 200),
    ]


def test_a_timeout_is_retried_and_the_event_is_sent_once(fake_meta):
    (event,) = pending_events(1)
    fake_meta.fail_next(requests.exceptions.ReadTimeout("read timed out"))

    sending.send_pending()
    event.refresh_from_db()
    assert (event.status, event.failures) == (Status.PENDING, 1)
    assert "timed out" in event.last_error
    attempt = SendAttempt.objects.get()
    assert (attempt.outcome, attempt.http_status) == (Outcome.RETRY, None)

    sending.send_pending()  # CAPI_BACKOFF is 0 in these tests: due at once
    assert fake_meta.accepted_ids == [event.event_id]
    assert ConversionEvent.objects.get(pk=event.pk).status == Status.SENT


@pytest.mark.parametrize(
    "answer",
    [(403, "<html>Forbidden by the proxy</html>"), (200, "<html>captive portal</html>")],
    ids=["proxy-403", "html-200"],
)
def test_an_answer_that_is_not_a_graph_error_is_retried_not_split(fake_meta, mocked_graph, answer):
    pending_events(4)
    status, body = answer
    mocked_graph.replace("POST", EVENTS_URL, body=body, status=status)
    summary = sending.send_pending()
    assert (summary.posts, summary.retrying, summary.failed) == (1, 4, 0)
    assert statuses() == {Status.PENDING: 4}


def test_after_the_last_transient_failure_the_event_is_visibly_failed(fake_meta, settings):
    settings.CAPI_MAX_ATTEMPTS = 3
    (event,) = pending_events(1)
    fake_meta.fail_next(*[(503, {"error": {"message": "Unavailable", "code": 2}})] * 3)
    for _ in range(3):
        sending.send_pending()
    event.refresh_from_db()
    assert (event.status, event.failures, event.attempts) == (Status.FAILED, 3, 3)
    assert event.last_error.startswith("Gave up after 3 failed attempts")
    assert sending.send_pending().posts == 0


@pytest.mark.parametrize(
    "answer",
    [
        (400, {"error": {"message": "(#17) User request limit reached", "code": 17}}),
        (429, {"error": {"message": "Too many calls", "code": 4}}),
    ],
    ids=["code-17", "http-429"],
)
def test_throttling_waits_and_never_counts_towards_giving_up(fake_meta, settings, answer):
    settings.CAPI_MAX_ATTEMPTS = 1
    (event,) = pending_events(1)
    fake_meta.fail_next(answer)
    sending.send_pending()
    event.refresh_from_db()
    assert (event.status, event.failures, event.attempts) == (Status.PENDING, 0, 1)
    # The client's default wait for a limit without Meta's estimate: a minute.
    assert event.next_attempt_at > timezone.now() + dt.timedelta(seconds=50)


def test_our_own_rate_limit_pause_sends_nothing_and_records_nothing(fake_meta):
    (event,) = pending_events(1)
    cache.set(PAUSE_CACHE_KEY.format(scope=PAUSE_SCOPE), timezone.now().timestamp() + 120)

    summary = sending.send_pending()

    assert (summary.posts, len(fake_meta.posts), SendAttempt.objects.count()) == (0, 0, 0)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.failures) == (Status.PENDING, 0, 0)
    assert event.next_attempt_at > timezone.now() + dt.timedelta(seconds=100)


# --- Expiry ------------------------------------------------------------------------------------


def test_events_older_than_7_days_are_expired_and_never_sent(fake_meta):
    old, fresh = pending_events(2)
    eight_days_ago = timezone.now() - dt.timedelta(days=8)
    ConversionEvent.objects.filter(pk=old.pk).update(event_time=eight_days_ago)

    summary = sending.send_pending()

    assert (summary.expired, summary.sent) == (1, 1)
    assert fake_meta.accepted_ids == [fresh.event_id]
    old.refresh_from_db()
    assert old.status == Status.EXPIRED
    assert "older than 7 days" in old.last_error
    # Expired is final: later runs leave it alone.
    sending.send_pending()
    assert len(fake_meta.posts) == 1


def test_an_event_waiting_for_configuration_expires_too(fake_meta, settings):
    settings.META_DATASET_ID = ""
    (event,) = pending_events(1)
    ConversionEvent.objects.filter(pk=event.pk).update(
        event_time=timezone.now() - dt.timedelta(days=7, minutes=1)
    )
    assert sending.send_pending().expired == 1
    assert fake_meta.posts == []


# --- Pauses and missing configuration ----------------------------------------------------------


def test_without_a_dataset_events_wait_with_a_visible_reason(fake_meta, settings):
    settings.META_DATASET_ID = ""
    pending_events(2)

    summary = sending.send_pending()

    assert (summary.posts, summary.waiting) == (0, 2)
    assert summary.reason.startswith("META_DATASET_ID is not set")
    assert SenderState.current().waiting_reason == summary.reason
    assert sending.blocker() == summary.reason
    assert statuses() == {Status.PENDING: 2}

    settings.META_DATASET_ID = DATASET
    assert sending.send_pending().sent == 2
    assert SenderState.current().waiting_reason == ""


def test_without_a_token_events_wait_with_a_visible_reason(fake_meta, settings):
    settings.META_ACCESS_TOKEN = ""
    pending_events(1)
    summary = sending.send_pending()
    assert summary.reason.startswith("META_ACCESS_TOKEN is not set")
    assert fake_meta.posts == []


def test_190_pauses_sending_visibly_until_a_new_token_is_configured(fake_meta, settings):
    events = pending_events(3)
    fake_meta.fail_next(
        graph_error(190, "Error validating access token: Session has expired.", error_subcode=463)
    )

    first = sending.send_pending()

    assert "Meta refused the access token" in first.reason
    assert "Session has expired" in first.reason
    state = SenderState.current()
    assert state.paused_reason == first.reason and state.paused_at is not None
    assert TOKEN not in state.paused_reason and TOKEN not in state.paused_fingerprint
    assert statuses() == {Status.PENDING: 3}
    assert SendAttempt.objects.get().outcome == Outcome.PAUSED
    # Still the refused token: nothing is sent, the reason stays visible.
    again = sending.send_pending()
    assert (again.posts, again.reason) == (0, first.reason)
    assert sending.blocker() == first.reason

    settings.META_ACCESS_TOKEN = "a-brand-new-token"
    resumed = sending.send_pending()

    assert (resumed.reason, resumed.sent) == ("", 3)
    assert sorted(fake_meta.accepted_ids) == sorted(e.event_id for e in events)
    assert SenderState.current().paused_reason == ""


def test_a_dataset_the_token_cannot_use_pauses_until_an_admin_resumes(fake_meta):
    pending_events(1)
    fake_meta.fail_next(graph_error(200, "(#200) Permissions error", status=403))
    assert "Meta refused access to dataset" in sending.send_pending().reason
    assert sending.send_pending().posts == 0

    assert sending.resume() is True
    assert sending.send_pending().sent == 1


def test_a_dataset_no_longer_configured_that_meta_refuses_fails_its_events_only(
    fake_meta, mocked_graph
):
    old_url = f"{GRAPH}/777/events"
    mocked_graph.add("POST", old_url, json={"error": {"message": "(#200) Permissions error",
                                                      "code": 200}}, status=403)  # fmt: skip
    stale, current = pending_events(2)
    ConversionEvent.objects.filter(pk=stale.pk).update(dataset_id="777")

    summary = sending.send_pending()

    assert (summary.sent, summary.failed, summary.reason) == (1, 1, "")
    assert fake_meta.accepted_ids == [current.event_id]
    stale.refresh_from_db()
    assert stale.status == Status.FAILED
    assert stale.last_error.startswith("Meta refused dataset 777: (#200) Permissions error")
    assert sending.blocker() == ""


def test_an_event_without_customer_information_fails_without_a_post(fake_meta):
    (event,) = pending_events(1)
    ConversionEvent.objects.filter(pk=event.pk).update(user_data={})
    summary = sending.send_pending()
    assert (summary.posts, summary.failed) == (0, 1)
    assert ConversionEvent.objects.get(pk=event.pk).last_error.startswith("Not sent: the lead")


# --- Claims and exactly once -------------------------------------------------------------------


def test_two_claimers_never_take_the_same_row():
    events = pending_events(5)
    now = timezone.now()
    first = sending.claim(claim_token="run-a", dataset=DATASET, limit=3, due_before=now)
    second = sending.claim(claim_token="run-b", dataset=DATASET, limit=10, due_before=now)
    assert [e.pk for e in first] == [e.pk for e in events[:3]]
    assert [e.pk for e in second] == [e.pk for e in events[3:]]
    # Two runs that read the same ids before either claimed them: each row goes once.
    ConversionEvent.objects.update(status=Status.PENDING, claim_token="")
    ids = [e.pk for e in events]
    assert sending.take(ids, claim_token="run-a", dataset=DATASET, now=now) == 5
    assert sending.take(ids, claim_token="run-b", dataset=DATASET, now=now) == 0
    assert set(ConversionEvent.objects.values_list("claim_token", flat=True)) == {"run-a"}


def test_a_claim_left_by_a_dead_run_is_released_and_sent(fake_meta):
    (event,) = pending_events(1)
    long_ago = timezone.now() - sending.STALE_CLAIM - dt.timedelta(seconds=1)
    ConversionEvent.objects.filter(pk=event.pk).update(
        status=Status.SENDING, claim_token="dead-run", claimed_at=long_ago
    )
    summary = sending.send_pending()
    assert (summary.released, summary.sent) == (1, 1)


def test_a_fresh_claim_of_another_run_is_left_alone(fake_meta):
    (event,) = pending_events(1)
    ConversionEvent.objects.filter(pk=event.pk).update(
        status=Status.SENDING, claim_token="live-run", claimed_at=timezone.now()
    )
    assert sending.send_pending().posts == 0
    assert ConversionEvent.objects.get(pk=event.pk).claim_token == "live-run"


def test_a_sent_event_is_never_sent_again(fake_meta):
    (event,) = pending_events(1)
    sending.send_pending()
    sending.send_pending()
    assert sending.retry_failed([event.pk]) == 0  # retry re-pends failed events only
    sending.send_pending()
    assert fake_meta.accepted_ids == [event.event_id]
    # The database itself refuses to move a sent event out of `sent`.
    with pytest.raises(IntegrityError), transaction.atomic():
        ConversionEvent.objects.filter(pk=event.pk).update(status=Status.PENDING)
    assert ConversionEvent.objects.get(pk=event.pk).status == Status.SENT


def test_retry_re_pends_a_failed_event(fake_meta):
    events = pending_events(2)
    fake_meta.bad = {events[0].event_id}
    sending.send_pending()
    fake_meta.bad = set()  # the lead's data was fixed
    assert sending.retry_failed([e.pk for e in events]) == 1
    assert sending.send_pending().sent == 1
    assert statuses() == {Status.SENT: 2}


def test_an_error_mid_run_hands_every_claim_back(fake_meta, monkeypatch):
    pending_events(3)

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sending._Run, "post", broken)
    with pytest.raises(RuntimeError):
        sending.send_pending()
    assert statuses() == {Status.PENDING: 3}
    assert set(ConversionEvent.objects.values_list("claim_token", flat=True)) == {""}


# --- Entry points ------------------------------------------------------------------------------


def test_send_conversions_command_sends_now_and_prints_a_summary(fake_meta):
    pending_events(3)
    out, err = io.StringIO(), io.StringIO()
    call_command("send_conversions", stdout=out, stderr=err)
    assert out.getvalue() == ("3 sent in 1 POSTs, 0 failed, 0 expired, 0 to retry, 0 waiting.\n")
    assert err.getvalue() == ""


def test_send_conversions_command_says_why_events_wait(settings):
    settings.META_DATASET_ID = ""
    pending_events(1)
    out, err = io.StringIO(), io.StringIO()
    call_command("send_conversions", stdout=out, stderr=err)
    assert out.getvalue() == "0 sent in 0 POSTs, 0 failed, 0 expired, 0 to retry, 1 waiting.\n"
    assert err.getvalue().startswith("Events are waiting: META_DATASET_ID is not set")


def test_the_minute_schedule_exists():
    schedule = Schedule.objects.get(func="capi.tasks.send_pending")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        Schedule.MINUTES,
        1,
        -1,
    )


def test_a_run_out_of_time_queues_its_continuation(fake_meta, monkeypatch):
    from capi import tasks

    pending_events(3)
    monkeypatch.setattr(sending, "TASK_TIME_BUDGET", -1.0)
    result = tasks.send_pending()
    assert (result["posts"], result["more"]) == (0, True)
    assert [task["func"] for task in queued_tasks()] == ["capi.tasks.send_pending"]
    assert statuses() == {Status.PENDING: 3}
