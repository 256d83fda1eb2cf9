"""Bulk read (`sync_leads`) and the scheduled reconciliation, against the Graph stand-in
over real HTTP: paging with empty pages, filtering on the high-water mark, retries,
throttling, token errors, and a fixed number of queries per page."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_q.models import Schedule

from leads import bulk, pipeline, schedules, tasks
from leads.graph import GraphClient
from leads.models import Form, Lead, Page, PipelineStage, StageChange
from sandbox import MetaSandbox
from tests.conftest import (
    connected_page,
    graph_lead,
    queued_tasks,
    run_queued_tasks,
    run_tasks,
)

pytestmark = pytest.mark.django_db

PAGE = "111111111111111"
FORM = "222222222222222"
OTHER_FORM = "222222222222333"
AD = "23850000000000001"
PAGE_TOKEN = "page-token-bulk"
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z
LEADS_PATH = rf"/v24\.0/{FORM}/leads$"


class FakeTime:
    """Clock and sleep in one: sleeping advances the clock and records the seconds."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def server() -> Iterator[MetaSandbox]:
    sandbox = MetaSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def meta(server: MetaSandbox, settings) -> MetaSandbox:
    server.reset()
    server.add_page(PAGE, name="Acme Kitchens", token=PAGE_TOKEN)
    server.add_form(
        FORM,
        page_id=PAGE,
        name="Kitchen quote",
        created_time=T0 - 86400,
        questions=[{"key": "full_name"}, {"key": "email"}, {"key": "phone_number"}],
    )
    settings.META_GRAPH_URL = server.url
    settings.LEAD_SYNC_PAGE_SIZE = 100
    return server


@pytest.fixture
def page(meta: MetaSandbox) -> Page:
    return connected_page(token=PAGE_TOKEN, page_id=PAGE, name="Acme Kitchens")


@pytest.fixture
def form(page: Page) -> Form:
    return Form.objects.create(form_id=FORM, page=page, name="Kitchen quote")


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def lead_id(i: int) -> str:
    return str(1_000_000_000_000_000 + i)


def add_leads(meta: MetaSandbox, count: int, *, start: int = T0, form_id: str = FORM) -> None:
    """`count` leads one minute apart from `start`: lead i is created at start + 60 i."""
    for i in range(count):
        meta.add_lead(
            {
                "id": lead_id(i),
                "created_time": start + i * 60,
                "form_id": form_id,
                "ad_id": AD,
                "ad_name": "Spring ad",
                "adset_id": "23850000000000002",
                "adset_name": "Adset",
                "campaign_id": "23850000000000003",
                "campaign_name": "Campaign",
                "is_organic": False,
                "platform": "fb",
                "field_data": [
                    {"name": "full_name", "values": [f"Lead {i}"]},
                    {"name": "email", "values": [f"lead{i}@example.com"]},
                    {"name": "phone_number", "values": ["+4915112345678"]},
                ],
            }
        )


def lead_requests(meta: MetaSandbox, path: str = LEADS_PATH) -> list:
    return [r for r in meta.requests if re.search(path, r.path)]


def filtering_of(request) -> list[dict]:
    return json.loads(request.query["filtering"]) if "filtering" in request.query else []


def at(unix: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, tz=dt.UTC)


def sync(**options) -> str:
    out = io.StringIO()
    call_command("sync_leads", *[f"--{k}={v}" for k, v in options.items()], stdout=out)
    return out.getvalue()


def patient_client(fake_time: FakeTime) -> GraphClient:
    return GraphClient(max_wait=bulk.THROTTLE_MAX_WAIT, sleep=fake_time.sleep, clock=fake_time.time)


# --- Paging, idempotence, the high-water mark ---------------------------------------------


