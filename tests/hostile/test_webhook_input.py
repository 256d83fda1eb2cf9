"""Hostile input at the webhook: a clear 4xx or safe storage, never a 5xx."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from hypothesis import example, given
from hypothesis import strategies as st

from leads.models import Lead, WebhookDelivery
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, queue_size
from tests.hostile.test_graph_answers import JSON_VALUES

pytestmark = pytest.mark.django_db


def test_deeply_nested_json_is_400_and_kept(post_webhook, admin_client):
    body = b'{"object":"page","entry":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    response = post_webhook(body)
    assert response.status_code in (400, 413)
    assert Lead.objects.count() == 0
    # Under the size limit: kept as sent, and the admin shows it (raw, not indented).
    response = post_webhook(b'{"object":"page","entry":' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert response.status_code == 400
    delivery = WebhookDelivery.objects.latest("pk")
    assert delivery.status == WebhookDelivery.Status.MALFORMED
    page = admin_client.get(f"/admin/leads/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert b"[[[[[[[[" in page.content


def test_nested_but_under_the_limit_is_stored_and_ignored(post_webhook, admin_client):
    body = {"object": "page", "entry": [{"id": "1", "changes": [{"field": "x", "value": {}}]}]}
    deep: dict = body
    for _ in range(500):
        deep["nested"] = {}
        deep = deep["nested"]
    response = post_webhook(body)
    assert response.status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.IGNORED
    page = admin_client.get(f"/admin/leads/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_wrong_content_types_are_read_as_raw_bytes(post_webhook, content_type):
    # Meta always sends JSON; the content type is not trusted either way: the signed bytes are.
    response = post_webhook(leadgen_body([[change_value(1)]]), content_type=content_type)
    assert response.status_code == 200
    assert Lead.objects.count() == 1


def test_invalid_utf8_is_400_and_kept(post_webhook):
    response = post_webhook(b'{"object":"page","entry":[{"id":"\xff\xfe"}]}')
    assert response.status_code == 400
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.MALFORMED


@pytest.mark.parametrize(
    "value",
    [
        {"leadgen_id": "1; DROP TABLE leads_lead; --", "page_id": 1},
        {"leadgen_id": "<script>alert(1)</script>", "page_id": 1},
        {"leadgen_id": -5, "page_id": 1},
        {"leadgen_id": 10**80, "page_id": 1},
        {"leadgen_id": 18446744073709551616, "page_id": 1},  # 2**64: beyond 64 bits
        {"leadgen_id": "18446744073709551616", "page_id": 1},
        {"leadgen_id": 2**63, "page_id": 1},  # beyond a signed 64-bit integer
        {"leadgen_id": None, "page_id": 1},
        {"leadgen_id": [], "page_id": {}},
        {"leadgen_id": True, "page_id": 1},
        {"leadgen_id": "١٢٣", "page_id": 1},  # non-ASCII digits
        {"leadgen_id": "12\u000034", "page_id": "1\u0000"},  # NUL: PostgreSQL refuses it
        {"leadgen_id": "12\ud80034", "page_id": 1},  # a lone surrogate: not UTF-8
    ],
)
def test_hostile_ids_are_skipped_with_a_note(post_webhook, value):
    body = {
        "object": "page",
        "entry": [{"id": "1", "changes": [{"field": "leadgen", "value": value}]}],
    }
    response = post_webhook(body)
    assert response.status_code == 200
    assert Lead.objects.count() == 0
    assert "entry[0].changes[0]" in WebhookDelivery.objects.get().error
    assert queue_size() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"object": "page", "entry": "not a list"},
        {"object": "page", "entry": [None, 1, "x", {"changes": "nope"}]},
        {"object": "page", "entry": [{"changes": [None, 1, {"field": "leadgen"}]}]},
        {"object": ["page"]},
        {},
    ],
)
def test_odd_shapes_never_500(post_webhook, payload):
    response = post_webhook(payload)
    assert response.status_code == 200
    assert Lead.objects.count() == 0


def test_a_thousand_changes_in_one_delivery(post_webhook):
    body = leadgen_body([[change_value(i) for i in range(1, 1001)]])
    assert len(json.dumps(body)) < 1024 * 1024
    response = post_webhook(body)
    assert response.json() == {"received": 1000, "new_leads": 1000}
    assert Lead.objects.count() == 1000
    assert queue_size() == 40  # 25 ids per fetch task


def test_huge_bogus_content_length_is_413_without_reading(client, settings):
    response = client.post(
        "/webhooks/meta/",
        b"{}",
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64,
        CONTENT_LENGTH=str(10**12),
    )
    assert response.status_code == 413
    assert WebhookDelivery.objects.count() == 0


def test_non_numeric_content_length_is_400(client):
    response = client.post(
        "/webhooks/meta/",
        b"{}",
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256="sha256=" + "0" * 64,
        CONTENT_LENGTH="lots",
    )
    assert response.status_code == 400


CHANGE_VALUES = st.fixed_dictionaries(
    {},
    optional={
        key: st.one_of(JSON_VALUES, st.integers(), st.just("1234567890123456"))
        for key in ("leadgen_id", "page_id", "form_id", "ad_id", "adgroup_id", "created_time")
    },
)
DELIVERIES = st.fixed_dictionaries(
    {"object": st.one_of(st.just("page"), JSON_VALUES)},
    optional={
        "entry": st.one_of(
            JSON_VALUES,
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": st.one_of(st.just("1111"), JSON_VALUES),
                        "time": JSON_VALUES,
                        "changes": st.one_of(
                            JSON_VALUES,
                            st.lists(
                                st.fixed_dictionaries(
                                    {"field": st.one_of(st.just("leadgen"), JSON_VALUES)},
                                    optional={"value": st.one_of(CHANGE_VALUES, JSON_VALUES)},
                                ),
                                max_size=3,
                            ),
                        ),
                    },
                ),
                max_size=3,
            ),
        )
    },
)


@given(payload=st.one_of(DELIVERIES, JSON_VALUES))
@example(payload={"object": "page", "entry": [{"changes": [{"field": "leadgen", "value": {
    "leadgen_id": 1, "page_id": 1, "created_time": 10**30, "form_id": "\u0000"}}]}]})  # fmt: skip
def test_any_validly_signed_json_is_kept_and_answered_without_a_5xx(payload):
    """Whatever JSON Meta (or someone holding the app secret) signs, the delivery is stored
    as sent and answered 200 or 400, never 5xx (which Meta would retry for 36 hours)."""
    raw = json.dumps(payload).encode()
    with transaction.atomic():
        response = Client().post(
            "/webhooks/meta/",
            raw,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sign(raw, settings.META_APP_SECRET),
        )
        assert response.status_code in (200, 400), response.content
        assert bytes(WebhookDelivery.objects.get().body) == raw
        transaction.set_rollback(True)
