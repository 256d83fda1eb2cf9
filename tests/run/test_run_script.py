"""scripts/run.py (`make run`): the processes' logs under .run/, a process that exits on its
own named with the end of its log, and what the terminal says at start."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(tmp_path, monkeypatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("leadloop_run", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RUN_DIR", tmp_path / "run")
    monkeypatch.chdir(tmp_path)
    return module


def test_each_run_starts_a_fresh_log_and_keeps_the_previous_one(run, tmp_path) -> None:
    for text in (b"first run\n", b"second run\n"):
        with run.open_log("web") as log:
            log.write(text)
    with run.open_log("web") as log:
        log.write(b"third run\n")

    logs = tmp_path / "run"
    assert sorted(p.name for p in logs.iterdir()) == ["web.log", "web.log.1"]
    assert (logs / "web.log").read_bytes() == b"third run\n"
    assert (logs / "web.log.1").read_bytes() == b"second run\n"


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_process_that_exits_is_named_with_the_end_of_its_log(run) -> None:
    worker = run.start(
        "worker",
        python("import sys\nfor i in range(20): print('line', i)\nsys.exit(3)"),
        run.open_log("worker"),
    )
    worker.process.wait()

    assert run.exit_report(worker) == (
        "The worker exited (3); see run/worker.log. Its last lines:\n"
        + "\n".join(f"    line {i}" for i in range(5, 20))
    )


def test_a_killed_process_with_an_empty_log(run) -> None:
    web = run.start("web server", python("import time; time.sleep(60)"), run.open_log("web"))
    web.process.send_signal(signal.SIGKILL)
    web.process.wait()

    assert run.exit_report(web) == "The web server was killed by signal 9; see run/web.log (empty)."


def test_supervise_stops_the_others_when_one_exits_and_returns_it(run) -> None:
    web = run.start("web server", python("import time; time.sleep(60)"), run.open_log("web"))
    worker = run.start("worker", python("import sys; sys.exit(2)"), run.open_log("worker"))
    handlers = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    beats: list[None] = []

    exited = run.supervise([web, worker], lambda: beats.append(None))

    assert exited == [worker]
    assert worker.process.returncode == 2
    assert web.process.returncode == -signal.SIGTERM
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_the_banner_says_where_the_password_and_the_logs_are(run, tmp_path) -> None:
    logs = [tmp_path / "run" / name for name in ("sandbox.log", "web.log", "worker.log")]

    text = run.banner(
        url="http://127.0.0.1:8000/",
        login="user admin, password in .run/admin-password",
        sandbox_url="http://127.0.0.1:8765",
        max_leads=300,
        logs=logs,
    )

    assert text == (
        "\n"
        "  Leadloop is running at http://127.0.0.1:8000/\n"
        "  Admin: http://127.0.0.1:8000/admin/  (user admin, password in .run/admin-password)\n"
        "  Sandbox mode: no Meta settings, so a local Meta stand-in (http://127.0.0.1:8765)\n"
        "  sends a few demo leads every 20 s until the demo has 300 (SANDBOX_MAX_LEADS).\n"
        "  Move one, then see what Meta received at http://127.0.0.1:8000/sandbox/events/ .\n"
        "  Set your Meta settings in .env for the real thing.\n"
        "  Logs: run/sandbox.log, run/web.log, run/worker.log. Press Ctrl-C to stop.\n"
    )


def test_the_banner_without_the_sandbox(run, tmp_path) -> None:
    text = run.banner(
        url="http://127.0.0.1:8000/",
        login="user admin, password in .run/admin-password",
        sandbox_url="",
        max_leads=300,
        logs=[tmp_path / "run" / "web.log", tmp_path / "run" / "worker.log"],
    )

    assert text.splitlines()[3:] == [
        "  Meta webhook URL: https://<your public host>/webhooks/meta/",
        "  Logs: run/web.log, run/worker.log. Press Ctrl-C to stop.",
    ]


def test_a_setup_step_that_fails_shows_the_end_of_its_log(run, monkeypatch) -> None:
    monkeypatch.setattr(run, "ROOT", ROOT)
    with pytest.raises(SystemExit) as raised:
        run.manage("no_such_command", log=run.open_log("sandbox"))

    message = str(raised.value)
    assert message.startswith("manage.py no_such_command failed (1); the end of run/sandbox.log:\n")
    assert "Unknown command: 'no_such_command'" in message


def test_the_admin_password_is_not_printed(run, monkeypatch) -> None:
    monkeypatch.setattr(run, "PASSWORD_FILE", run.RUN_DIR / "admin-password")
    run.RUN_DIR.mkdir()
    run.PASSWORD_FILE.write_text("s3cret-password\n")
    monkeypatch.setattr(
        run.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 3)
    )  # a superuser exists

    assert run.ensure_admin() == "user admin, password in run/admin-password"
