"""`make run`: set up a local Leadloop and run the web app and the background worker.

First run: writes a `.env` for local use (DEBUG on, a random SECRET_KEY and verify token),
creates the database, and an `admin` user whose password it keeps in `.run/admin-password`.
Then it starts gunicorn and django-q2's qcluster together; Ctrl-C stops both, and if either
exits the other is stopped too.

The terminal stays quiet: the URL, the login, then one heartbeat line (`config.heartbeat`).
What the processes print goes to `.run/web.log`, `.run/worker.log` and `.run/sandbox.log`;
each run starts them afresh and keeps the previous run's as `*.log.1`. A process that
exits on its own is named on the terminal with the end of its log.

Sandbox mode: with no Meta settings (META_APP_SECRET, META_ACCESS_TOKEN, META_GRAPH_URL)
the built-in Meta sandbox runs beside the app with a demo page and forms, and sends a few
signed leadgen webhooks every minute until the demo has SANDBOX_MAX_LEADS, so a newcomer
sees leads arrive at once. With real Meta settings no sandbox starts.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import environ  # noqa: E402

from sandbox.demo import (  # noqa: E402
    DEMO_DATASET_ID,
    DEMO_PAGE_ID,
    DEMO_PAGE_TOKEN,
    DEMO_SYSTEM_TOKEN,
)

# Both overridable so tests can run `make run`'s flow without touching the checkout.
ENV_FILE = Path(os.environ.get("LEADLOOP_ENV_FILE") or ROOT / ".env")
RUN_DIR = Path(os.environ.get("LEADLOOP_RUN_DIR") or ROOT / ".run")
PASSWORD_FILE = RUN_DIR / "admin-password"
PY = sys.executable
META_SETTINGS = ("META_APP_SECRET", "META_ACCESS_TOKEN", "META_GRAPH_URL")
TAIL_LINES = 15


@dataclass
class Child:
    """A process `make run` started, and the log its output goes to."""

    name: str
    process: subprocess.Popen
    log: Path


def shown(path: Path) -> str:
    """A path as the person at the terminal types it: relative to the checkout if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def open_log(name: str) -> IO[bytes]:
    """`.run/<name>.log`, empty, for this run; the previous run's is kept as `<name>.log.1`.
    Opened for appending, so that two processes writing to it never overwrite each other."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    path = RUN_DIR / f"{name}.log"
    if path.exists():
        path.replace(RUN_DIR / f"{name}.log.1")
    return path.open("ab")


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


def exit_report(child: Child) -> str:
    """What the terminal says when a process exits on its own: which, how, and the end of
    its log."""
    code = child.process.returncode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
    last = tail(child.log)
    report = f"The {child.name} {how}; see {shown(child.log)}"
    if not last:
        return report + " (empty)."
    return report + ". Its last lines:\n" + "\n".join(f"    {line}" for line in last)


def start(name: str, argv: list[str], log: IO[bytes]) -> Child:
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return Child(name, process, Path(log.name))


def write_local_env() -> None:
    if ENV_FILE.exists():
        return
    ENV_FILE.write_text(
        "# Written by `make run` for local use; see .env.example for every setting.\n"
        "DEBUG=true\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"META_VERIFY_TOKEN={secrets.token_urlsafe(24)}\n"
    )
    ENV_FILE.chmod(0o600)
    print(f"Wrote {ENV_FILE.name} for local use (DEBUG on). Add your Meta settings there.")


def use_sandbox() -> bool:
    """True when no real Meta app is configured (in the environment or `.env`)."""
    if os.environ.get("LEADLOOP_SANDBOX", "").lower() in ("0", "false", "no"):
        return False
    return not any(os.environ.get(name) for name in META_SETTINGS)


def configure_sandbox(port: str) -> str:
    """Point every process at the local sandbox; returns its URL."""
    url = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "LEADLOOP_SANDBOX": "true",
            "META_GRAPH_URL": url,
            "META_WWW_URL": url,
            "META_APP_SECRET": "sandbox-app-secret",
            "META_ACCESS_TOKEN": DEMO_SYSTEM_TOKEN,
            "META_DATASET_ID": DEMO_DATASET_ID,
        }
    )
    return url


def wait_for(url: str, child: Child, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise SystemExit(exit_report(child))
        try:
            # bandit B310: our own loopback URL
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  # nosec B310
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s; see {shown(child.log)}.")


def manage(*args: str, log: IO[bytes] | None = None) -> None:
    """A setup step; with `log`, its output goes there, and to the terminal if it fails."""
    done = subprocess.run(
        [PY, "manage.py", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT if log else None,
        check=False,
    )
    if done.returncode:
        where = f"; the end of {shown(Path(log.name))}:\n" if log else "."
        lines = "\n".join(f"    {line}" for line in tail(Path(log.name))) if log else ""
        raise SystemExit(f"manage.py {args[0]} failed ({done.returncode}){where}{lines}")


def ensure_admin() -> str:
    """Create the `admin` superuser on first run; return how to log in."""
    RUN_DIR.mkdir(exist_ok=True)
    password = secrets.token_urlsafe(12)
    script = (
        "from django.contrib.auth import get_user_model\n"
        "U = get_user_model()\n"
        "import sys\n"
        "if U.objects.filter(is_superuser=True).exists(): sys.exit(3)\n"
        f"U.objects.create_superuser('admin', '', {password!r})\n"
    )
    result = subprocess.run([PY, "manage.py", "shell", "--no-imports", "-c", script], cwd=ROOT)
    if result.returncode == 0:
        PASSWORD_FILE.write_text(password + "\n")
        PASSWORD_FILE.chmod(0o600)
    if PASSWORD_FILE.exists():
        return f"user admin, password in {shown(PASSWORD_FILE)}"
    return "with your superuser (python manage.py createsuperuser makes one)"


def banner(*, url: str, login: str, sandbox_url: str, max_leads: int, logs: list[Path]) -> str:
    lines = [f"Leadloop is running at {url}", f"Admin: {url}admin/  ({login})"]
    if sandbox_url:
        every = os.environ.get("SANDBOX_INTERVAL", "20")
        until = f" until the demo has {max_leads} (SANDBOX_MAX_LEADS)" if max_leads else ""
        lines += [
            f"Sandbox mode: no Meta settings, so a local Meta stand-in ({sandbox_url})",
            f"sends a few demo leads every {every} s{until}.",
            f"Move one, then see what Meta received at {url}sandbox/events/ .",
            "Set your Meta settings in .env for the real thing.",
        ]
    else:
        lines.append("Meta webhook URL: https://<your public host>/webhooks/meta/")
    lines.append(f"Logs: {', '.join(shown(log) for log in logs)}. Press Ctrl-C to stop.")
    return "\n" + "\n".join(f"  {line}" for line in lines) + "\n"


def supervise(children: list[Child], heartbeat: Callable[[], None]) -> list[Child]:
    """Run until Ctrl-C or SIGTERM, or until a child exits; stop the rest. Returns the
    children that exited on their own (none when asked to stop)."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        terminate(children)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    exited: list[Child] = []
    try:
        while not stopping:
            exited = [child for child in children if child.process.poll() is not None]
            if exited:
                break
            heartbeat()
            time.sleep(0.5)
    finally:
        asked_to_stop = stopping
        stop_all(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return [] if asked_to_stop else exited


def terminate(children: list[Child]) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.terminate()


def stop_all(children: list[Child]) -> None:
    """SIGTERM to each (gunicorn and qcluster stop their own processes in order), then
    SIGKILL to any that has not stopped within 15 s."""
    terminate(children)
    for child in children:
        try:
            child.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def main() -> int:
    os.chdir(ROOT)
    write_local_env()
    # The same values the Django processes will read, so the sandbox decision matches.
    environ.Env.read_env(ENV_FILE, overwrite=False)
    os.environ.setdefault("LEADLOOP_ENV_FILE", str(ENV_FILE))
    manage("migrate", "--noinput", "-v", "0")
    # The UI's translations (.po -> .mo, with polib: no GNU gettext needed).
    manage("compile_translations", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    login = ensure_admin()
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    children: list[Child] = []
    sandbox_url = ""
    print("Starting Leadloop ...", flush=True)
    try:
        if use_sandbox():
            sandbox_url = configure_sandbox(os.environ.get("SANDBOX_PORT", "8765"))
            sandbox_log = open_log("sandbox")
            sandbox = start(
                "Meta sandbox",
                [
                    PY, "manage.py", "meta_sandbox",
                    "--port", sandbox_url.rsplit(":", 1)[1],
                    "--app-url", f"http://{host}:{port}",
                    "--interval", os.environ.get("SANDBOX_INTERVAL", "20"),
                ],
                sandbox_log,
            )  # fmt: skip
            children.append(sandbox)
            wait_for(f"{sandbox_url}/__sandbox__/state", sandbox)
            # The demo page, connected like a real one: token checked, forms loaded.
            manage(
                "connect_page", DEMO_PAGE_ID, "--token", DEMO_PAGE_TOKEN, "--subscribe",
                log=sandbox_log,
            )  # fmt: skip
        web = start(
            "web server",
            [PY, "-m", "gunicorn", "config.wsgi", "--bind", f"{host}:{port}",
             "--access-logfile", "-"],
            open_log("web"),
        )  # fmt: skip
        children.append(web)
        children.append(start("worker", [PY, "manage.py", "qcluster"], open_log("worker")))
        # The URL is printed once it answers; a server that cannot start says why instead.
        # A wildcard bind is no address to ask; loopback reaches it.
        # bandit B104: a comparison, not a bind
        wildcard = host in ("", "0.0.0.0", "::")  # noqa: S104  # nosec B104
        loopback = "127.0.0.1" if wildcard else host
        wait_for(f"http://{loopback}:{port}/healthz", web)
    except BaseException:
        stop_all(children)
        raise

    # The heartbeat reads the database in this process, with the settings the children
    # were given.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from config.heartbeat import Heartbeat

    print(
        banner(
            url=f"http://{host}:{port}/",
            login=login,
            sandbox_url=sandbox_url,
            max_leads=settings.SANDBOX_MAX_LEADS,
            logs=[child.log for child in children],
        ),
        flush=True,
    )
    heartbeat = Heartbeat(
        sys.stdout,
        tty=sys.stdout.isatty(),
        every=float(os.environ.get("HEARTBEAT_INTERVAL") or 30),
    )
    exited = supervise(children, heartbeat.tick)
    heartbeat.end_line()
    if not exited:
        return 0
    # A process died on its own: say which and why, and fail so a supervisor notices.
    for child in exited:
        print(exit_report(child), file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C during the setup steps: they stop with it; no traceback.
        sys.exit(130)