def test_2500_leads_over_26_pages_with_an_empty_page_are_stored_once(meta, form):
    add_leads(meta, 2500)
    meta.add_empty_page_at(LEADS_PATH, 12)

    out = sync()

    requests = lead_requests(meta)
    assert len(requests) == 26  # 25 full pages and the empty one in the middle
    first = requests[0]
    assert first.query["limit"] == "100"
    assert set(first.query["fields"].split(",")) == set(bulk.LEAD_FIELDS)
    assert first.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert "filtering" not in first.query  # never read before: everything
    assert Lead.objects.count() == 2500
    assert Lead.objects.values("leadgen_id").distinct().count() == 2500
    assert set(Lead.objects.values_list("source", "fetch_status").distinct()) == {
        (Lead.Source.BULK, Lead.FetchStatus.COMPLETE)
    }
    assert StageChange.objects.count() == 2500
    assert Lead.objects.filter(stage__isnull=True).count() == 0
    lead = Lead.objects.select_related("form", "page").get(leadgen_id=lead_id(7))
    assert (lead.form, lead.page, lead.email, lead.full_name) == (
        form,
        form.page,
        "lead7@example.com",
        "Lead 7",
    )
    assert lead.created_time == at(T0 + 7 * 60)
    assert (lead.ad_id, lead.adset_name, lead.is_organic, lead.platform) == (
        AD,
        "Adset",
        False,
        "fb",
    )
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 2499 * 60)
    assert form.leads_sync_error == ""
    assert (
        f"form {form}: 26 pages, 2500 rows, 2500 created, 0 completed, 0 unchanged; "
        "mark never -> 2025-01-02 17:39:00 UTC" in out
    )
    assert "Total: 1 run, 26 pages, 2500 rows, 2500 created, 0 completed, 0 unchanged" in out

    # Second run: nothing new, and Meta is asked only for leads after the mark.
    meta.clear_requests()
    out = sync()
    requests = lead_requests(meta)
    assert len(requests) == 1
    assert filtering_of(requests[0]) == [
        {"field": "time_created", "operator": "GREATER_THAN", "value": T0 + 2499 * 60}
    ]
    assert Lead.objects.count() == 2500
    assert StageChange.objects.count() == 2500
    assert "1 pages, 0 rows, 0 created, 0 completed, 0 unchanged" in out


def test_new_leads_after_the_mark_are_read_and_the_mark_follows(meta, form):
    add_leads(meta, 150)
    sync()
    add_leads(meta, 180)  # the same 150 again (Meta keeps them) and 30 newer ones
    meta.clear_requests()

    out = sync(form=FORM)

    (request,) = lead_requests(meta)
    assert filtering_of(request)[0]["value"] == T0 + 149 * 60
    assert "1 pages, 30 rows, 30 created, 0 completed, 0 unchanged" in out
    assert Lead.objects.count() == 180
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 179 * 60)


def test_the_mark_stays_a_safety_lag_behind_the_run(meta, form, monkeypatch, settings):
    settings.LEAD_SYNC_SAFETY_LAG = 300
    run_start = T0 + 100 * 60 + 30
    monkeypatch.setattr(bulk, "_now_unix", lambda: run_start)
    add_leads(meta, 101)  # the newest is 30 s old when the run starts

    sync(form=FORM)

    form.refresh_from_db()
    # Not the newest lead (T0 + 6000): Meta may still list a lead created minutes before
    # the run, so the next run reads the last five minutes again.
    assert form.leads_synced_until == at(run_start - 300)
    meta.clear_requests()
    out = sync(form=FORM)
    assert filtering_of(lead_requests(meta)[0])[0]["value"] == run_start - 300
    assert "5 rows, 0 created, 0 completed, 5 unchanged" in out
    assert Lead.objects.count() == 101


