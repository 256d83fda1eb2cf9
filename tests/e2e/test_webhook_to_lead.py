"""End to end: a signed webhook reaches gunicorn, the qcluster worker fetches the lead from
the Meta stand-in over HTTP, and the complete lead is stored."""

from __future__ import annotations

import io
import json

import pytest
import requests
from django.conf import settings
from django.core.management import call_command

from leads.models import Lead, StageChange
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, load_fixture
from tests.e2e.conftest import wait_until

pytestmark = [
    pytest.mark.e2e,
    # Real processes share the database, so it must really commit; serialized_rollback
    # restores the default pipeline afterwards for the tests that follow.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PAGE_TOKEN = "sandbox-page-token"


def test_signed_webhook_becomes_a_complete_lead(stack):
    meta = stack.meta
    meta.add_page("1111", name="Acme Spain", token=PAGE_TOKEN)
    meta.add_form("2222", page_id="1111", name="Winter form")
    sent = load_fixture("graph_lead.json")
    meta.add_lead(sent)
    call_command("connect_page", "1111", "--token", PAGE_TOKEN, stdout=io.StringIO())

    body = json.dumps(leadgen_body([[change_value(int(sent["id"]), page_id=1111)]])).encode()
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
    assert response.json() == {"received": 1, "new_leads": 1}

    def complete() -> Lead | None:
        return Lead.objects.filter(
            leadgen_id=sent["id"], fetch_status=Lead.FetchStatus.COMPLETE
        ).first()

    try:
        lead = wait_until(complete, timeout=45)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{stack.output()}") from None

    assert lead.field_data == sent["field_data"]
    assert lead.custom_disclaimer_responses == sent["custom_disclaimer_responses"]
    assert lead.email == "Jurgen.Muller@Example.com"
    assert lead.campaign_name == "Winter leads 2025"
    assert lead.platform == "ig"
    assert lead.is_organic is False
    assert lead.stage.slug == "new"
    assert StageChange.objects.filter(lead=lead).count() == 1
    # Exactly one Graph read of the lead, with the page token in the header.
    assert meta.request_count(rf"/{sent['id']}$", "GET") == 1
    lead_requests = [r for r in meta.requests if r.path.endswith(sent["id"])]
    assert lead_requests[0].headers.get("authorization") == f"Bearer {PAGE_TOKEN}"

    # The same delivery again (Meta retries): still one lead, no second fetch.
    again = requests.post(
        f"{stack.url}/webhooks/meta/",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(body, settings.META_APP_SECRET),
        },
        timeout=30,
    )
    assert again.json() == {"received": 1, "new_leads": 0}
    assert Lead.objects.count() == 1
    assert meta.request_count(rf"/{sent['id']}$", "GET") == 1
