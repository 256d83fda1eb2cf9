"""Completing leads from the Graph API: retries, parking on 190, final errors, exact data."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from leads import fetching, tasks
from leads.graph import LEAD_FIELDS
from leads.models import Form, Lead, Page, PipelineStage, StageChange
from tests.conftest import (
    GRAPH,
    change_value,
    connected_page,
    graph_lead,
    leadgen_body,
    load_fixture,
    queue_size,
    queued_tasks,
    run_queued_tasks,
    run_tasks,
)

pytestmark = pytest.mark.django_db

PAGE_TOKEN = "page-token-AAAA"
NEW_TOKEN = "page-token-BBBB"


def graph_error(code: int, message: str, *, subcode: int | None = None, status: int = 400):
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Atrace"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"json": {"error": error}, "status": status}


@pytest.fixture
def page() -> Page:
    return connected_page(token=PAGE_TOKEN, name="Acme Spain")


def pending_lead(page: Page, leadgen_id: str = "1234567890123456") -> Lead:
    return Lead.objects.create(leadgen_id=leadgen_id, page=page)


def lead_url(leadgen_id: str = "1234567890123456") -> str:
    return f"{GRAPH}/{leadgen_id}"


# --- Success ----------------------------------------------------------------------------


def test_fetch_asks_for_every_field_with_the_page_token_and_stores_everything(page, mocked_graph):
    mocked_graph.get(lead_url(), json=load_fixture("graph_lead.json"))
    lead = pending_lead(page)

    fetching.fetch_lead(lead.pk)

    request = mocked_graph.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {PAGE_TOKEN}"
    assert PAGE_TOKEN not in request.url
    fields = requests.utils.urlparse(request.url).query
    asked = set(requests.utils.unquote(fields).split("fields=")[1].split("&")[0].split(","))
    assert asked == set(LEAD_FIELDS)

    lead = Lead.objects.select_related("form", "stage").get(pk=lead.pk)
    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.fetch_attempts == 1
    assert lead.created_time == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    assert (lead.ad_id, lead.ad_name) == ("120210000000000001", "Winter promo - video")
    assert (lead.adset_id, lead.adset_name) == ("120210000000000002", "Madrid 25-45")
    assert (lead.campaign_id, lead.campaign_name) == ("120210000000000003", "Winter leads 2025")
    assert lead.is_organic is False
    assert lead.platform == "ig"
    assert lead.email == "Jurgen.Muller@Example.com"
    assert lead.phone == "+34 612 345 678"
    assert lead.full_name == "Jürgen Müller"
    assert lead.form.form_id == "2222"
    assert lead.stage == PipelineStage.first()
    assert lead.graph_data["post_submission_check_result"] == {"status": "PASSED"}
    # The two lists are stored once, in their own columns, not again in graph_data.
    assert "field_data" not in lead.graph_data
    assert "custom_disclaimer_responses" not in lead.graph_data


def test_field_data_and_disclaimers_read_back_exactly_as_sent(page, mocked_graph):
    sent = load_fixture("graph_lead.json")
    mocked_graph.get(lead_url(), body=json.dumps(sent))
    lead = pending_lead(page)
    fetching.fetch_lead(lead.pk)

    stored = Lead.objects.get(pk=lead.pk)
    assert stored.field_data == sent["field_data"]
    assert stored.custom_disclaimer_responses == sent["custom_disclaimer_responses"]
    # Order, custom field id, store-locator answer and the empty is_checked all survive.
    assert [item["name"] for item in stored.field_data] == [
        "full_name",
        "email",
        "phone_number",
        "city",
        "3456789012345678",
        "which_services_interest_you?",
        "selected_dealer",
    ]
    assert stored.field_data[6] == {"name": "selected_dealer", "values": ["99213450"]}
    assert stored.custom_disclaimer_responses[1] == {
        "checkbox_key": "partner_sharing",
        "is_checked": "",
    }


def test_new_lead_enters_the_first_stage_as_a_recorded_system_change(page, mocked_graph):
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    lead = pending_lead(page)
    fetching.fetch_lead(lead.pk)

    change = StageChange.objects.get()
    assert change.lead_id == lead.pk
    assert change.from_stage is None
    assert change.to_stage.slug == "new"
    assert change.to_stage.event_name == "Lead"
    assert change.via == StageChange.Via.SYSTEM
    assert change.changed_by is None


def test_organic_lead_and_first_last_name_extraction(page, mocked_graph):
    mocked_graph.get(
        lead_url(),
        json=graph_lead(
            "1234567890123456",
            is_organic=True,
            ad_id=None,
            field_data=[
                {"name": "first_name", "values": ["Wei"]},
                {"name": "last_name", "values": ["Zhang"]},
                {"name": "email", "values": ["wei@example.cn"]},
            ],
        ),
    )
    lead = pending_lead(page)
    fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert lead.is_organic is True
    assert lead.ad_id == ""
    assert lead.full_name == "Wei Zhang"
    assert lead.phone == ""


def test_global_token_is_used_when_the_page_has_none(mocked_graph, settings):
    settings.META_ACCESS_TOKEN = "system-user-token"
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    lead = pending_lead(Page.objects.create(page_id="1111"))
    fetching.fetch_lead(lead.pk)
    assert mocked_graph.calls[0].request.headers["Authorization"] == "Bearer system-user-token"
    assert Lead.objects.get(pk=lead.pk).fetch_status == Lead.FetchStatus.COMPLETE


# --- Retries ----------------------------------------------------------------------------


def test_500_500_then_200_gives_one_complete_lead(page, mocked_graph):
    mocked_graph.get(lead_url(), json={"error": {"message": "oops", "code": 1}}, status=500)
    mocked_graph.get(lead_url(), body="<html>Bad gateway</html>", status=502)
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    lead = pending_lead(page)

    fetching.fetch_lead(lead.pk)

    assert len(mocked_graph.calls) == 3
    lead.refresh_from_db()
    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.fetch_error == ""
    assert Lead.objects.count() == 1
    assert StageChange.objects.count() == 1


def test_timeout_is_retried(page, mocked_graph):
    mocked_graph.get(lead_url(), body=requests.ReadTimeout("read timed out"))
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    lead = pending_lead(page)
    fetching.fetch_lead(lead.pk)
    assert len(mocked_graph.calls) == 2
    assert Lead.objects.get(pk=lead.pk).fetch_status == Lead.FetchStatus.COMPLETE


def test_persistent_failure_is_deferred_then_swept_and_completed(page, mocked_graph, settings):
    settings.LEAD_FETCH_INLINE_RETRIES = 1
    for _ in range(2):
        mocked_graph.get(lead_url(), body=requests.ConnectionError("refused"))
    lead = pending_lead(page)

    fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert lead.fetch_status == Lead.FetchStatus.PENDING
    assert lead.fetch_after > timezone.now()
    assert "Attempt 1" in lead.fetch_error
    # Not due yet: neither a claim nor the sweep touches it.
    assert fetching.fetch_lead(lead.pk) is None
    assert tasks.sweep_lead_fetches()["queued"] == 0

    Lead.objects.filter(pk=lead.pk).update(fetch_after=timezone.now() - dt.timedelta(seconds=1))
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    assert tasks.sweep_lead_fetches()["queued"] == 1
    run_queued_tasks()
    lead.refresh_from_db()
    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.fetch_attempts == 2
    assert len(mocked_graph.calls) == 3


def test_after_the_last_attempt_the_lead_is_visibly_failed_not_dropped(
    page, mocked_graph, settings
):
    settings.LEAD_FETCH_INLINE_RETRIES = 0
    settings.LEAD_FETCH_MAX_ATTEMPTS = 3
    mocked_graph.get(lead_url(), json={"error": {"message": "Service unavailable"}}, status=503)
    lead = pending_lead(page)
    for _ in range(3):
        Lead.objects.filter(pk=lead.pk).update(fetch_after=None)
        fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert lead.fetch_status == Lead.FetchStatus.FAILED
    assert lead.fetch_attempts == 3
    assert "gave up after 3 attempts" in lead.fetch_error
    assert len(mocked_graph.calls) == 3
    assert Lead.objects.filter(pk=lead.pk).exists()


def test_throttling_defers_for_as_long_as_meta_says(page, mocked_graph):
    usage = {
        "1111": [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 10,
                "total_time": 10,
                "estimated_time_to_regain_access": 15,
            }
        ]
    }
    mocked_graph.get(
        lead_url(),
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
        **graph_error(80005, "There have been too many leadgen api calls"),
    )
    lead = pending_lead(page)
    before = timezone.now()
    fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert len(mocked_graph.calls) == 1  # no immediate retry when throttled
    assert lead.fetch_status == Lead.FetchStatus.PENDING
    assert lead.fetch_after >= before + dt.timedelta(minutes=15)

    # Another lead of the same app waits too, without calling Meta.
    other = pending_lead(page, "999")
    fetching.fetch_lead(other.pk)
    assert len(mocked_graph.calls) == 1
    other.refresh_from_db()
    assert other.fetch_status == Lead.FetchStatus.PENDING
    assert other.fetch_after >= before + dt.timedelta(minutes=14)


# --- Final errors -----------------------------------------------------------------------


def test_code_100_is_final_and_visible(page, mocked_graph):
    mocked_graph.get(
        lead_url(),
        **graph_error(100, "Unsupported get request. Object with ID does not exist", subcode=33),
    )
    lead = pending_lead(page)
    fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert len(mocked_graph.calls) == 1
    assert lead.fetch_status == Lead.FetchStatus.FAILED
    assert "(#100/33)" in lead.fetch_error
    assert "does not exist" in lead.fetch_error
    assert lead.stage is None
    assert fetching.due_lead_ids() == []


def test_permission_error_is_final(page, mocked_graph):
    mocked_graph.get(lead_url(), **graph_error(200, "Requires leads_retrieval permission"))
    lead = pending_lead(page)
    fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert lead.fetch_status == Lead.FetchStatus.FAILED
    assert "leads_retrieval" in lead.fetch_error


# --- Token rejected: park, then resume with a new token -----------------------------------


def test_190_parks_the_page_and_a_new_token_completes_the_leads(
    page, mocked_graph, django_capture_on_commit_callbacks
):
    mocked_graph.get(lead_url(), **graph_error(190, "Error validating access token", subcode=460))
    lead = pending_lead(page)
    waiting = pending_lead(page, "2000")
    other_page_lead = pending_lead(Page.objects.create(page_id="3333"), "3000")

    fetching.fetch_lead(lead.pk)

    page.refresh_from_db()
    assert page.token_status == Page.TokenStatus.INVALID
    assert "Error validating access token" in page.token_error
    statuses = dict(Lead.objects.values_list("leadgen_id", "fetch_status"))
    assert statuses == {
        "1234567890123456": Lead.FetchStatus.PARKED,
        "2000": Lead.FetchStatus.PARKED,
        "3000": Lead.FetchStatus.PENDING,
    }
    # Parked leads are not retried by the sweep while the token is unchanged.
    assert fetching.resume_pages_with_new_tokens() == 0
    assert fetching.fetch_lead(waiting.pk) is None
    assert len(mocked_graph.calls) == 1

    mocked_graph.get(f"{GRAPH}/1111", json={"id": "1111", "name": "Acme Spain"})
    mocked_graph.get(f"{GRAPH}/1111/leadgen_forms", json={"data": []})
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    mocked_graph.get(lead_url("2000"), json=graph_lead("2000"))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("connect_page", "1111", "--token", NEW_TOKEN, stdout=io.StringIO())

    tasks_queued = queued_tasks()
    assert [t["func"] for t in tasks_queued] == ["leads.tasks.fetch_leads"]
    run_tasks(tasks_queued)
    statuses = dict(Lead.objects.values_list("leadgen_id", "fetch_status"))
    assert statuses["1234567890123456"] == Lead.FetchStatus.COMPLETE
    assert statuses["2000"] == Lead.FetchStatus.COMPLETE
    assert statuses["3000"] == Lead.FetchStatus.PENDING
    assert mocked_graph.calls[-1].request.headers["Authorization"] == f"Bearer {NEW_TOKEN}"
    page.refresh_from_db()
    assert page.token_status == Page.TokenStatus.VALID
    assert other_page_lead.pk  # untouched by the other page's token


def test_rotated_global_token_resumes_parked_leads_without_a_human(
    mocked_graph, settings, django_capture_on_commit_callbacks
):
    settings.META_ACCESS_TOKEN = "old-system-token"
    mocked_graph.get(lead_url(), **graph_error(190, "Session has expired", subcode=463))
    lead = pending_lead(Page.objects.create(page_id="1111"))
    fetching.fetch_lead(lead.pk)
    assert Lead.objects.get(pk=lead.pk).fetch_status == Lead.FetchStatus.PARKED

    settings.META_ACCESS_TOKEN = "new-system-token"
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.sweep_lead_fetches()["resumed"] == 1
    run_queued_tasks()
    assert Lead.objects.get(pk=lead.pk).fetch_status == Lead.FetchStatus.COMPLETE


def test_no_token_at_all_parks_until_one_is_configured(
    mocked_graph, settings, django_capture_on_commit_callbacks
):
    lead = pending_lead(Page.objects.create(page_id="1111"))
    fetching.fetch_lead(lead.pk)
    lead.refresh_from_db()
    assert lead.fetch_status == Lead.FetchStatus.PARKED
    assert "No access token" in lead.fetch_error
    assert len(mocked_graph.calls) == 0

    settings.META_ACCESS_TOKEN = "system-user-token"
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep_lead_fetches()
    run_queued_tasks()
    assert Lead.objects.get(pk=lead.pk).fetch_status == Lead.FetchStatus.COMPLETE


# --- Claims -----------------------------------------------------------------------------


def test_a_lead_is_claimed_once_so_duplicate_tasks_fetch_it_once(page, mocked_graph):
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    lead = pending_lead(page)
    tasks.fetch_leads([lead.pk])
    tasks.fetch_leads([lead.pk])
    assert len(mocked_graph.calls) == 1
    assert StageChange.objects.count() == 1


def test_a_stale_claim_of_a_killed_worker_is_released_and_fetched_again(page, mocked_graph):
    mocked_graph.get(lead_url(), json=graph_lead("1234567890123456"))
    lead = pending_lead(page)
    assert fetching.claim(lead.pk) is not None  # the worker holding it dies here
    assert fetching.release_stale_claims() == 0  # too fresh to be stale
    Lead.objects.filter(pk=lead.pk).update(
        fetch_claimed_at=timezone.now() - fetching.STALE_CLAIM - dt.timedelta(seconds=1)
    )
    assert tasks.sweep_lead_fetches() == {"released": 1, "resumed": 0, "queued": 1}
    run_queued_tasks()
    assert Lead.objects.get(pk=lead.pk).fetch_status == Lead.FetchStatus.COMPLETE


def test_late_result_of_a_released_claim_is_dropped(page):
    lead = pending_lead(page)
    claimed = fetching.claim(lead.pk)
    Lead.objects.filter(pk=lead.pk).update(fetch_status=Lead.FetchStatus.PENDING)
    again = fetching.claim(lead.pk)
    assert fetching.complete(again, graph_lead("1234567890123456")) is True
    assert fetching.complete(claimed, graph_lead("1234567890123456", ad_name="stale")) is False
    assert Lead.objects.get(pk=lead.pk).ad_name == "Winter promo - video"
    assert StageChange.objects.count() == 1


def test_webhook_then_worker_completes_the_lead(post_webhook, page, mocked_graph):
    mocked_graph.get(lead_url("777"), json=graph_lead("777", form_id="4444"))
    post_webhook(leadgen_body([[change_value(777, page_id=1111, form_id=2222)]]))
    assert queue_size() == 1
    run_queued_tasks()
    lead = Lead.objects.select_related("form").get(leadgen_id="777")
    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    # Meta's answer is the truth about the form.
    assert lead.form.form_id == "4444"
    assert Form.objects.filter(form_id="4444", page=page).exists()
