"""The REST API: every endpoint and method, the denials, and that denials change nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from crm.models import Assignment, Note, PageAccess
from leads.models import Form, Lead, Page, PipelineStage, StageChange
from leads.pipeline import enter_pipeline_many
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def world():
    page_a = Page.objects.create(page_id="101", name="Page A")
    page_b = Page.objects.create(page_id="202", name="Page B")
    form_a = Form.objects.create(form_id="1001", page=page_a, name="Form A")
    form_b = Form.objects.create(form_id="2002", page=page_b, name="Form B")
    graph = load_fixture("graph_lead.json")
    leads = []
    for i, (page, form) in enumerate([(page_a, form_a), (page_a, form_a), (page_b, form_b)]):
        leads.append(
            Lead.objects.create(
                leadgen_id=f"9000000000000{i}",
                page=page,
                form=form,
                created_time=dt.datetime(2025, 1, 1 + i, tzinfo=dt.UTC),
                field_data=graph["field_data"],
                custom_disclaimer_responses=graph["custom_disclaimer_responses"],
                full_name=f"Person {i}",
                email=f"person{i}@example.com",
                phone=f"+3461234567{i}",
                fetch_status=Lead.FetchStatus.COMPLETE,
                ad_id="5",
                is_organic=False,
                platform="fb",
            )
        )
    enter_pipeline_many([lead.pk for lead in leads])
    ana = User.objects.create_user("ana", password="pw", is_staff=True)
    PageAccess.objects.create(user=ana, page=page_a)
    boss = User.objects.create_superuser("boss", password="pw")
    return {"a1": leads[0], "a2": leads[1], "b": leads[2], "ana": ana, "boss": boss}


def api(user=None, *, token: bool = True) -> APIClient:
    client = APIClient()
    if user is not None:
        key = Token.objects.get_or_create(user=user)[0].key
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


# --- Authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/leads/"),
        ("get", "/api/v1/leads/1/"),
        ("patch", "/api/v1/leads/1/"),
        ("get", "/api/v1/leads/1/notes/"),
        ("post", "/api/v1/leads/1/notes/"),
        ("get", "/api/v1/stages/"),
    ],
)
def test_unauthenticated_requests_are_refused_with_the_error_body(world, method, url):
    response = getattr(APIClient(), method)(url, {"stage": "won", "body": "x"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert StageChange.objects.count() == 3
    assert Note.objects.count() == 0


def test_bad_token_is_refused(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert client.get("/api/v1/leads/").status_code == 401


def test_session_auth_works(world, client):
    client.force_login(world["ana"])
    assert client.get("/api/v1/leads/").status_code == 200


# --- Leads ------------------------------------------------------------------------------


def test_list_shows_only_granted_pages(world):
    body = api(world["ana"]).get("/api/v1/leads/").json()
    assert [row["leadgen_id"] for row in body["results"]] == ["90000000000001", "90000000000000"]
    assert len(api(world["boss"]).get("/api/v1/leads/").json()["results"]) == 3


def test_lead_resource_has_every_documented_field(world):
    lead = world["a1"]
    Assignment.objects.create(lead=lead, owner=world["ana"])
    row = api(world["ana"]).get(f"/api/v1/leads/{lead.pk}/").json()
    assert row["id"] == lead.pk
    assert row["leadgen_id"] == "90000000000000"
    assert row["created_time"] == "2025-01-01T00:00:00Z"
    assert (row["page"], row["form"], row["form_name"]) == ("101", "1001", "Form A")
    assert row["field_data"] == load_fixture("graph_lead.json")["field_data"]
    assert (
        row["custom_disclaimer_responses"]
        == load_fixture("graph_lead.json")["custom_disclaimer_responses"]
    )
    assert (row["email"], row["phone"], row["full_name"]) == (
        "person0@example.com",
        "+34612345670",
        "Person 0",
    )
    assert row["stage"] == "new"
    assert row["owner"] == "ana"
    assert (row["is_organic"], row["platform"], row["ad_id"]) == (False, "fb", "5")
    for key in ("ad_name", "adset_id", "adset_name", "campaign_id", "campaign_name"):
        assert key in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"stage": "new"}, {"90000000000000", "90000000000001", "90000000000002"}),
        ({"stage": "won"}, set()),
        ({"form": "2002"}, {"90000000000002"}),
        ({"page": "101"}, {"90000000000000", "90000000000001"}),
        ({"leadgen_id": "90000000000001"}, {"90000000000001"}),
        ({"created_after": "2025-01-02T00:00:00Z"}, {"90000000000001", "90000000000002"}),
        ({"created_before": "2025-01-02T00:00:00+00:00"}, {"90000000000000"}),
        ({"search": "person2@"}, {"90000000000002"}),
        ({"search": "Person 1"}, {"90000000000001"}),
        ({"search": "34612345670"}, {"90000000000000"}),
        ({"search": "90000000000002"}, {"90000000000002"}),
        # Ids are read by the rule they are stored by (core.ids): leading zeros do not
        # make another id, and text that is no id finds nothing.
        ({"leadgen_id": "0090000000000001"}, {"90000000000001"}),
        ({"form": "002002"}, {"90000000000002"}),
        ({"page": "0101"}, {"90000000000000", "90000000000001"}),
        ({"search": "0090000000000002"}, {"90000000000002"}),
        ({"leadgen_id": "9e13"}, set()),
    ],
)
def test_filters(world, query, expected):
    body = api(world["boss"]).get("/api/v1/leads/", query).json()
    assert {row["leadgen_id"] for row in body["results"]} == expected


def test_pagination_with_page_size_and_next_link(world):
    client = api(world["boss"])
    body = client.get("/api/v1/leads/", {"page_size": 2, "page": "101"}).json()
    assert [row["leadgen_id"] for row in body["results"]] == ["90000000000001", "90000000000000"]
    assert body["next"] is None
    body = client.get("/api/v1/leads/", {"page_size": 2}).json()
    assert [row["leadgen_id"] for row in body["results"]] == ["90000000000002", "90000000000001"]
    assert "page_size=2" in body["next"]
    second = client.get(body["next"]).json()
    assert [row["leadgen_id"] for row in second["results"]] == ["90000000000000"]
    assert second["next"] is None


def test_other_pages_lead_is_404_for_every_method_and_nothing_changes(world):
    client = api(world["ana"])
    hidden = world["b"]
    assert client.get(f"/api/v1/leads/{hidden.pk}/").status_code == 404
    response = client.patch(f"/api/v1/leads/{hidden.pk}/", {"stage": "won"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/leads/{hidden.pk}/notes/").status_code == 404
    assert client.post(f"/api/v1/leads/{hidden.pk}/notes/", {"body": "x"}).status_code == 404
    hidden.refresh_from_db()
    assert hidden.stage.slug == "new"
    assert StageChange.objects.filter(lead=hidden).count() == 1
    assert Note.objects.count() == 0


def test_patch_stage_moves_through_the_service(world):
    lead = world["a1"]
    response = api(world["ana"]).patch(f"/api/v1/leads/{lead.pk}/", {"stage": "won"}, format="json")
    assert response.status_code == 200
    assert response.json()["stage"] == "won"
    change = StageChange.objects.filter(lead=lead).latest("id")
    assert (change.from_stage.slug, change.to_stage.slug, change.via, change.changed_by) == (
        "new",
        "won",
        "api",
        world["ana"],
    )


def test_patch_with_a_bad_stage_is_400_and_changes_nothing(world):
    lead = world["a1"]
    response = api(world["ana"]).patch(
        f"/api/v1/leads/{lead.pk}/", {"stage": "no-such-stage"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "stage" in error["fields"]
    assert StageChange.objects.filter(lead=lead).count() == 1


def test_patch_empty_body_is_400(world):
    response = api(world["ana"]).patch(f"/api/v1/leads/{world['a1'].pk}/", {}, format="json")
    assert response.status_code == 400


def test_patch_owner_sets_and_clears_and_refuses_a_user_without_access(world):
    lead = world["a1"]
    client = api(world["boss"])
    assert (
        client.patch(f"/api/v1/leads/{lead.pk}/", {"owner": "ana"}, format="json").json()["owner"]
        == "ana"
    )
    assert (
        client.patch(f"/api/v1/leads/{lead.pk}/", {"owner": None}, format="json").json()["owner"]
        is None
    )
    response = client.patch(f"/api/v1/leads/{world['b'].pk}/", {"owner": "ana"}, format="json")
    assert response.status_code == 400
    assert Assignment.objects.count() == 0


def test_patch_owner_does_not_tell_an_unknown_username_from_one_without_access(world):
    """The same answer for a username that does not exist, an inactive one and one that
    cannot see the lead, and nothing changes (the stage given with it does not move)."""
    User.objects.create_user("bob", password="pw", is_staff=True)  # no page granted
    User.objects.create_user("gone", password="pw", is_active=False)
    PageAccess.objects.create(user=User.objects.get(username="gone"), page=world["a1"].page)
    lead = world["a1"]
    client = api(world["ana"])
    answers = {}
    for username in ("nobody", "bob", "gone"):
        response = client.patch(
            f"/api/v1/leads/{lead.pk}/", {"stage": "won", "owner": username}, format="json"
        )
        body = response.json()
        body["error"]["message"] = body["error"]["message"].replace(username, "<name>")
        body["error"]["fields"]["owner"] = [
            text.replace(username, "<name>") for text in body["error"]["fields"]["owner"]
        ]
        answers[username] = (response.status_code, body)
    assert answers["nobody"] == answers["bob"] == answers["gone"]
    assert answers["bob"] == (
        400,
        {
            "error": {
                "status": 400,
                "code": "invalid",
                "message": "No user called “<name>” can own this lead.",
                "fields": {"owner": ["No user called “<name>” can own this lead."]},
            }
        },
    )
    assert Assignment.objects.count() == 0
    assert StageChange.objects.filter(lead=lead).count() == 1


def test_put_and_delete_are_not_allowed(world):
    client = api(world["boss"])
    url = f"/api/v1/leads/{world['a1'].pk}/"
    assert client.put(url, {"stage": "won"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405
    assert client.post("/api/v1/leads/", {}, format="json").status_code == 405
    assert Lead.objects.count() == 3


# --- Notes and stages ---------------------------------------------------------------------


def test_notes_list_and_create(world):
    client = api(world["ana"])
    url = f"/api/v1/leads/{world['a1'].pk}/notes/"
    created = client.post(url, {"body": "  Called back, interested  "}, format="json")
    assert created.status_code == 201
    assert created.json()["body"] == "Called back, interested"
    assert created.json()["author"] == "ana"
    assert [n["body"] for n in client.get(url).json()["results"]] == ["Called back, interested"]
    assert client.post(url, {"body": "   "}, format="json").status_code == 400
    assert client.post(url, {}, format="json").status_code == 400
    assert Note.objects.count() == 1


def test_stages(world):
    body = api(world["ana"]).get("/api/v1/stages/").json()
    assert [s["slug"] for s in body] == [s.slug for s in PipelineStage.objects.order_by("position")]
    assert body[0] == {
        "slug": "new",
        "name": "New",
        "position": 0,
        "event_name": "Lead",
        "sends_conversion": True,
    }
    assert api(world["ana"]).get("/api/v1/stages/won/").json()["event_name"] == "Converted"


# --- Schema and docs -----------------------------------------------------------------------


def test_schema_and_docs_are_served(world, client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/leads/{id}/" in schema.content
    assert b"/webhooks/meta/" not in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_webhook_is_never_throttled_but_the_api_is(world, settings):
    from django.core.cache import cache

    # The throttles read their rates from the settings when used (crm.api.throttling).
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "2/minute", "user": "2/minute", "failed_token": None},
    }
    cache.clear()
    client = api(world["ana"])
    assert [client.get("/api/v1/stages/").status_code for _ in range(3)] == [200, 200, 429]
    throttled = client.get("/api/v1/stages/").json()
    assert throttled["error"]["code"] == "throttled"
    webhook = APIClient()
    assert [webhook.get("/webhooks/meta/").status_code for _ in range(5)] == [403] * 5


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"created_after": "0671-02-20T02:29:36-22:09"}, 200),
        ({"created_after": "2025-01-02T00:00:00+14:00"}, 200),
        ({"created_before": "0001-01-01T00:00:00+01:00"}, 400),
        ({"created_after": "not a date"}, 400),
    ],
)
def test_odd_but_valid_offsets_work_and_impossible_dates_are_400(world, query, status):
    response = api(world["boss"]).get("/api/v1/leads/", query)
    assert response.status_code == status, response.content
