"""The demo feed of `manage.py meta_sandbox` stops once the demo has SANDBOX_MAX_LEADS
leads, says so once, and numbers new leads after those the app already has."""

from __future__ import annotations

import logging
import random

import pytest

from leads.models import Lead, Page
from sandbox import MetaSandbox
from sandbox.demo import DEMO_PAGE_ID, DemoFeed
from sandbox.feeding import DemoFeeder, demo_leads, next_demo_lead_id

pytestmark = pytest.mark.django_db

LIMIT_MESSAGE = (
    "The demo has 5 leads (SANDBOX_MAX_LEADS=5): no more are sent. Those leads, moves and "
    "conversion events keep working; raise SANDBOX_MAX_LEADS, or set it to 0 for no limit, "
    "to get more."
)


@pytest.fixture
def feed() -> DemoFeed:
    demo = DemoFeed(MetaSandbox(), random.Random(3))
    demo.setup()
    return demo


@pytest.fixture
def post(post_webhook):
    """The feeder's webhook call, into this test's app; the HTTP statuses it got."""
    statuses: list[int] = []

    def call(body: bytes) -> int:
        statuses.append(post_webhook(body).status_code)
        return statuses[-1]

    call.statuses = statuses  # type: ignore[attr-defined]
    return call


def test_the_feed_stops_at_the_limit_and_says_why_once(feed, post, caplog) -> None:
    feeder = DemoFeeder(feed, post=post, max_leads=5)

    with caplog.at_level(logging.INFO, logger="sandbox.feed"):
        sent = [feeder.send(3) for _ in range(4)]

    assert sent == [3, 2, 0, 0]
    assert post.statuses == [200] * 5
    assert demo_leads() == 5
    assert Lead.objects.count() == 5
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("The demo has")]
    assert said == [LIMIT_MESSAGE]


def test_leads_that_were_there_before_count_towards_the_limit(feed, post) -> None:
    DemoFeeder(feed, post=post, max_leads=0).send(4)

    # A new run of the sandbox, against the same database.
    again = DemoFeed(MetaSandbox(), random.Random(4))
    again.setup()
    again.next_id = next_demo_lead_id()
    feeder = DemoFeeder(again, post=post, max_leads=5)

    assert [feeder.send(3), feeder.send(3)] == [1, 0]
    assert demo_leads() == 5
    assert post.statuses == [200] * 5


def test_no_limit_with_zero(feed, post) -> None:
    feeder = DemoFeeder(feed, post=post, max_leads=0)

    assert [feeder.send(3), feeder.send(3), feeder.send(3)] == [3, 3, 3]
    assert demo_leads() == 9


def test_a_new_run_numbers_its_leads_after_the_demo_leads_the_app_has(feed, post) -> None:
    assert next_demo_lead_id() is None
    DemoFeeder(feed, post=post, max_leads=0).send(3)
    ids = sorted(Lead.objects.values_list("leadgen_id", flat=True))
    assert ids == ["900000000000001", "900000000000002", "900000000000003"]
    assert next_demo_lead_id() == 900_000_000_000_004

    # A longer id is the larger number, though it sorts first as text.
    page = Page.objects.get(page_id=DEMO_PAGE_ID)
    Lead.objects.create(leadgen_id="1000000000000000", page=page)
    Lead.objects.create(leadgen_id="990000000000000", page=Page.objects.create(page_id="5"))
    assert next_demo_lead_id() == 1_000_000_000_000_001
