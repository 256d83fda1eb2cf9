"""`kill -9` of the qcluster worker in the middle of lead fetches and of conversion sends.

The stack (gunicorn + qcluster + the Meta stand-in) runs for real. Each kill lands while a
request to Meta is held by the stand-in *before* it processes it (a delayed fault that then
answers a transient error), so the request never took effect at Meta: the row the dead
worker claimed must be recovered by the stale-claim sweep, and sent or fetched exactly once.

Recovery waits for time to pass (a claim goes stale after Q_CLUSTER timeout + 60 s, a lead
without a task is due a minute after it arrived, the sender's lease lapses after 60 s).
Rather than wait, the test moves the rows' clocks back by an hour (`age_rows`) and then
asks the restarted worker to run the sweeps, as its minute schedules would.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count, F
from django_q.models import Schedule
from django_q.tasks import async_task

from capi.models import ConversionEvent, SenderState
from leads.models import Lead, StageChange
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, load_fixture
from tests.e2e.conftest import ROOT, Stack, database_url, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PAGE_TOKEN = "sandbox-page-token"
CAPI_TOKEN = "sandbox-capi-token"
DATASET = "1261294122522559"
LEADS = 6
# Long enough that the kill always lands inside it, short of the 20 s read timeout.
HOLD = 12.0
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def capi_stack(monkeypatch, request):
    monkeypatch.setenv("LEADLOOP_TEST_DATASET_ID", DATASET)
    monkeypatch.setenv("LEADLOOP_TEST_ACCESS_TOKEN", CAPI_TOKEN)
    monkeypatch.setenv("CAPI_BATCH_WINDOW", "0.3")
    # Only the sweeps this test asks for: no bulk read completing leads behind our back.
    Schedule.objects.filter(func="leads.tasks.reconcile_leads").delete()
    return request.getfixturevalue("stack")


def kill_worker(stack: Stack) -> None:
    """SIGKILL the whole qcluster process group (sentinel, pusher, workers, monitor)."""
    for process in stack.processes:
        if process.args[-1] == "qcluster" and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_worker(stack: Stack) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url(),
        "META_GRAPH_URL": stack.meta.url,
        "META_WWW_URL": stack.meta.url,
        "Q_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    log = stack.logs[0].parent / f"worker-{len(stack.logs)}.log"
    stack.logs.append(log)
    stack.processes.append(
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    )


def age_rows() -> None:
    """Move every clock the recovery looks at an hour into the past, as if an hour had
    gone by since the kill: claims are stale, the lease and the queued mark have lapsed,
    back-offs are over and leads without a task are due for the sweep."""
    Lead.objects.update(
        created_at=F("created_at") - HOUR,
        fetch_claimed_at=F("fetch_claimed_at") - HOUR,
        fetch_after=F("fetch_after") - HOUR,
    )
    ConversionEvent.objects.update(
        created_at=F("created_at") - HOUR,
        claimed_at=F("claimed_at") - HOUR,
        next_attempt_at=F("next_attempt_at") - HOUR,
    )
    SenderState.objects.update(
        lease_until=F("lease_until") - HOUR, send_queued_at=F("send_queued_at") - HOUR
    )


def post_signed(stack: Stack, body: dict) -> None:
    raw = json.dumps(body).encode()
    response = requests.post(
        f"{stack.url}/webhooks/meta/",
        data=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(raw, settings.META_APP_SECRET),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_killed_worker_leaves_every_lead_stored_once_and_every_event_sent_once(capi_stack):
    stack, meta = capi_stack, capi_stack.meta
    meta.add_page("1111", name="Acme", token=PAGE_TOKEN)
    meta.add_form("2222", page_id="1111", name="Form")
    meta.add_token(CAPI_TOKEN)
    created = int(time.time()) - 60
    base = load_fixture("graph_lead.json")
    ids = [str(int(base["id"]) + n) for n in range(LEADS)]
    for leadgen_id in ids:
        meta.add_lead(base | {"id": leadgen_id, "created_time": created})
    call_command("connect_page", "1111", "--token", PAGE_TOKEN, stdout=io.StringIO())

    try:
        # 1. The first lead GET is held, then fails: the worker dies while it waits.
        meta.add_fault(path=r"/v24\.0/\d+$", method="GET", status=503, code=2, delay=HOLD)
        post_signed(
            stack,
            leadgen_body([[change_value(int(i), created_time=created) for i in ids]]),
        )
        wait_until(
            lambda: Lead.objects.filter(fetch_status=Lead.FetchStatus.FETCHING).exists(),
            timeout=60,
        )
        time.sleep(0.3)  # let the claimed fetch reach the stand-in
        kill_worker(stack)
        killed_fetches = set(
            Lead.objects.filter(fetch_status=Lead.FetchStatus.FETCHING).values_list(
                "leadgen_id", flat=True
            )
        )
        assert killed_fetches  # the kill hit a fetch in flight
        assert not Lead.objects.filter(fetch_status=Lead.FetchStatus.COMPLETE).exists()

        # 2. Restart; the first events POST is held, then fails: killed again while it waits.
        meta.add_fault(path=rf"/{DATASET}/events$", method="POST", status=503, code=2, delay=HOLD)
        start_worker(stack)
        age_rows()
        async_task("leads.tasks.sweep_lead_fetches")
        wait_until(
            lambda: ConversionEvent.objects.filter(status=ConversionEvent.Status.SENDING).exists(),
            timeout=90,
        )
        time.sleep(0.3)  # let the claimed batch reach the stand-in
        kill_worker(stack)
        killed_sends = set(
            ConversionEvent.objects.filter(status=ConversionEvent.Status.SENDING).values_list(
                "event_id", flat=True
            )
        )
        assert killed_sends  # the kill hit a send in flight

        # 3. Restart and let the recovery run.
        start_worker(stack)
        age_rows()
        async_task("leads.tasks.sweep_lead_fetches")
        async_task("capi.tasks.send_pending")

        def settled() -> bool:
            return (
                Lead.objects.filter(fetch_status=Lead.FetchStatus.COMPLETE).count() == LEADS
                and ConversionEvent.objects.filter(status=ConversionEvent.Status.SENT).count()
                == LEADS
            )

        wait_until(settled, timeout=120)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{stack.output()}") from None

    # Every lead stored once, complete, in the pipeline once.
    leads = Lead.objects.filter(leadgen_id__in=ids)
    assert sorted(leads.values_list("leadgen_id", flat=True)) == sorted(ids)
    assert Lead.objects.count() == LEADS
    for lead in leads:
        assert lead.fetch_status == Lead.FetchStatus.COMPLETE
        assert lead.field_data == base["field_data"]
        assert lead.email and lead.stage_id is not None
    per_lead = StageChange.objects.values("lead").annotate(n=Count("pk"))
    assert sorted(row["n"] for row in per_lead) == [1] * LEADS
    # Each lead answered by Meta exactly once (the held GET was answered with an error).
    for leadgen_id in ids:
        answered = [
            r
            for r in meta.requests
            if r.method == "GET" and r.path.endswith(f"/{leadgen_id}") and r.status == 200
        ]
        assert len(answered) == 1, leadgen_id

    # Every event accepted by Meta exactly once, including those the dead sender held.
    events = set(ConversionEvent.objects.values_list("event_id", flat=True))
    assert len(events) == LEADS
    accepted = sorted(event["event_id"] for event in meta.events)
    assert accepted == sorted(events)
    assert killed_sends <= events
    assert not ConversionEvent.objects.exclude(status=ConversionEvent.Status.SENT).exists()
