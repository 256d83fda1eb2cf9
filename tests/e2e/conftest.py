"""Real processes for end-to-end tests: the web app under gunicorn, a django-q2 `qcluster`
worker, and the Meta stand-in (`sandbox.MetaSandbox`), all talking over loopback HTTP and
sharing the test database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.db import connection

from sandbox import MetaSandbox

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the *test* database, for processes started by the test."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def wait_until(check: Callable[[], object], *, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {check}")
        time.sleep(every)


@pytest.fixture
def meta() -> Iterator[MetaSandbox]:
    sandbox = MetaSandbox().start()
    yield sandbox
    sandbox.stop()


@dataclass
class Stack:
    url: str
    meta: MetaSandbox
    processes: list[subprocess.Popen]
    logs: list[Path]

    def output(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-4000:] for path in self.logs)


@pytest.fixture
def stack(meta: MetaSandbox, settings, tmp_path: Path) -> Iterator[Stack]:
    """gunicorn + qcluster on the test database, pointed at the Meta stand-in."""
    settings.META_GRAPH_URL = meta.url
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url(),
        "META_GRAPH_URL": meta.url,
        "META_WWW_URL": meta.url,
        "Q_WORKERS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    logs = [tmp_path / "web.log", tmp_path / "worker.log"]
    commands = [
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "4",
        ],
        [sys.executable, "manage.py", "qcluster"],
    ]
    processes = [
        subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            cwd=ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for command, log in zip(commands, logs, strict=True)
    ]
    running = Stack(url=f"http://127.0.0.1:{port}", meta=meta, processes=processes, logs=logs)

    def healthy() -> bool:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a process exited early:\n{running.output()}")
        try:
            return requests.get(f"{running.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=30)
        yield running
    finally:
        for process in processes:
            if process.poll() is None:
                # Only the parent: qcluster and gunicorn stop their own children in order.
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            finally:
                # Whatever is left of the group (a stuck worker) goes now.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        assert settings.META_APP_SECRET  # the stack was configured with the test secret
