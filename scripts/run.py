"""`make run`: set up a local Leadloop and run the web app and the background worker.

First run: writes a `.env` for local use (DEBUG on, a random SECRET_KEY and verify token),
creates the database, and an `admin` user whose password is printed. Then it starts
gunicorn and django-q2's qcluster together; Ctrl-C stops both, and if either exits the
other is stopped too.

Sandbox mode: with no Meta settings (META_APP_SECRET, META_ACCESS_TOKEN, META_GRAPH_URL)
the built-in Meta sandbox runs beside the app with a demo page and forms, and sends a few
signed leadgen webhooks every minute, so a newcomer sees leads arrive at once. With real
Meta settings no sandbox starts.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def wait_for(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} did not start (exit status {process.returncode}).")
        try:
            # bandit B310: our own loopback URL
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  # nosec B310
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s.")


def manage(*args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, check=True)


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
        return f"user admin, password {PASSWORD_FILE.read_text().strip()}"
    return "with your superuser (python manage.py createsuperuser makes one)"


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
    children: list[subprocess.Popen] = []

    sandbox_url = ""
    if use_sandbox():
        sandbox_url = configure_sandbox(os.environ.get("SANDBOX_PORT", "8765"))
        sandbox = subprocess.Popen(
            [
                PY, "manage.py", "meta_sandbox",
                "--port", sandbox_url.rsplit(":", 1)[1],
                "--app-url", f"http://{host}:{port}",
                "--interval", os.environ.get("SANDBOX_INTERVAL", "20"),
            ],
            cwd=ROOT,
        )  # fmt: skip
        children.append(sandbox)
        try:
            wait_for(f"{sandbox_url}/__sandbox__/state", sandbox)
            # The demo page, connected like a real one: token checked, forms loaded.
            manage("connect_page", DEMO_PAGE_ID, "--token", DEMO_PAGE_TOKEN, "--subscribe")
        except BaseException:
            sandbox.terminate()
            raise

    web = subprocess.Popen(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"{host}:{port}",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
    )
    worker = subprocess.Popen([PY, "manage.py", "qcluster"], cwd=ROOT)
    children += [web, worker]

    print(
        "\n"
        f"  Leadloop is running at http://{host}:{port}/\n"
        f"  Admin: http://{host}:{port}/admin/  ({login})\n"
        + (
            f"  Sandbox mode: no Meta settings, so a local Meta stand-in ({sandbox_url}) sends\n"
            "  demo leads every few seconds. Move one, then see what Meta received at\n"
            f"  http://{host}:{port}/sandbox/events/ . Set META_APP_SECRET etc. in .env for real.\n"
            if sandbox_url
            else "  Meta webhook URL: https://<your public host>/webhooks/meta/\n"
        )
        + "  Press Ctrl-C to stop.\n",
        flush=True,
    )

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        asked_to_stop = stopping
        stop()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    if asked_to_stop:
        return 0
    # One process died on its own: say which, and fail so a supervisor notices.
    named = [("web server", web), ("worker", worker)]
    if sandbox_url:
        named.append(("Meta sandbox", children[0]))
    for name, child in named:
        if child.returncode not in (0, None, -signal.SIGTERM):
            print(f"The {name} exited with status {child.returncode}.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