def test_since_and_until_are_sent_and_a_gap_keeps_the_mark(meta, form):
    add_leads(meta, 10)
    Form.objects.filter(pk=form.pk).update(leads_synced_until=at(T0 + 60))

    out = sync(form=FORM, since=T0 + 5 * 60, until=T0 + 8 * 60)

    (request,) = lead_requests(meta)
    assert filtering_of(request) == [
        {"field": "time_created", "operator": "GREATER_THAN", "value": T0 + 300},
        {"field": "time_created", "operator": "LESS_THAN", "value": T0 + 480},
    ]
    assert sorted(Lead.objects.values_list("leadgen_id", flat=True)) == [lead_id(6), lead_id(7)]
    # Leads 2 to 5 were not read: the mark must not jump over them.
    assert "mark 2025-01-01 00:01:00 UTC -> 2025-01-01 00:01:00 UTC" in out
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 60)


def test_until_without_a_gap_moves_the_mark_to_the_newest_stored(meta, form):
    add_leads(meta, 10)
    sync(form=FORM, until=T0 + 5 * 60)
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 4 * 60)
    assert Lead.objects.count() == 5


def test_ad_leads_are_read_from_the_ad_edge_without_a_mark(meta, form):
    add_leads(meta, 3)
    meta.add_lead({"id": "77", "form_id": FORM, "created_time": T0, "ad_id": "999"})

    out = sync(ad=AD, page=PAGE)

    (request,) = lead_requests(meta, rf"/{AD}/leads$")
    assert set(request.query["fields"].split(",")) == set(bulk.LEAD_FIELDS)
    assert set(Lead.objects.values_list("leadgen_id", flat=True)) == {
        lead_id(0),
        lead_id(1),
        lead_id(2),
    }
    assert set(Lead.objects.values_list("form__form_id", "page__page_id")) == {(FORM, PAGE)}
    assert f"ad {AD}: 1 pages, 3 rows, 3 created" in out
    assert "mark" not in out
    form.refresh_from_db()
    assert form.leads_synced_until is None


# --- Existing leads: completed, or left alone ------------------------------------------


def test_incomplete_leads_are_completed_and_complete_ones_left_alone(meta, form):
    add_leads(meta, 4)
    stage = pipeline.PipelineStage.first()
    failed = Lead.objects.create(
        leadgen_id=lead_id(0),
        page=form.page,
        form=form,
        created_time=at(T0),
        ad_id=AD,
        fetch_status=Lead.FetchStatus.FAILED,
        fetch_error="(#1) An unknown error occurred (gave up after 8 attempts)",
        fetch_attempts=8,
    )
    parked = Lead.objects.create(
        leadgen_id=lead_id(1), page=form.page, fetch_status=Lead.FetchStatus.PARKED
    )
    complete = Lead.objects.create(
        leadgen_id=lead_id(2),
        page=form.page,
        form=form,
        fetch_status=Lead.FetchStatus.COMPLETE,
        email="edited-by-sales@example.com",
        stage=stage,
    )

    out = sync(form=FORM)

    assert "1 pages, 4 rows, 1 created, 2 completed, 1 unchanged" in out
    failed.refresh_from_db()
    assert failed.fetch_status == Lead.FetchStatus.COMPLETE
    assert (failed.fetch_error, failed.fetch_after, failed.source) == ("", None, "webhook")
    assert failed.email == "lead0@example.com"
    assert failed.field_data[0] == {"name": "full_name", "values": ["Lead 0"]}
    assert failed.stage == stage
    parked.refresh_from_db()
    assert (parked.fetch_status, parked.form, parked.created_time) == (
        Lead.FetchStatus.COMPLETE,
        form,
        at(T0 + 60),
    )
    complete.refresh_from_db()
    assert complete.email == "edited-by-sales@example.com"
    assert StageChange.objects.filter(lead=complete).count() == 0
    assert StageChange.objects.filter(lead__in=[failed, parked]).count() == 2


