"""End to end: a signed delivery sent with `Transfer-Encoding: chunked` through a real
gunicorn is read and accepted, and a chunked body over the size limit is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings

from leads.models import Lead, WebhookDelivery
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def in_pieces(body: bytes, size: int) -> Iterator[bytes]:
    # A generator has no length: requests sends it chunked, one chunk per piece.
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_signed_delivery_is_accepted_and_an_oversized_one_refused(stack):
    body = json.dumps(leadgen_body([[change_value(5_550_001)], [change_value(5_550_002)]]))
    raw = body.encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(raw, settings.META_APP_SECRET),
    }
    response = requests.post(
        f"{stack.url}/webhooks/meta/", data=in_pieces(raw, 50), headers=headers, timeout=10
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 200, (response.text, stack.output())
    assert response.json() == {"received": 2, "new_leads": 2}
    assert set(Lead.objects.values_list("leadgen_id", flat=True)) == {"5550001", "5550002"}
    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == raw
    assert delivery.headers["HTTP_TRANSFER_ENCODING"] == "chunked"

    # One byte over the default limit (1 MiB), signed: refused, nothing stored.
    big = b" " * (settings.WEBHOOK_MAX_BODY_BYTES + 1)
    refused = requests.post(
        f"{stack.url}/webhooks/meta/",
        data=in_pieces(big, 64 * 1024),
        headers={**headers, "X-Hub-Signature-256": sign(big, settings.META_APP_SECRET)},
        timeout=10,
    )
    assert refused.status_code == 413, refused.text
    assert WebhookDelivery.objects.count() == 1
    assert Lead.objects.count() == 2
