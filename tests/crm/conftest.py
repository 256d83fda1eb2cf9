"""Fixtures of the sales UI tests: a named cast.

The cast: `boss` (superuser), `ana` (salesperson granted page A), `bob` (salesperson
granted nothing); page A has a form with questions and two staged leads, page B one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from crm.models import PageAccess
from leads.models import Form, Lead, Page, PipelineStage
from leads.pipeline import enter_pipeline_many
from tests.conftest import load_fixture

User = get_user_model()

QUESTIONS = [
    {"key": "email", "label": "Your email", "type": "EMAIL"},
    {"key": "full_name", "label": "Your name", "type": "FULL_NAME"},
    {"key": "city", "label": "Which city?", "type": "CITY"},
    {"key": "phone_number", "label": "Phone", "type": "PHONE"},
    {"key": "zip_code", "label": "ZIP", "type": "ZIP"},
]


def make_lead(page: Page | None, form: Form | None, n: int, **fields: Any) -> Lead:
    graph = load_fixture("graph_lead.json")
    defaults: dict[str, Any] = {
        "leadgen_id": f"77000000000{n:05d}",
        "page": page,
        "form": form,
        "created_time": dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n),
        "field_data": graph["field_data"],
        "custom_disclaimer_responses": graph["custom_disclaimer_responses"],
        "full_name": f"Person {n}",
        "email": f"person{n}@example.com",
        "phone": f"+34 612 34 {n:04d}",
        "fetch_status": Lead.FetchStatus.COMPLETE,
        "ad_id": "120210000000000001",
        "ad_name": "Winter promo - video",
        "campaign_name": "Winter leads 2025",
        "is_organic": False,
        "platform": "ig",
    }
    defaults.update(fields)
    return Lead.objects.create(**defaults)


@pytest.fixture
def cast(db) -> dict[str, Any]:
    page_a = Page.objects.create(page_id="101", name="Acme Spain")
    page_b = Page.objects.create(page_id="202", name="Acme France")
    form_a = Form.objects.create(
        form_id="1001", page=page_a, name="Winter form", questions=QUESTIONS
    )
    form_b = Form.objects.create(form_id="2002", page=page_b, name="Formulaire")
    boss = User.objects.create_superuser("boss", password="pw", first_name="Bea", last_name="Boss")
    ana = User.objects.create_user("ana", password="pw", is_staff=True, first_name="Ana")
    bob = User.objects.create_user("bob", password="pw", is_staff=True)
    PageAccess.objects.create(user=ana, page=page_a)
    a1 = make_lead(page_a, form_a, 1, full_name="Jürgen Müller", email="jurgen@example.com")
    a2 = make_lead(page_a, form_a, 2, is_organic=True, platform="fb")
    b1 = make_lead(page_b, form_b, 3, full_name="Claire Dubois")
    pending = make_lead(
        page_a, form_a, 4, fetch_status=Lead.FetchStatus.PENDING, field_data=[], full_name=""
    )
    enter_pipeline_many([a1.pk, a2.pk, b1.pk])
    for lead in (a1, a2, b1):
        lead.refresh_from_db()
    return {
        "page_a": page_a,
        "page_b": page_b,
        "form_a": form_a,
        "form_b": form_b,
        "boss": boss,
        "ana": ana,
        "bob": bob,
        "a1": a1,
        "a2": a2,
        "b1": b1,
        "pending": pending,
        "new": PipelineStage.objects.get(slug="new"),
        "won": PipelineStage.objects.get(slug="won"),
    }


@pytest.fixture
def login() -> Iterator[Any]:
    def client_for(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    yield client_for
