"""No token in logs or error messages: every log record emitted while ingesting webhooks,
failing to fetch leads, connecting pages and sending conversions is captured at DEBUG and
searched for the tokens and the app secret."""

from __future__ import annotations

import io
import logging

import pytest
import requests
from django.core.management import CommandError, call_command

from capi.sending import send_pending
from leads import fetching
from leads.models import Lead, Page
from leads.pipeline import enter_pipeline_many
from tests.conftest import GRAPH, change_value, graph_lead, leadgen_body

pytestmark = pytest.mark.django_db

PAGE_TOKEN = "EAAPageTokenSecretValue0001"
SYSTEM_TOKEN = "EAASystemTokenSecretValue0002"
NEW_TOKEN = "EAANewTokenSecretValue0003"
DATASET = "1261294122522559"


def _all_text(caplog) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
    return "\n".join(parts)


def test_no_token_appears_in_any_log_or_error(
    caplog, post_webhook, mocked_graph, settings, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    settings.META_ACCESS_TOKEN = SYSTEM_TOKEN
    settings.META_DATASET_ID = DATASET
    settings.CAPI_BACKOFF = 0.0
    settings.LEAD_FETCH_INLINE_RETRIES = 1
    page = Page.objects.create(page_id="1111")
    page.token = PAGE_TOKEN
    page.save()
    errors: list[str] = []

    # Ingestion: valid, invalid and malformed deliveries.
    post_webhook(leadgen_body([[change_value(i) for i in (11, 12, 13, 14)]]))
    post_webhook(leadgen_body([[change_value(15)]]), secret="wrong")
    post_webhook(b"{oops")

    # Fetch failures of every kind; Meta echoes a malformed token back in some 190 messages.
    leads = {lead.leadgen_id: lead for lead in Lead.objects.all()}
    mocked_graph.get(f"{GRAPH}/11", body=requests.ConnectionError(f"refused {PAGE_TOKEN}"))
    mocked_graph.get(f"{GRAPH}/11", status=502, body=f"<html>{PAGE_TOKEN}</html>")
    mocked_graph.get(
        f"{GRAPH}/12",
        status=400,
        json={"error": {"message": f"Bad value {PAGE_TOKEN}", "code": 100, "type": "X"}},
    )
    mocked_graph.get(f"{GRAPH}/13", json=graph_lead("13"))
    mocked_graph.get(
        f"{GRAPH}/14",
        status=400,
        json={"error": {"message": f"Malformed access token {PAGE_TOKEN}", "code": 190}},
    )
    for leadgen_id in ("11", "12", "13", "14"):
        fetching.fetch_lead(leads[leadgen_id].pk)
    errors += list(Lead.objects.values_list("fetch_error", flat=True))
    errors += list(Page.objects.values_list("token_error", flat=True))

    # connect_page with a token Meta refuses, then with one it accepts.
    mocked_graph.get(
        f"{GRAPH}/1111",
        status=400,
        json={"error": {"message": f"Invalid OAuth access token {NEW_TOKEN}", "code": 190}},
    )
    with pytest.raises(CommandError) as refused:
        call_command("connect_page", "1111", "--token", NEW_TOKEN, stdout=io.StringIO())
    errors.append(str(refused.value))

    # Conversions: a transient failure, then a token refusal.
    lead = leads["13"]
    with django_capture_on_commit_callbacks(execute=False):
        enter_pipeline_many([lead.pk])
    mocked_graph.post(f"{GRAPH}/{DATASET}/events", status=500, body=f"oops {SYSTEM_TOKEN}")
    mocked_graph.post(
        f"{GRAPH}/{DATASET}/events",
        status=400,
        json={"error": {"message": f"Invalid OAuth access token {SYSTEM_TOKEN}", "code": 190}},
    )
    send_pending()
    send_pending()
    from capi.models import ConversionEvent, SendAttempt, SenderState

    errors += [str(v) for v in ConversionEvent.objects.values_list("last_error", flat=True)]
    errors += [str(row) for row in SendAttempt.objects.values_list()]
    errors += [str(row) for row in SenderState.objects.values_list()]

    text = _all_text(caplog) + "\n".join(errors)
    assert len(caplog.records) > 5  # the failures above were logged
    for secret in (PAGE_TOKEN, SYSTEM_TOKEN, NEW_TOKEN, settings.META_APP_SECRET):
        assert secret not in text
    # The calls themselves carried the tokens, in headers only.
    assert any(PAGE_TOKEN in c.request.headers.get("Authorization", "") for c in mocked_graph.calls)
    assert all(PAGE_TOKEN not in c.request.url for c in mocked_graph.calls)
