"""End to end: a lead arrives by webhook, a person moves it through the REST API, and the
Meta stand-in receives both Conversion Leads events, sent by the real `qcluster` over HTTP,
in the exact shape of SPEC.md."""

from __future__ import annotations

import io
import json
import time

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from capi.models import ConversionEvent, SendAttempt
from leads.models import Lead
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, load_fixture
from tests.e2e.conftest import wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PAGE_TOKEN = "sandbox-page-token"
CAPI_TOKEN = "sandbox-capi-token"
DATASET = "1261294122522559"


@pytest.fixture
def capi_stack(monkeypatch, request):
    """The stack with a dataset and token configured (through the test-only variables that
    config/settings_test.py reads), so its worker sends to the stand-in."""
    monkeypatch.setenv("LEADLOOP_TEST_DATASET_ID", DATASET)
    monkeypatch.setenv("LEADLOOP_TEST_ACCESS_TOKEN", CAPI_TOKEN)
    return request.getfixturevalue("stack")


def test_a_new_lead_and_an_api_move_reach_meta_as_conversion_events(capi_stack):
    stack, meta = capi_stack, capi_stack.meta
    meta.add_page("1111", name="Acme Spain", token=PAGE_TOKEN)
    meta.add_form("2222", page_id="1111", name="Winter form")
    meta.add_token(CAPI_TOKEN)
    created = int(time.time()) - 60
    sent = load_fixture("graph_lead.json") | {"created_time": created}
    meta.add_lead(sent)
    call_command("connect_page", "1111", "--token", PAGE_TOKEN, stdout=io.StringIO())

    body = json.dumps(
        leadgen_body([[change_value(int(sent["id"]), page_id=1111, created_time=created)]])
    ).encode()
    response = requests.post(
        f"{stack.url}/webhooks/meta/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, settings.META_APP_SECRET),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text

    try:
        wait_until(lambda: len(meta.events) >= 1, timeout=45)
        lead = Lead.objects.get(leadgen_id=sent["id"])
        boss = get_user_model().objects.create_superuser("boss", password="pw")
        token = Token.objects.create(user=boss)
        moved = requests.patch(
            f"{stack.url}/api/v1/leads/{lead.pk}/",
            json={"stage": "contacted"},
            headers={"Authorization": f"Token {token.key}"},
            timeout=30,
        )
        assert moved.status_code == 200, moved.text
        wait_until(lambda: len(meta.events) >= 2, timeout=45)
        # Meta has the event; the worker records Meta's answer a moment later.
        wait_until(
            lambda: not ConversionEvent.objects.filter(lead=lead).exclude(status="sent").exists(),
            timeout=45,
        )
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{stack.output()}") from None

    events = list(ConversionEvent.objects.filter(lead=lead).order_by("event_time", "pk"))
    assert [event.status for event in events] == ["sent", "sent"]
    received = sorted(meta.events, key=lambda event: event["event_time"])
    assert len(meta.events) == 2  # each exactly once
    for got, event in zip(received, events, strict=True):
        assert got.pop("dataset_id") == DATASET  # recorded by the stand-in, not sent
        got.pop("received_at")
        assert got == {
            "event_name": event.event_name,
            "event_time": int(event.stage_change.changed_at.timestamp()),
            "action_source": "system_generated",
            "event_id": f"leadloop-{event.stage_change_id}",
            "user_data": event.user_data,
            "custom_data": {"event_source": "crm", "lead_event_source": "Leadloop"},
        }
        assert got["event_time"] >= created
    assert [got["event_name"] for got in received] == ["Lead", "Contacted"]
    user_data = received[0]["user_data"]
    assert user_data["lead_id"] == int(sent["id"]) and isinstance(user_data["lead_id"], int)
    assert sorted(user_data) == ["ct", "em", "fn", "lead_id", "ln", "ph"]
    assert all(len(digest) == 64 for key in ("em", "ph") for digest in user_data[key])
    # Every POST carried the token in the header, never in the URL.
    posts = [r for r in meta.requests if r.path.endswith(f"/{DATASET}/events")]
    assert posts and all(r.headers.get("authorization") == f"Bearer {CAPI_TOKEN}" for r in posts)
    assert all("access_token" not in r.path for r in posts)
    assert SendAttempt.objects.filter(outcome="accepted").count() == len(posts)