def test_reconciliation_stores_a_missed_lead_and_completes_a_failed_fetch(
    meta, form, django_capture_on_commit_callbacks
):
    add_leads(meta, 2)
    failed = Lead.objects.create(
        leadgen_id=lead_id(0),
        page=form.page,
        form=form,
        fetch_status=Lead.FetchStatus.FAILED,
        fetch_error="(HTTP 503) Service unavailable (gave up after 8 attempts)",
    )

    with django_capture_on_commit_callbacks(execute=True):
        summary = tasks.reconcile_leads()

    assert summary == {"forms": 1, "created": 1, "completed": 1, "failed": 0, "unfinished": 0}
    completed = Lead.objects.get(leadgen_id=lead_id(0))
    assert completed.pk == failed.pk
    assert completed.fetch_status == Lead.FetchStatus.COMPLETE
    assert completed.full_name == "Lead 0"
    missed = Lead.objects.get(leadgen_id=lead_id(1))
    assert (missed.source, missed.fetch_status, missed.email) == (
        Lead.Source.BULK,
        Lead.FetchStatus.COMPLETE,
        "lead1@example.com",
    )
    assert StageChange.objects.filter(lead=failed).count() == 1
    assert StageChange.objects.filter(lead=missed).count() == 1

    tasks.reconcile_leads()
    assert StageChange.objects.count() == 2
    assert Lead.objects.count() == 2


def test_reconciliation_loads_a_form_created_on_meta_since(meta, form):
    meta.add_form(OTHER_FORM, page_id=PAGE, name="Bathroom quote", created_time=T0)
    add_leads(meta, 2, form_id=OTHER_FORM)

    tasks.reconcile_leads()

    new_form = Form.objects.get(form_id=OTHER_FORM)
    assert (new_form.page, new_form.name, new_form.status) == (
        form.page,
        "Bathroom quote",
        "ACTIVE",
    )
    assert [q["key"] for q in new_form.questions] == ["full_name", "email", "phone_number"]
    assert Lead.objects.filter(form=new_form).count() == 2
    assert new_form.leads_sync_at is not None


def test_reconciliation_schedule_exists_after_migrate_and_follows_the_setting(settings):
    # The test database was built by `migrate`, whose post_migrate made the schedule.
    schedule = Schedule.objects.get(name="leads: reconcile leads")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "leads.tasks.reconcile_leads",
        Schedule.MINUTES,
        15,
        -1,
    )
    settings.RECONCILE_MINUTES = 5
    schedules.ensure_schedules()
    assert Schedule.objects.get(name="leads: reconcile leads").minutes == 5
    settings.RECONCILE_MINUTES = 0
    schedules.ensure_schedules()
    assert not Schedule.objects.filter(name="leads: reconcile leads").exists()


def test_reconciliation_out_of_time_continues_where_it_stopped(meta, form, monkeypatch):
    add_leads(meta, 250)
    monkeypatch.setattr(tasks, "_reconcile_budget", lambda: 0.0)  # one page per task

    tasks.reconcile_leads()

    assert Lead.objects.count() == 100
    form.refresh_from_db()
    assert form.leads_synced_until is None  # not read to the end yet
    (task,) = queued_tasks()
    assert task["func"] == "leads.tasks.reconcile_leads"
    form_pks, resume = task["args"]
    assert form_pks == [form.pk]
    # Leads 249 to 150 are stored; the continuation reads those older than lead 150.
    assert resume[str(form.pk)]["until"] == T0 + 150 * 60 + 1
    assert resume[str(form.pk)]["newest"] == T0 + 249 * 60
    run_tasks([task])
    run_queued_tasks()

    assert Lead.objects.count() == 250
    assert StageChange.objects.count() == 250
    # The first task also fetched the page after its last one (read ahead, then dropped).
    continuation = next(r for r in lead_requests(meta) if "filtering" in r.query)
    assert filtering_of(continuation) == [
        {"field": "time_created", "operator": "LESS_THAN", "value": T0 + 150 * 60 + 1}
    ]
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 249 * 60)


# --- Failures: retries, throttling, tokens ----------------------------------------------


