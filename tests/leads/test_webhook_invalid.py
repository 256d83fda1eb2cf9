"""Deliveries whose signature fails: what is kept of them (headers, size, digest, first
4 KiB), the rate limits that bound how many are kept, and the client address they are
counted by."""

from __future__ import annotations

import hashlib
import json
import pickle
import time

import pytest
from django.db.models import Sum
from django.db.models.functions import Length
from django.urls import reverse

from leads import throttle
from leads.ingestion import INVALID_BODY_KEPT_BYTES
from leads.models import Lead, WebhookDelivery
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, queue_size, refresh_translations

pytestmark = pytest.mark.django_db

WRONG = "sha256=" + "0" * 64
# 2026-01-01 00:10:00 UTC: ten minutes into an hour's window.
NOW = 1_767_226_200.0


@pytest.fixture
def fixed_clock(monkeypatch):
    """Every count falls in one window, whenever the test runs."""
    monkeypatch.setattr(throttle, "clock", lambda: NOW)
    return NOW


def post(client, body: bytes, *, signature: str = WRONG, address: str = "203.0.113.7", **extra):
    return client.post(
        "/webhooks/meta/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
        REMOTE_ADDR=address,
        **extra,
    )


def stored_body_bytes() -> int:
    return WebhookDelivery.objects.aggregate(total=Sum(Length("body")))["total"] or 0


# --- What is kept -------------------------------------------------------------------------


def test_twenty_one_megabyte_posts_keep_four_kilobytes_each(client, settings, fixed_clock):
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "20/hour"
    bodies = [bytes([65 + n]) * settings.WEBHOOK_MAX_BODY_BYTES for n in range(20)]
    for body in bodies:
        assert post(client, body).status_code == 403

    assert WebhookDelivery.objects.count() == 20
    # The whole of what the 20 posts left: 20 x 4 KiB of body and these headers.
    assert stored_body_bytes() == 20 * INVALID_BODY_KEPT_BYTES
    for delivery, body in zip(WebhookDelivery.objects.order_by("pk"), bodies, strict=True):
        assert bytes(delivery.body) == body[:INVALID_BODY_KEPT_BYTES]
        assert delivery.body_size == 1024 * 1024
        assert delivery.body_sha256 == hashlib.sha256(body).hexdigest()
        assert delivery.body_truncated is True
        assert delivery.status == WebhookDelivery.Status.INVALID_SIGNATURE
        assert delivery.signature_valid is False
        assert delivery.headers == {
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": "1048576",
            "HTTP_X_HUB_SIGNATURE_256": WRONG,
            "REMOTE_ADDR": "203.0.113.7",
        }
    assert Lead.objects.count() == 0
    assert queue_size() == 0


def test_a_small_invalid_body_is_kept_whole_with_its_digest(client, fixed_clock):
    body = json.dumps(leadgen_body([[change_value(1)]])).encode()
    assert post(client, body, signature=sign(body, "not-the-app-secret")).status_code == 403

    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == body
    assert (delivery.body_size, delivery.body_truncated) == (len(body), False)
    assert delivery.body_sha256 == hashlib.sha256(body).hexdigest()


def test_a_body_one_byte_over_the_kept_part_is_truncated(client, fixed_clock):
    body = b"x" * (INVALID_BODY_KEPT_BYTES + 1)
    post(client, body)
    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == body[:-1]
    assert (delivery.body_size, delivery.body_truncated) == (INVALID_BODY_KEPT_BYTES + 1, True)


def test_a_verified_delivery_keeps_its_whole_body_size_and_digest(post_webhook):
    body = json.dumps(leadgen_body([[change_value(1)]])).encode()
    assert post_webhook(body).status_code == 200
    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == body
    assert (delivery.body_size, delivery.body_truncated) == (len(body), False)
    assert delivery.body_sha256 == hashlib.sha256(body).hexdigest()


def test_kept_headers_are_cut_to_a_kilobyte(client, fixed_clock):
    post(client, b"{}", HTTP_USER_AGENT="u" * 5000)
    assert WebhookDelivery.objects.get().headers["HTTP_USER_AGENT"] == "u" * 1024


# --- Rate limits --------------------------------------------------------------------------


def test_beyond_the_per_client_limit_nothing_more_is_stored(client, settings, fixed_clock):
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "3/hour"
    settings.WEBHOOK_INVALID_RATE_TOTAL = "100/hour"
    statuses = [post(client, b"x" * 10_000).status_code for _ in range(5)]
    assert statuses == [403, 403, 403, 429, 429]
    assert WebhookDelivery.objects.count() == 3
    assert stored_body_bytes() == 3 * INVALID_BODY_KEPT_BYTES

    refused = post(client, b"{}")
    assert refused.status_code == 429
    # The hour's window ends 50 minutes after NOW.
    assert refused["Retry-After"] == "3000"
    assert refused.json() == {"error": "Too many deliveries with an invalid signature; not stored."}
    assert WebhookDelivery.objects.count() == 3
    assert throttle.refused_deliveries().count == 3

    # Another client has its own allowance.
    assert post(client, b"{}", address="198.51.100.1").status_code == 403
    assert WebhookDelivery.objects.count() == 4


def test_the_next_window_allows_again(client, settings, monkeypatch):
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "1/minute"
    monkeypatch.setattr(throttle, "clock", lambda: NOW)
    assert [post(client, b"{}").status_code for _ in range(2)] == [403, 429]
    monkeypatch.setattr(throttle, "clock", lambda: NOW + 60)
    assert [post(client, b"{}").status_code for _ in range(2)] == [403, 429]
    assert WebhookDelivery.objects.count() == 2


