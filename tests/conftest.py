"""Shared fixtures: signed webhook posts, the real task queue, and Meta-shaped fixtures."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from django.conf import settings
from django.test import Client
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from crm.translations import compile_catalogs
from leads.models import Page
from leads.webhooks import sign

# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE. `ci`, the default (`make test` and
# .ci/run), is derandomized and keeps no example database: the same examples every run, on
# every clone, so a run cannot fail by luck; what a fuzz run finds is kept as `@example`
# on the test. `fuzz` (`make fuzz`) is random and long, and keeps what it finds in
# .hypothesis/ to replay it.
hypothesis_settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
hypothesis_settings.register_profile(
    "fuzz",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

FIXTURES = Path(__file__).parent / "fixtures"
GRAPH = "https://graph.test/v24.0"


def redis_url() -> str:
    """A Redis server for tests of Redis-backed code: REDIS_URL when the suite runs with it,
    else the machine's local server (README: one runs on 127.0.0.1:6379), else ""."""
    if settings.REDIS_URL:
        return settings.REDIS_URL
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return "redis://127.0.0.1:6379/0"
    except OSError:
        return ""


def load_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def refresh_translations() -> None:
    """Compile stale .mo files and drop Django's per-process catalog cache, so a catalog
    loaded before compiling (empty) is not kept."""
    if compile_catalogs():
        from django.utils.translation import trans_real

        trans_real._translations = {}
        trans_real._default = None


@pytest.fixture(scope="session", autouse=True)
def _compiled_translations() -> None:
    """The catalogs compiled once per run, as `manage.py deploy` does: pages rendered in the
    tests read them, and a web server a test starts with DEBUG off refuses to boot without
    them (config/build.py)."""
    refresh_translations()


@pytest.fixture(autouse=True)
def _fresh_queue_and_cache() -> Iterator[None]:
    yield from fresh_queue_and_cache()


def fresh_queue_and_cache() -> Iterator[None]:
    """The ORM broker's queue lives in the test database and is rolled back with it; the
    Redis broker's is not, so it is emptied around every test. The caches likewise."""
    from django.core.cache import cache

    from leads.keys import KEYS

    cache.clear()
    KEYS.forget()  # the test database's rows, and their keys, are rolled back
    if not settings.REDIS_URL:
        yield
        return
    broker = get_broker()
    broker.purge_queue()
    yield
    broker.purge_queue()


def queued_tasks() -> list[dict[str, Any]]:
    """Take every task from the real broker (whichever is configured), without running it."""
    broker = get_broker()
    tasks: list[dict[str, Any]] = []
    while broker.queue_size():
        for ack_id, package in broker.dequeue() or []:
            tasks.append(SignedPackage.loads(package))
            broker.acknowledge(ack_id)
    return tasks


def queue_size() -> int:
    return get_broker().queue_size()


def run_tasks(tasks: list[dict[str, Any]]) -> None:
    for task in tasks:
        import_string(task["func"])(*task["args"], **task["kwargs"])


def run_queued_tasks(max_rounds: int = 10) -> int:
    """Run queued tasks as a worker would, including tasks they queue; returns how many."""
    ran = 0
    for _ in range(max_rounds):
        tasks = queued_tasks()
        if not tasks:
            break
        run_tasks(tasks)
        ran += len(tasks)
    return ran


@pytest.fixture
def post_webhook(client: Client, django_capture_on_commit_callbacks) -> Callable[..., Any]:
    """POST a body to the webhook, signed with the test app secret unless told otherwise.

    On-commit callbacks run for real (the fetch is queued on the configured broker)."""

    def post(
        body: bytes | dict,
        *,
        signature: str | None = "valid",
        secret: str | None = None,
        content_type: str = "application/json",
    ):
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = {}
        if signature == "valid":
            headers["HTTP_X_HUB_SIGNATURE_256"] = sign(raw, secret or settings.META_APP_SECRET)
        elif signature is not None:
            headers["HTTP_X_HUB_SIGNATURE_256"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/webhooks/meta/", raw, content_type=content_type, **headers)

    return post


def leadgen_body(changes: list[list[dict[str, Any]]], *, page_id: int | str = 1111) -> dict:
    """A Meta leadgen delivery: one entry per inner list, one change per value."""
    return {
        "object": "page",
        "entry": [
            {
                "id": str(page_id),
                "time": 1735689600,
                "changes": [{"field": "leadgen", "value": value} for value in entry],
            }
            for entry in changes
        ],
    }


def change_value(
    leadgen_id: int | str,
    *,
    page_id: int | str = 1111,
    form_id: int | str = 2222,
    ad_id: int | str | None = 3333,
    created_time: int = 1735689600,
) -> dict:
    value: dict[str, Any] = {
        "leadgen_id": leadgen_id,
        "page_id": page_id,
        "form_id": form_id,
        "created_time": created_time,
    }
    if ad_id is not None:
        value |= {"ad_id": ad_id, "adgroup_id": ad_id}
    return value


def connected_page(*, token: str, page_id: str = "1111", name: str = "Acme") -> Page:
    """A page with a valid token, as `connect_page` leaves it."""
    page = Page.objects.create(page_id=page_id, name=name)
    page.token = token
    page.token_status = Page.TokenStatus.VALID
    page.save()
    return page


def graph_lead(leadgen_id: str, **overrides: Any) -> dict[str, Any]:
    """A Graph Lead node as Meta answers `GET /{lead-id}?fields=...` (fixture-based)."""
    lead = load_fixture("graph_lead.json")
    lead["id"] = leadgen_id
    lead.update(overrides)
    return lead


@pytest.fixture
def mocked_graph() -> Iterator[responses.RequestsMock]:
    """Every outbound HTTP call must be registered; anything else fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