def test_a_page_that_fails_a_few_times_is_retried_and_the_run_completes(meta, form, fake_time):
    add_leads(meta, 1000)
    meta.add_fault(path=LEADS_PATH, status=200, times=3)  # three pages answer normally
    meta.add_fault(path=LEADS_PATH, status=500, code=1, times=2)
    meta.add_fault(path=LEADS_PATH, status=502, body="<html>Bad gateway</html>", times=1)

    report = bulk.sync_leads(form_id=FORM, client=patient_client(fake_time), sleep=fake_time.sleep)

    (result,) = report.results
    assert result.status == bulk.RunStatus.COMPLETE
    assert (result.pages, result.rows, result.created) == (10, 1000, 1000)
    assert len(lead_requests(meta)) == 13
    assert fake_time.slept == [2.0, 4.0, 8.0]
    assert Lead.objects.count() == 1000
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 999 * 60)


def test_a_page_that_keeps_failing_leaves_the_mark_and_the_next_run_reads_it(meta, form, fake_time):
    add_leads(meta, 1000)
    Form.objects.filter(pk=form.pk).update(leads_synced_until=at(T0 - 60))
    meta.add_fault(path=LEADS_PATH, status=200, times=3)
    meta.add_fault(path=LEADS_PATH, status=503, times=-1)

    report = bulk.sync_leads(form_id=FORM, client=patient_client(fake_time), sleep=fake_time.sleep)

    (result,) = report.results
    assert result.status == bulk.RunStatus.FAILED
    assert result.error.startswith("A page kept failing after 5 attempts: (#2) ")
    assert fake_time.slept == [2.0, 4.0, 8.0, 16.0]
    assert len(lead_requests(meta)) == 3 + 5
    assert Lead.objects.count() == 300  # the pages read are kept
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 - 60)
    assert form.leads_sync_error == result.error

    meta.clear_faults()
    meta.clear_requests()
    report = bulk.sync_leads(form_id=FORM, client=patient_client(fake_time))
    assert filtering_of(lead_requests(meta)[0])[0]["value"] == T0 - 60
    assert (report.results[0].created, report.results[0].unchanged) == (700, 300)
    assert Lead.objects.count() == 1000
    assert StageChange.objects.count() == 1000
    form.refresh_from_db()
    assert form.leads_synced_until == at(T0 + 999 * 60)
    assert form.leads_sync_error == ""


def buc_usage(minutes: int) -> dict[str, str]:
    usage = {
        PAGE: [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 12,
                "total_time": 14,
                "estimated_time_to_regain_access": minutes,
            }
        ]
    }
    return {"X-Business-Use-Case-Usage": json.dumps(usage)}


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80005])
def test_throttling_waits_as_long_as_meta_says_before_asking_again(meta, form, fake_time, code):
    add_leads(meta, 300)
    meta.add_fault(path=LEADS_PATH, status=200, times=1)
    meta.add_fault(path=LEADS_PATH, status=400, code=code, headers=buc_usage(1), times=1)
    calls_at: list[float] = []
    client = patient_client(fake_time)
    original = client._request

    def recording(*args, **kwargs):
        calls_at.append(fake_time.now)
        return original(*args, **kwargs)

    client._request = recording  # type: ignore[method-assign]

    report = bulk.sync_leads(form_id=FORM, client=client, sleep=fake_time.sleep)

    assert report.results[0].status == bulk.RunStatus.COMPLETE
    # Page 1, page 2 throttled, then page 2 again a minute later, then page 3.
    assert len(lead_requests(meta)) == 4
    assert fake_time.slept == [60.0]
    start = calls_at[0]
    assert calls_at == [start, start, start + 60, start + 60]
    assert Lead.objects.count() == 300


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80005])
def test_a_long_throttle_stops_the_run_and_reschedules_it(meta, form, code, settings):
    add_leads(meta, 300)
    meta.add_form(OTHER_FORM, page_id=PAGE, created_time=T0)
    Form.objects.create(form_id=OTHER_FORM, page=form.page)
    meta.add_fault(path=LEADS_PATH, status=200, times=1)
    meta.add_fault(path=LEADS_PATH, status=400, code=code, headers=buc_usage(15), times=1)

    summary = tasks.reconcile_leads()

    assert summary["unfinished"] == 2
    # No call after the throttling answer: not the same page, not the other form.
    assert len(lead_requests(meta, r"/leads$")) == 2
    assert Lead.objects.count() == 100
    assert Form.objects.get(pk=form.pk).leads_synced_until is None
    assert "throttling" in Form.objects.get(pk=form.pk).leads_sync_error
    follow_up = Schedule.objects.get(name=tasks.RESCHEDULED_NAME)
    assert follow_up.func == "leads.tasks.reconcile_leads"
    assert follow_up.schedule_type == Schedule.ONCE
    other = Form.objects.get(form_id=OTHER_FORM)
    assert follow_up.args == repr(([form.pk, other.pk], {}))
    wait = (follow_up.next_run - dt.datetime.now(dt.UTC)).total_seconds()
    assert 890 < wait <= 902  # 15 minutes, as Meta estimated

    # A run before the pause is over does not call Meta at all.
    meta.clear_requests()
    tasks.reconcile_leads(form_pks=[form.pk])
    assert lead_requests(meta, r"/leads$") == []