def test_the_total_cap_holds_across_many_addresses(client, settings, fixed_clock):
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "20/hour"
    settings.WEBHOOK_INVALID_RATE_TOTAL = "4/hour"
    statuses = [post(client, b"{}", address=f"192.0.2.{n}").status_code for n in range(1, 8)]
    assert statuses == [403, 403, 403, 403, 429, 429, 429]
    assert WebhookDelivery.objects.count() == 4
    assert throttle.refused_deliveries().count == 3


def test_a_zero_rate_keeps_none(client, settings, fixed_clock):
    settings.WEBHOOK_INVALID_RATE_TOTAL = "0/hour"
    assert post(client, b"{}").status_code == 429
    assert WebhookDelivery.objects.count() == 0


def test_validly_signed_deliveries_are_never_limited(client, settings, fixed_clock):
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "1/hour"
    assert [post(client, b"{}").status_code for _ in range(2)] == [403, 429]
    for n in range(3):
        body = json.dumps(leadgen_body([[change_value(100 + n)]])).encode()
        response = post(client, body, signature=sign(body, settings.META_APP_SECRET))
        assert response.status_code == 200
    assert Lead.objects.count() == 3
    assert WebhookDelivery.objects.filter(signature_valid=True).count() == 3


def test_behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for(
    client, settings, fixed_clock
):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "1/hour"
    proxy = "10.0.0.2"

    def from_client(address: str, forged: str = "6.6.6.6") -> int:
        forwarded = f"{forged}, {address}"
        return post(client, b"{}", address=proxy, HTTP_X_FORWARDED_FOR=forwarded).status_code

    # The entry the proxy appended counts; what the client put before it does not.
    assert [from_client("192.0.2.1"), from_client("192.0.2.1", forged="7.7.7.7")] == [403, 429]
    assert from_client("192.0.2.2") == 403
    assert WebhookDelivery.objects.count() == 2


def test_the_admin_shows_how_many_were_refused(client, admin_client, settings, fixed_clock):
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "1/hour"
    url = reverse("admin:leads_webhookdelivery_changelist")
    assert "refused without being stored" not in admin_client.get(url).content.decode()
    assert [post(client, b"{}").status_code for _ in range(3)] == [403, 429, 429]

    html = admin_client.get(url).content.decode()
    assert (
        "Since Jan. 1, 2026, 12:10 a.m., 2 deliveries with an invalid signature were refused "
        "without being stored (rate limit); the last at Jan. 1, 2026, 12:10 a.m."
    ) in html


def test_the_admin_shows_size_digest_and_truncation(client, admin_client, fixed_clock):
    body = b"A" * 5000
    post(client, body)
    delivery = WebhookDelivery.objects.get()
    html = admin_client.get(
        reverse("admin:leads_webhookdelivery_change", args=[delivery.pk])
    ).content.decode()
    assert "5,000 bytes (4.9\xa0KB)" in html
    assert hashlib.sha256(body).hexdigest() in html
    assert (
        "Only the first 4,096 of 5,000 bytes are kept: the signature did not verify. "
        "The SHA-256 is that of the whole body."
    ) in html
    listing = admin_client.get(reverse("admin:leads_webhookdelivery_changelist")).content
    assert "5,000 bytes (4.9\xa0KB)" in listing.decode()


def test_the_limits_hold_in_the_file_cache_and_keep_their_window(
    client, settings, tmp_path, fixed_clock
):
    """The cache web processes share without Redis. Its increment rewrites the key with the
    default timeout (300 s); the limiter puts the window's back."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "3/day"
    assert [post(client, b"{}").status_code for _ in range(5)] == [403, 403, 403, 429, 429]
    assert WebhookDelivery.objects.count() == 3
    assert throttle.refused_deliveries().count == 2

    from django.core.cache import cache

    key, left = throttle._window(
        "client:" + hashlib.sha256(b"203.0.113.7").hexdigest()[:32],
        throttle.parse_rate("3/day"),
        NOW,
    )
    assert cache.get(key) == 5
    assert left == 86400 - 600
    with open(cache._key_to_file(key), "rb") as stored:
        expires = pickle.load(stored)  # the file cache's first record
    # Written with the window's time left, not the default 300 s.
    assert expires - time.time() > 80_000


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/hour", throttle.Rate(20, 3600)),
        ("5/m", throttle.Rate(5, 60)),
        ("0 / Day", throttle.Rate(0, 86400)),
        ("7/second", throttle.Rate(7, 1)),
    ],
)
def test_parse_rate(text, rate):
    assert throttle.parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "20", "x/hour", "20/fortnight", "-1/hour"])
def test_parse_rate_refuses_other_text(text):
    with pytest.raises(ValueError, match="Not a rate"):
        throttle.parse_rate(text)


def test_the_admin_notice_is_translated(client, admin_client, settings, fixed_clock):
    refresh_translations()  # the .mo files are build output
    settings.WEBHOOK_INVALID_RATE_PER_CLIENT = "0/hour"
    assert post(client, b"{}").status_code == 429
    html = admin_client.get(
        reverse("admin:leads_webhookdelivery_changelist"), HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert "1 entrega con una firma no válida se rechazó sin guardarse" in html
