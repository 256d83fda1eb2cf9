"""`MetaWebhookMiddleware`: the webhook skips the middleware only people's requests need,
and keeps what still applies to it (HTTPS redirect, security headers, allowed hosts, the
usual 500 answer)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from leads.models import Lead, WebhookDelivery
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body

pytestmark = pytest.mark.django_db


def _post(client, body: bytes, **extra):
    return client.post(
        "/webhooks/meta/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(body, settings.META_APP_SECRET),
        **extra,
    )


def _body(lead: int = 1) -> bytes:
    return json.dumps(leadgen_body([[change_value(lead)]])).encode()


def test_it_sits_right_after_the_security_middleware():
    middleware = settings.MIDDLEWARE
    position = middleware.index("leads.middleware.MetaWebhookMiddleware")
    assert middleware[position - 1] == "django.middleware.security.SecurityMiddleware"
    assert position == 1


def test_a_delivery_runs_no_session_locale_csrf_or_messages_middleware(client):
    client.cookies["sessionid"] = "not-a-session"
    client.cookies["django_language"] = "fr"
    response = _post(client, _body(), HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 200
    assert response.json() == {"received": 1, "new_leads": 1}
    assert not response.cookies  # no session, CSRF or messages cookie set or refreshed
    assert "Content-Language" not in response  # LocaleMiddleware never saw it
    assert "Vary" not in response
    # SecurityMiddleware still answered: its headers are on the response.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.wsgi_request.resolver_match.url_name == "meta-webhook"


def test_other_paths_keep_the_whole_stack(client):
    response = client.get("/healthz", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"  # XFrameOptionsMiddleware
    assert "Accept-Language" in response["Vary"]  # LocaleMiddleware
    # A path that merely starts like the webhook's goes the usual way (a 404 here).
    assert (
        client.post("/webhooks/meta/extra/", b"{}", content_type="application/json").status_code
        == 404
    )


def test_a_host_outside_allowed_hosts_is_refused_and_nothing_is_stored(client, settings):
    settings.ALLOWED_HOSTS = ["crm.example.com"]
    client.raise_request_exception = False
    response = _post(client, _body(), HTTP_HOST="attacker.example.net")
    assert response.status_code == 400
    assert not WebhookDelivery.objects.exists()
    assert _post(client, _body(), HTTP_HOST="crm.example.com").status_code == 200


def test_plain_http_is_redirected_to_https_before_anything_is_stored(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = _post(client, _body(), HTTP_HOST="testserver")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/webhooks/meta/"
    assert not WebhookDelivery.objects.exists()
    assert _post(client, _body(), secure=True).status_code == 200


def test_an_exception_escaping_the_view_is_djangos_500(client, monkeypatch):
    def explode(meta):
        raise RuntimeError("unexpected")

    monkeypatch.setattr("leads.views.kept_headers", explode)
    client.raise_request_exception = False
    response = _post(client, _body())
    assert response.status_code == 500
    assert not Lead.objects.exists()