def test_sync_leads_command_fails_clearly_when_throttled(meta, form):
    add_leads(meta, 10)
    meta.add_fault(path=LEADS_PATH, status=400, code=80005, headers=buc_usage(10), times=1)
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("sync_leads", "--form", FORM, stdout=out)
    assert str(excinfo.value) == (
        "1 of 1 runs did not finish; their high-water marks are unchanged, so the next run "
        "reads those leads again. Meta asks to wait 600 s before reading again."
    )
    assert "[throttled] Meta is throttling lead reads; retry in 600 s" in out.getvalue()
    assert Lead.objects.count() == 0


def test_a_rejected_token_marks_the_page_and_parks_its_leads(meta, page, form):
    add_leads(meta, 3)
    other = Form.objects.create(form_id=OTHER_FORM, page=page)
    waiting = Lead.objects.create(leadgen_id="42", page=page, fetch_status="pending")
    meta.revoke_token(PAGE_TOKEN, subcode=463)

    with pytest.raises(CommandError):
        sync(page=PAGE)

    page.refresh_from_db()
    assert page.token_status == Page.TokenStatus.INVALID
    assert "Session has expired" in page.token_error
    waiting.refresh_from_db()
    assert waiting.fetch_status == Lead.FetchStatus.PARKED
    # The forms list (first call) failed; neither form's leads were asked for.
    assert lead_requests(meta, r"/leads$") == []
    assert Form.objects.get(pk=other.pk).leads_synced_until is None
    with pytest.raises(CommandError, match="No usable token for page"):
        sync(page=PAGE)


def test_a_token_rejected_while_reading_leads_is_reported(meta, page, form):
    add_leads(meta, 3)
    meta.add_fault(path=LEADS_PATH, status=400, code=190, subcode=460, times=1)
    report = bulk.sync_leads(form_id=FORM)
    assert report.results[0].status == bulk.RunStatus.UNAUTHORIZED
    page.refresh_from_db()
    assert page.token_status == Page.TokenStatus.INVALID


