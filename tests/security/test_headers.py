"""Response headers of the pages and API answers that carry lead data (hardening issue 16,
item 5): `Cache-Control: no-store`, and the Content-Security-Policy, on each. The browser
test (tests/browser/test_csp.py) shows the pages work under that policy."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from crm.models import Note
from leads.models import Form, Lead, Page
from leads.pipeline import enter_pipeline

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def policy(header: str) -> dict[str, str]:
    """The header's directives (django-csp writes them in no fixed order)."""
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.fixture
def lead() -> Lead:
    page = Page.objects.create(page_id="101", name="Acme")
    form = Form.objects.create(form_id="1001", page=page, name="Winter form")
    lead = Lead.objects.create(
        leadgen_id="1234567890123456",
        page=page,
        form=form,
        full_name="Ana García",
        email="ana@example.com",
        fetch_status=Lead.FetchStatus.COMPLETE,
    )
    enter_pipeline(lead)
    boss = get_user_model().objects.create_superuser("boss", password="pw")
    Note.objects.create(lead=lead, author=boss, body="Called.")
    return lead


@pytest.fixture
def boss_client(lead) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username="boss"))
    return client


def lead_data_urls(lead: Lead) -> list[str]:
    return [
        "/board/",
        "/leads/",
        "/leads/?q=ana",
        f"/leads/{lead.pk}/",
        "/leads/export.csv",
        "/api/v1/leads/",
        f"/api/v1/leads/{lead.pk}/",
        f"/api/v1/leads/{lead.pk}/notes/",
        "/api/v1/stages/",
        "/admin/",
        "/admin/leads/lead/",
        f"/admin/leads/lead/{lead.pk}/change/",
        "/admin/leads/stagechange/",
    ]


def test_every_page_and_api_answer_with_lead_data_is_no_store(boss_client, lead):
    for url in lead_data_urls(lead):
        response = boss_client.get(url)
        assert response.status_code == 200, url
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert "no-store" in directives, url


def test_htmx_partials_are_no_store(boss_client, lead):
    response = boss_client.get("/leads/", {"q": "ana"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_the_admin_export_is_no_store(boss_client, lead):
    response = boss_client.post(
        "/admin/leads/lead/", {"action": "export_csv", "_selected_action": [lead.pk]}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "no-store" in response["Cache-Control"]


def test_every_page_has_the_content_security_policy(boss_client, lead):
    urls = [*lead_data_urls(lead), "/api/v1/docs/", "/api/v1/docs/?script="]
    for url in urls:
        response = boss_client.get(url)
        assert response.status_code == 200, url
        assert policy(response["Content-Security-Policy"]) == POLICY, url
    assert policy(Client().get("/login/")["Content-Security-Policy"]) == POLICY


def test_the_api_docs_page_has_no_inline_script_or_style(client):
    page = client.get("/api/v1/docs/").content.decode()
    assert "<style" not in page
    assert '<script src="/api/v1/docs/?script="></script>' in page
    assert page.count("<script") == 3  # Swagger UI's two bundles and its start-up script
    script = client.get("/api/v1/docs/?script=")
    assert script["Content-Type"] == "application/javascript"
    assert b'url: "/api/v1/schema/"' in script.content


def test_static_files_keep_their_own_caching(client):
    response = client.get("/static/leadloop/app.js")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
