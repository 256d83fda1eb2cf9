"""Browser tests: Playwright driving Debian's Chromium against the real stack (gunicorn and
qcluster on the test database, from tests/e2e).

Chromium is the system's (`/usr/bin/chromium`, Debian's package); `playwright install` is
never used. `make test` installs the package when it is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, meta, stack  # noqa: F401 - fixtures reused here

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def browser(django_db_setup: None) -> Iterator[object]:
    """Chromium for one test module.

    Playwright's sync API runs an asyncio loop on this thread while it is open. Django
    then refuses ORM calls ("async context") although the tests make them synchronously,
    and its per-context connection storage hands the tests a new connection object,
    without the serialized contents that `serialized_rollback` restores from. So: allow
    the calls, give the new connection those contents, and close Playwright with the
    module so the tests after it get the usual connection back.
    """
    if not CHROMIUM.exists():
        pytest.fail(
            f"Browser tests need Debian's Chromium at {CHROMIUM} and it is missing. "
            "Install it with `apt-get install chromium` (`make test` does this when it runs "
            "as root), or point CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    from django.db import connections
    from playwright.sync_api import sync_playwright

    serialized = {
        alias: getattr(connections[alias], "_test_serialized_contents", None)
        for alias in connections
    }
    allowed_before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            for alias, contents in serialized.items():
                if contents is not None:
                    connections[alias]._test_serialized_contents = contents
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
            for alias in connections:
                connections[alias].close()
    finally:
        if allowed_before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = allowed_before


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
