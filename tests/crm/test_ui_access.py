"""Per-page access in the sales UI: a salesperson cannot open, list, export or change a
lead of a page not granted to them — by URL, by the API or by the export — and the
attempt changes nothing."""

from __future__ import annotations

import contextlib
import csv
import io
from typing import Any

import pytest
from django.apps import apps
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm.models import Assignment, Note
from leads.models import Lead, StageChange

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def snapshot() -> dict[str, Any]:
    """Everything a denied attempt could have changed."""
    state: dict[str, Any] = {
        "stages": dict(Lead.objects.values_list("pk", "stage_id")),
        "stage_changes": StageChange.objects.count(),
        "notes": Note.objects.count(),
        "assignments": list(Assignment.objects.values_list("lead_id", "owner_id")),
    }
    if apps.is_installed("capi"):
        with contextlib.suppress(LookupError):
            state["events"] = apps.get_model("capi", "ConversionEvent").objects.count()
    return state


def test_a_lead_of_another_page_is_not_found_anywhere_and_nothing_changes(login, cast):
    ana = login(cast["ana"])
    hidden = cast["b1"]
    before = snapshot()

    # By URL: the page, every write (plain and htmx).
    assert ana.get(f"/leads/{hidden.pk}/").status_code == 404
    for headers in ({}, HTMX):
        assert ana.post(f"/leads/{hidden.pk}/move/", {"stage": "won"}, **headers).status_code == 404
        assert ana.post(f"/leads/{hidden.pk}/notes/", {"body": "hi"}, **headers).status_code == 404
        assert (
            ana.post(f"/leads/{hidden.pk}/owner/", {"owner": cast["ana"].pk}, **headers).status_code
            == 404
        )

    # Not listed, not on the board, not in a column's "more", not searchable.
    for params in ({}, {"q": "Dubois"}, {"q": hidden.leadgen_id}, {"page": "202"}):
        listing = ana.get("/leads/", params)
        assert hidden.pk not in [lead.pk for lead in listing.context["leads"]]
    board = ana.get("/board/").content.decode()
    assert f'id="lead-{hidden.pk}"' not in board
    more = ana.get("/board/new/more/", {"offset": 0}, **HTMX).content.decode()
    assert f'id="lead-{hidden.pk}"' not in more

    # Not exported, whatever the filter asks for.
    for params in ({}, {"page": "202"}, {"form": "2002"}, {"q": "Dubois"}):
        body = b"".join(ana.get("/leads/export.csv", params).streaming_content).decode()
        rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
        assert hidden.leadgen_id not in {row["leadgen_id"] for row in rows}
        assert "Dubois" not in body

    # By the API, with a token.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cast['ana']).key}")
    assert api.get(f"/api/v1/leads/{hidden.pk}/").status_code == 404
    assert (
        api.patch(f"/api/v1/leads/{hidden.pk}/", {"stage": "won"}, format="json").status_code == 404
    )
    listed = api.get("/api/v1/leads/").json()
    assert hidden.pk not in [lead["id"] for lead in listed["results"]]

    assert snapshot() == before


def test_the_same_requests_work_for_a_granted_lead(login, cast):
    """The control: the denials above are about access, not broken URLs."""
    ana = login(cast["ana"])
    mine = cast["a1"]
    assert ana.get(f"/leads/{mine.pk}/").status_code == 200
    assert ana.post(f"/leads/{mine.pk}/move/", {"stage": "won"}, **HTMX).status_code == 200
    assert ana.post(f"/leads/{mine.pk}/notes/", {"body": "hi"}, **HTMX).status_code == 200
    assert ana.post(f"/leads/{mine.pk}/owner/", {"owner": cast["ana"].pk}).status_code == 302
    assert Lead.objects.get(pk=mine.pk).stage.slug == "won"
    assert Note.objects.filter(lead=mine).count() == 1
    assert Assignment.objects.get(lead=mine).owner == cast["ana"]


def test_a_salesperson_without_grants_sees_an_empty_workspace(login, cast):
    bob = login(cast["bob"])
    assert bob.get("/board/").context["total"] == 0
    assert list(bob.get("/leads/").context["leads"]) == []
    body = b"".join(bob.get("/leads/export.csv").streaming_content).decode()
    assert body.count("\n") == 1  # the header only
    assert bob.get(f"/leads/{cast['a1'].pk}/").status_code == 404


def test_losing_a_grant_takes_effect_at_once(login, cast):
    ana = login(cast["ana"])
    assert ana.get(f"/leads/{cast['a1'].pk}/").status_code == 200
    cast["ana"].page_grants.all().delete()
    assert ana.get(f"/leads/{cast['a1'].pk}/").status_code == 404


def test_inactive_users_are_logged_out(login, cast):
    ana = login(cast["ana"])
    cast["ana"].is_active = False
    cast["ana"].save(update_fields=["is_active"])
    assert ana.get("/board/").status_code == 302


def test_not_found_is_a_page_in_the_ui_and_json_in_the_api(login, cast):
    ana = login(cast["ana"])
    page = ana.get(f"/leads/{cast['b1'].pk}/")
    assert page.status_code == 404
    assert "not shared with you" in page.content.decode()
    assert "Claire Dubois" not in page.content.decode()
    api = ana.get("/api/v1/stages/no%0Asuch/")
    assert api.status_code == 404
    assert api.json() == {"error": {"status": 404, "code": "not_found", "message": "Not found."}}
