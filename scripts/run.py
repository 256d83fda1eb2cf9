"""`make run`: set up a local Leadloop and run the web app and the background worker.

First run: writes a `.env` for local use (DEBUG on, a random SECRET_KEY and verify token),
creates the database, and an `admin` user whose password is printed. Then it starts
gunicorn and django-q2's qcluster together; Ctrl-C stops both, and if either exits the
other is stopped too.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
RUN_DIR = ROOT / ".run"
PASSWORD_FILE = RUN_DIR / "admin-password"
PY = sys.executable


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
    manage("migrate", "--noinput", "-v", "0")
    manage("collectstatic", "--noinput", "-v", "0")
    login = ensure_admin()
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")

    web = subprocess.Popen(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"{host}:{port}",
            "--workers",
            os.environ.get("WEB_CONCURRENCY", "2"),
            "--threads",
            "4",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
    )
    worker = subprocess.Popen([PY, "manage.py", "qcluster"], cwd=ROOT)
    children = [web, worker]

    print(
        "\n"
        f"  Leadloop is running at http://{host}:{port}/\n"
        f"  Admin: http://{host}:{port}/admin/  ({login})\n"
        f"  Meta webhook URL: https://<your public host>/webhooks/meta/\n"
        "  Press Ctrl-C to stop.\n",
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
    for name, child in (("web server", web), ("worker", worker)):
        if child.returncode not in (0, None, -signal.SIGTERM):
            print(f"The {name} exited with status {child.returncode}.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
