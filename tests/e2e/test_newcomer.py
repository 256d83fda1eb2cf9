"""The newcomer's first minute: `make run` with no Meta settings starts the app, the worker
and the Meta sandbox; demo leads arrive through signed webhooks; moving one through the API
sends a Conversion Leads event that the sandbox records. The terminal shows the URL, where
the password is, and the heartbeat; the processes' output is in their logs; the sandbox
stops feeding at SANDBOX_MAX_LEADS."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.e2e

# A newcomer's machine has none of these; the test process sets some for itself.
CLEARED_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "META_APP_SECRET",
    "META_ACCESS_TOKEN",
    "META_GRAPH_URL",
    "META_WWW_URL",
    "META_DATASET_ID",
    "META_VERIFY_TOKEN",
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "LEADLOOP_SANDBOX",
    "SANDBOX_MAX_LEADS",
    "HEARTBEAT_INTERVAL",
)
# The sandbox's first round sends 3 leads; with this limit it sends no more, so the counts
# the heartbeat shows are known.
MAX_LEADS = 3
LIMIT_MESSAGE = (
    "The demo has 3 leads (SANDBOX_MAX_LEADS=3): no more are sent. Those leads, moves and "
    "conversion events keep working; raise SANDBOX_MAX_LEADS, or set it to 0 for no limit, "
    "to get more."
)
HEARTBEAT = re.compile(
    r"^\d\d:\d\d:\d\d  leads: (\d+), \d+ in the last minute, (\d+) waiting for fetch"
    r" \| events: (\d+) sent, (\d+) pending, (\d+) failed$",
    re.MULTILINE,
)


@pytest.fixture
def newcomer(tmp_path: Path):
    """`make run`'s own script, in a scratch directory for its .env, database and files."""
    port, sandbox_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in CLEARED_VARIABLES}
    env |= {
        "LEADLOOP_ENV_FILE": str(tmp_path / ".env"),
        "LEADLOOP_RUN_DIR": str(tmp_path / "run"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CACHE_DIR": str(tmp_path / "cache"),
        "Q_CLUSTER_NAME": f"newcomer-{port}",
        "PORT": str(port),
        "SANDBOX_PORT": str(sandbox_port),
        "SANDBOX_INTERVAL": "2",
        "SANDBOX_MAX_LEADS": str(MAX_LEADS),
        "HEARTBEAT_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if env.get("REDIS_URL"):
        # Its own Redis database, so this app's queue and cache are its own.
        env["REDIS_URL"] = re.sub(r"/\d*$", "", env["REDIS_URL"]) + "/3"
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "scripts/run.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    app = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError((tmp_path / "run.log").read_text())
        try:
            return requests.get(f"{app}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=90)
        yield {"app": app, "sandbox": f"http://127.0.0.1:{sandbox_port}", "env": env,
               "log": tmp_path / "run.log", "run_dir": tmp_path / "run"}  # fmt: skip
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Ctrl-C stops everything cleanly.
    assert process.returncode == 0, (tmp_path / "run.log").read_text()


def test_newcomer_sees_leads_moves_one_and_meta_receives_the_event(newcomer):
    started = time.monotonic()
    created = subprocess.run(
        [sys.executable, "manage.py", "drf_create_token", "admin"],
        cwd=ROOT, env=newcomer["env"], capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = re.search(r"([0-9a-f]{40})", created.stdout).group(1)
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"

    def sandbox_leads() -> list[dict]:
        rows = api.get(f"{newcomer['app']}/api/v1/leads/", params={"stage": "new"}).json()
        return rows["results"]

    leads = wait_until(sandbox_leads, timeout=60)
    # Demo leads arrive complete: answers from the sandbox's forms, in the first stage.
    lead = leads[0]
    assert lead["field_data"]
    assert lead["page"] == "104000000000001"
    assert time.monotonic() - started < 60

    moved = api.patch(f"{newcomer['app']}/api/v1/leads/{lead['id']}/", json={"stage": "contacted"})
    assert moved.status_code == 200, moved.text

    def received() -> list[dict]:
        with urllib.request.urlopen(f"{newcomer['sandbox']}/__sandbox__/events") as response:  # noqa: S310
            events = json.loads(response.read())
        return [
            e
            for e in events
            if e["user_data"]["lead_id"] == int(lead["leadgen_id"])
            and e["event_name"] == "Contacted"
        ]

    events = wait_until(received, timeout=60, every=0.5)
    assert len(events) == 1
    event = events[0]
    assert event["action_source"] == "system_generated"
    assert event["custom_data"] == {"event_source": "crm", "lead_event_source": "Leadloop"}
    # Its raw-lead event went too: every stage change, the first one included.
    with urllib.request.urlopen(f"{newcomer['sandbox']}/__sandbox__/events") as response:  # noqa: S310
        names = {
            e["event_name"]
            for e in json.loads(response.read())
            if e["user_data"]["lead_id"] == int(lead["leadgen_id"])
        }
    assert names == {"Lead", "Contacted"}


def test_the_terminal_shows_the_url_the_login_and_a_heartbeat_and_the_logs_the_rest(newcomer):
    run_dir, terminal = newcomer["run_dir"], newcomer["log"]

    # Every demo lead fetched and its Lead event sent, and then no more leads.
    def settled() -> tuple[str, ...] | None:
        beats = HEARTBEAT.findall(terminal.read_text())
        return beats[-1] if beats and beats[-1] == ("3", "0", "3", "0", "0") else None

    wait_until(settled, timeout=60, every=0.5)
    sandbox_log = run_dir / "sandbox.log"
    wait_until(lambda: LIMIT_MESSAGE in sandbox_log.read_text(), timeout=30, every=0.5)

    output = terminal.read_text()
    app = newcomer["app"]
    assert f"  Leadloop is running at {app}/\n" in output
    password_file = run_dir / "admin-password"
    assert f"  Admin: {app}/admin/  (user admin, password in {password_file})\n" in output
    assert password_file.read_text().strip() not in output
    assert (
        "  sends a few demo leads every 2 s until the demo has 3 (SANDBOX_MAX_LEADS).\n" in output
    )
    logs = ", ".join(str(run_dir / name) for name in ("sandbox.log", "web.log", "worker.log"))
    assert f"  Logs: {logs}. Press Ctrl-C to stop.\n" in output
    # The processes' output is in their logs, not on the terminal.
    assert '"POST /webhooks/meta/ HTTP/1.1" 200' in (run_dir / "web.log").read_text()
    assert "Q Cluster" in (run_dir / "worker.log").read_text()
    assert sandbox_log.read_text().count("Sent 1 demo lead(s): HTTP 200") == 3
    for noise in ("POST /webhooks/meta/", "Q Cluster", "demo lead(s)", "Connected page"):
        assert noise not in output
    # Said once, though the feeder keeps looking every 2 s.
    assert sandbox_log.read_text().count(LIMIT_MESSAGE) == 1
