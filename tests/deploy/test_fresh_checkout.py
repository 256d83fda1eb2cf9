"""A fresh checkout served with DEBUG off, as an operator does it: gunicorn refuses to
start and says what is missing until `manage.py deploy` ran; then pages answer 200 and
the Spanish UI shows the project's own Spanish strings.

The checkout is a copy of the files git would commit (so no compiled .mo files and no
collected static files), run with the production settings (config.settings) on the test
database and its own STATIC_ROOT."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import ROOT, database_url, free_port, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

CATALOGS = ["es", "fr", "zh_Hans"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    target = tmp_path / "leadloop"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # (a file deleted but not yet committed is listed too)
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    assert not list(target.glob("locale/*/LC_MESSAGES/*.mo"))
    return target


@pytest.fixture
def production_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("META_")}
    for name in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "LEADLOOP_SANDBOX"):
        env.pop(name, None)
    return env | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        # No TLS in front of this server: the one check --deploy warning it leaves.
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database_url(),
        "STATIC_ROOT": str(tmp_path / "static-root"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "LEADLOOP_ENV_FILE": os.devnull,
        "Q_CLUSTER_NAME": f"fresh-checkout-{os.getpid()}",
        "PYTHONUNBUFFERED": "1",
    }


def manage(checkout: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own interpreter and argv
        [sys.executable, "manage.py", *args],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def gunicorn(checkout: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and argv
        [sys.executable, "-m", "gunicorn", "config.wsgi",
         "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=checkout, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def refused_start(checkout: Path, env: dict[str, str], log: Path) -> str:
    """Start gunicorn; it must exit by itself (no page served). Returns what it printed."""
    server = gunicorn(checkout, env, free_port(), log)
    try:
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode != 0
    return log.read_text()


@pytest.fixture
def served(checkout: Path, production_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """After `manage.py deploy`: gunicorn serving the checkout; yields its URL."""
    port = free_port()
    log = tmp_path / "served.log"
    server = gunicorn(checkout, production_env, port, log)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout=60)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_a_fresh_checkout_says_what_is_missing_until_deploy_ran(
    checkout, production_env, tmp_path, request
):
    static_root = production_env["STATIC_ROOT"]
    missing_catalogs = [
        f"  - locale/{code}/LC_MESSAGES/django.mo is missing: that language would show English"
        for code in CATALOGS
    ]

    said = refused_start(checkout, production_env, tmp_path / "bare.log")
    assert (
        f"  - the static files manifest {static_root}/staticfiles.json is missing "
        "(collectstatic has not run into STATIC_ROOT): every page would answer 500"
    ) in said.splitlines()
    assert set(missing_catalogs) <= set(said.splitlines())
    assert "Run `python manage.py deploy` with the same settings" in said

    # The steps the README had (collectstatic only): now it is the catalogs it names.
    collected = manage(checkout, production_env, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    said = refused_start(checkout, production_env, tmp_path / "collected.log")
    assert "staticfiles.json" not in said
    assert set(missing_catalogs) <= set(said.splitlines())

    # (Running it twice is tested in process: tests/deploy/test_build.py.)
    deployed = manage(checkout, production_env, "deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert re.findall(r"^\[\d/4\] .*", deployed.stdout, re.MULTILINE) == [
        "[1/4] Applying database migrations",
        f"[2/4] Collecting static files into {static_root}",
        "[3/4] Compiling the translations",
        "[4/4] Checking the deployment",
    ]
    assert deployed.stdout.splitlines()[-1].startswith("Ready to serve.")

    url = request.getfixturevalue("served")
    pages = {
        "es": "Inicia sesión en tu espacio de ventas",
        "fr": "Connectez-vous à votre espace commercial",
        "zh-hans": "登录你的销售工作台",
        "en": "Log in to your sales workspace",
    }
    for language, heading in pages.items():
        page = requests.get(f"{url}/login/", headers={"Accept-Language": language}, timeout=10)
        assert (page.status_code, f"<h1>{heading}</h1>" in page.text) == (200, True), language
    # The stylesheet by its hashed name from the manifest, served by WhiteNoise.
    css = re.search(r'href="(/static/leadloop/leadloop\.[0-9a-f]{12}\.css)"', page.text)
    assert requests.get(f"{url}{css.group(1)}", timeout=10).status_code == 200
    assert requests.get(f"{url}/admin/login/", timeout=10).status_code == 200


def test_deploy_exits_non_zero_at_a_failing_step(production_env, tmp_path):
    env = production_env | {"DATABASE_URL": f"sqlite:///{tmp_path}/no-such-folder/db.sqlite3"}
    result = manage(ROOT, env, "deploy")
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["[1/4] Applying database migrations"]
    assert result.stderr.splitlines()[0] == (
        "CommandError: deploy stopped at step 1 (Applying database migrations): "
        "unable to open database file"
    )
    assert not Path(production_env["STATIC_ROOT"]).exists()
