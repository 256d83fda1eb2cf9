"""The Meta sandbox answers like the Graph API does, over real HTTP.

The sandbox is standard library only: these tests need neither the database nor settings,
but for those of the demo feed of `manage.py meta_sandbox` (test_feeding.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox import MetaSandbox
from tests.conftest import fresh_queue_and_cache
from tests.sandbox.support import FORM, OTHER_PAGE, PAGE, PAGE_TOKEN, SYSTEM_TOKEN, T0


@pytest.fixture(scope="module")
def server() -> Iterator[MetaSandbox]:
    sandbox = MetaSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def _fresh_queue_and_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """Shadow the autouse fixture of tests/conftest.py, which needs Django (and Redis when
    configured): most of these tests touch neither, so they must not depend on them. Those
    of the demo feed (marked django_db) post webhooks, and get it."""
    if request.node.get_closest_marker("django_db") is None:
        yield
        return
    yield from fresh_queue_and_cache()


@pytest.fixture
def sandbox(server: MetaSandbox) -> MetaSandbox:
    server.reset()
    server.add_page(PAGE, name="Acme Kitchens", token=PAGE_TOKEN)
    server.add_page(OTHER_PAGE, name="Someone Else", token="other-page-token")
    server.add_token(SYSTEM_TOKEN)
    server.add_form(
        FORM,
        page_id=PAGE,
        name="Kitchen quote",
        created_time=T0 - 86400,
        questions=[{"key": "full_name"}, {"key": "email"}, {"key": "phone_number"}],
    )
    return server