# --- Command options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"form": "999"}, "Unknown form 999: run connect_page"),
        ({"page": "999"}, "Unknown page 999: run connect_page 999 first."),
        ({"form": "abc"}, "Not a form id: 'abc' (digits expected)."),
        ({"since": "200", "until": "100"}, "--since (200) must be before --until (100)."),
        ({"ad": AD, "form": FORM}, "--ad and --form cannot be combined"),
        ({"ad": "555"}, "No usable token to read ad 555"),
    ],
)
def test_bad_options_are_clear_errors_without_a_call(meta, form, options, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        sync(**options)
    assert meta.requests == []


def test_without_options_every_connected_page_is_read(meta, form, settings):
    stranger = Page.objects.create(page_id="333")  # no token, and no META_ACCESS_TOKEN
    Form.objects.create(form_id="444", page=stranger)
    add_leads(meta, 2)
    out = sync()
    assert "form 444" not in out
    assert Lead.objects.count() == 2


# --- Queries per page ---------------------------------------------------------------------


def page_rows(count: int, *, offset: int = 0) -> list[dict]:
    return [
        graph_lead(
            lead_id(offset + i),
            form_id=FORM,
            created_time=f"2025-01-01T00:{59 - i % 60:02d}:00+0000",
        )
        for i in range(count)
    ]


@pytest.fixture
def mute_stage_receivers(monkeypatch):
    """Leave out whatever other apps do on `stage_changed`, to count this app's queries."""
    monkeypatch.setattr(pipeline.stage_changed, "receivers", [])
    monkeypatch.setattr(pipeline.stage_changed, "sender_receivers_cache", {})


def test_storing_a_page_takes_the_same_queries_for_10_or_100_leads(form):
    def queries(rows: list[dict], incomplete: list[str]) -> int:
        Lead.objects.bulk_create(
            [Lead(leadgen_id=lid, fetch_status="failed", page=form.page) for lid in incomplete]
        )
        with CaptureQueriesContext(connection) as captured:
            counts = bulk.store_page(rows, form=form)
        assert counts.created + counts.completed == len(rows)
        return len(captured)

    small = queries(page_rows(10), [lead_id(0), lead_id(1)])
    large = queries(page_rows(100, offset=1000), [lead_id(1000 + i) for i in range(40)])
    assert small == large


def test_a_page_is_stored_in_a_fixed_small_number_of_queries(form, mute_stage_receivers):
    rows = page_rows(100)
    Lead.objects.bulk_create(
        [Lead(leadgen_id=lead_id(i), fetch_status="pending", page=form.page) for i in range(30)]
    )
    with CaptureQueriesContext(connection) as captured:
        counts = bulk.store_page(rows, form=form)
    assert (counts.created, counts.completed, counts.unchanged) == (70, 30, 0)
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert statements == [
        "SAVEPOINT",
        "SELECT",  # which of the leads we already have
        "SELECT",  # those, locked
        "SELECT",  # pipeline: the first stage
        "INSERT",  # the 70 new ones, in the first stage, one statement that returns their ids
        "UPDATE",  # the 30 completed, one UPDATE
        "SELECT",  # those of them without a stage, locked
        "UPDATE",  # into the first stage
        "INSERT",  # the 100 stage changes
        "RELEASE",
    ]
    assert Lead.objects.filter(stage=PipelineStage.first()).count() == 100
    assert StageChange.objects.filter(to_stage=PipelineStage.first()).count() == 100
    insert = captured.captured_queries[4]["sql"]
    assert insert.count("), (") == 69  # 70 rows of VALUES
    assert 'RETURNING "id", "leadgen_id"' in insert


def test_a_page_of_leads_we_do_not_have_reads_none_of_them(form, mute_stage_receivers):
    with CaptureQueriesContext(connection) as captured:
        counts = bulk.store_page(page_rows(100), form=form)
    assert counts.created == 100
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert statements == ["SAVEPOINT", "SELECT", "SELECT", "INSERT", "INSERT", "RELEASE"]
    assert "leads_lead" in captured.captured_queries[1]["sql"]
    assert "leads_pipelinestage" in captured.captured_queries[2]["sql"]


# --- Progress output ----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(meta, form):
    add_leads(meta, 1200)
    plain = sync(form=FORM)
    assert f"Reading form {form} ..." in plain
    assert f"  form {form}: 10 pages, 1000 rows (1000 created, 0 completed)" in plain

    Lead.objects.all().delete()
    Form.objects.filter(pk=form.pk).update(leads_synced_until=None)
    terminal = Terminal()
    call_command("sync_leads", "--form", FORM, stdout=terminal)
    output = terminal.getvalue()
    assert "\r" in output  # tqdm redraws its line
    assert "1200 leads" in output.replace("\x1b[A", "")
    assert "Reading form" not in output
    assert f"form {form}: 12 pages, 1200 rows, 1200 created" in output
