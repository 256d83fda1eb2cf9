"""Outbound HTTP to Meta never follows a redirect (hardening issue 16, item 4).

A 307 from the Conversions API used to re-post the hashed batch and its `appsecret_proof`
to the host in `Location`, and the events were marked sent; a 302 on a lead fetch stored
another host's body as a complete lead. Here every 3xx is answered by a stand-in that also
serves the redirect's target, so following it would be seen (a call to the other host) and
would succeed: the tests show that nothing reaches that host and nothing is taken for
Meta's answer."""

from __future__ import annotations

import datetime as dt

import pytest
import requests
import responses

from capi import sending
from capi.models import ConversionEvent, SendAttempt
from leads import csv_import, fetching, graph
from leads.graph import GraphClient, GraphError
from leads.models import Form, Lead
from leads.pipeline import enter_pipeline
from tests.capi.conftest import DATASET, EVENTS_URL, make_lead
from tests.conftest import GRAPH, connected_page, graph_lead

pytestmark = pytest.mark.django_db

ELSEWHERE = "https://collector.elsewhere.test/in"
PAGE_TOKEN = "page-token-redirects"
LEADGEN_ID = "1234567890123456"
# Meta's own answer shapes, which a redirecting host would hand back to be believed.
ACCEPTED = {"events_received": 1, "messages": [], "fbtrace_id": "Aelsewhere"}


def calls_to(mock: responses.RequestsMock, prefix: str) -> list[str]:
    return [call.request.url for call in mock.calls if call.request.url.startswith(prefix)]


def serve_elsewhere(mock: responses.RequestsMock, body: dict) -> None:
    # Both methods: requests turns a redirected POST into a GET for 301/302/303.
    mock.get(ELSEWHERE, json=body)
    mock.post(ELSEWHERE, json=body)


# --- Conversions API ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_conversions_api_is_not_followed_and_nothing_is_sent(
    capi_settings, mocked_graph, status
):
    lead = make_lead()
    enter_pipeline(lead)
    (event,) = ConversionEvent.objects.all()
    mocked_graph.post(EVENTS_URL, status=status, headers={"Location": ELSEWHERE}, json=ACCEPTED)
    serve_elsewhere(mocked_graph, ACCEPTED)

    summary = sending.send_pending()

    assert calls_to(mocked_graph, ELSEWHERE) == []
    assert len(calls_to(mocked_graph, EVENTS_URL)) == 1
    event.refresh_from_db()
    # Not Meta's fault nor the event's: retried later like an outage, never marked sent.
    assert (event.status, event.failures, event.sent_at) == (
        ConversionEvent.Status.PENDING,
        1,
        None,
    )
    expected = (
        f"(HTTP {status}) Graph POST /v24.0/{DATASET}/events answered HTTP {status} redirect "
        "to collector.elsewhere.test, not followed (Meta's API never redirects)"
    )
    assert event.last_error == expected
    attempt = SendAttempt.objects.get()
    assert (attempt.outcome, attempt.http_status, attempt.error) == (
        SendAttempt.Outcome.RETRY,
        status,
        expected,
    )
    assert (summary.sent, summary.retrying) == (0, 1)


def test_a_3xx_without_location_carrying_metas_reply_is_not_taken_as_accepted(
    capi_settings, mocked_graph
):
    lead = make_lead()
    enter_pipeline(lead)
    mocked_graph.post(EVENTS_URL, status=300, json=ACCEPTED)

    sending.send_pending()

    event = ConversionEvent.objects.get()
    assert (event.status, event.sent_at) == (ConversionEvent.Status.PENDING, None)
    assert event.last_error == (
        f"(HTTP 300) Graph POST /v24.0/{DATASET}/events answered HTTP 300 redirect, "
        "not followed (Meta's API never redirects)"
    )


# --- Lead fetch -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "named"),
    [
        (302, {"Location": ELSEWHERE}, " to collector.elsewhere.test"),
        (307, {"Location": ELSEWHERE}, " to collector.elsewhere.test"),
        (300, {}, ""),
    ],
)
def test_a_redirected_lead_fetch_is_a_final_visible_error_not_a_lead(
    mocked_graph, status, headers, named
):
    page = connected_page(token=PAGE_TOKEN)
    lead = Lead.objects.create(leadgen_id=LEADGEN_ID, page=page)
    mocked_graph.get(
        f"{GRAPH}/{LEADGEN_ID}", status=status, headers=headers, json=graph_lead(LEADGEN_ID)
    )
    serve_elsewhere(mocked_graph, graph_lead(LEADGEN_ID))

    fetching.fetch_lead(lead.pk)

    assert calls_to(mocked_graph, ELSEWHERE) == []
    # Final at once: the same request meets the same redirect; reconciliation reads the
    # lead again once the route to Meta is fixed.
    assert len(calls_to(mocked_graph, f"{GRAPH}/{LEADGEN_ID}")) == 1
    lead.refresh_from_db()
    assert (lead.fetch_status, lead.field_data, lead.stage_id) == (
        Lead.FetchStatus.FAILED,
        [],
        None,
    )
    assert lead.fetch_error == (
        f"(HTTP {status}) Graph GET /v24.0/{LEADGEN_ID} answered HTTP {status} "
        f"redirect{named}, not followed (Meta's API never redirects)"
    )


def test_a_redirected_next_page_of_a_bulk_read_is_not_followed(mocked_graph):
    first = f"{GRAPH}/555/leads"
    mocked_graph.get(first, json={"data": [], "paging": {"next": f"{first}?after=a"}})
    mocked_graph.get(first, status=302, headers={"Location": ELSEWHERE})
    serve_elsewhere(mocked_graph, {"data": [graph_lead(LEADGEN_ID)]})

    with pytest.raises(GraphError) as info:
        list(GraphClient().iter_pages("555/leads", token=PAGE_TOKEN))

    assert type(info.value).__name__ == "RedirectError"
    assert info.value.retryable is False
    assert info.value.status == 302
    assert calls_to(mocked_graph, ELSEWHERE) == []


# --- Lead export download ----------------------------------------------------------------------


def test_a_redirected_export_download_is_refused_unread(settings, mocked_graph):
    page = connected_page(token=PAGE_TOKEN, page_id="111111111111111")
    form = Form.objects.create(
        form_id="222222222222222",
        page=page,
        meta_created_time=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    export_url = f"{settings.META_WWW_URL}/ads/lead_gen/export_csv/"
    mocked_graph.get(export_url, status=302, headers={"Location": ELSEWHERE}, body="")
    mocked_graph.get(ELSEWHERE, body="id,created_time\n1,2025-01-02\n")

    with pytest.raises(csv_import.DownloadError) as info:
        csv_import.download_export(form.form_id, now=1_740_000_000)

    assert str(info.value) == (
        "Meta answered the export download with HTTP 302 redirect to "
        "collector.elsewhere.test, not followed (Meta's API never redirects)."
    )
    assert calls_to(mocked_graph, ELSEWHERE) == []
    assert Lead.objects.count() == 0


# --- The one session --------------------------------------------------------------------------


def test_the_shared_session_never_follows_whichever_way_it_is_called(mocked_graph):
    url = f"{GRAPH}/anything"
    mocked_graph.get(url, status=302, headers={"Location": ELSEWHERE})
    mocked_graph.post(url, status=307, headers={"Location": ELSEWHERE})
    serve_elsewhere(mocked_graph, {"id": "elsewhere"})
    session = graph.get_session()

    assert session.get(url).status_code == 302
    assert session.get(url, allow_redirects=True).status_code == 302
    assert session.request("POST", url, data={"a": "b"}, allow_redirects=True).status_code == 307
    prepared = session.prepare_request(requests.Request("GET", url))
    assert session.send(prepared, allow_redirects=True).status_code == 302
    assert session.max_redirects == 0
    assert calls_to(mocked_graph, ELSEWHERE) == []


def test_a_plain_session_handed_to_the_client_does_not_follow_either(mocked_graph):
    mocked_graph.get(f"{GRAPH}/123", status=301, headers={"Location": ELSEWHERE})
    serve_elsewhere(mocked_graph, {"id": "123", "name": "Elsewhere"})

    with pytest.raises(GraphError) as info:
        GraphClient(session=requests.Session()).page_info("123", token=PAGE_TOKEN)

    assert type(info.value).__name__ == "RedirectError"
    assert calls_to(mocked_graph, ELSEWHERE) == []


def test_redirect_refusal_names_only_the_host_of_the_location():
    response = requests.Response()
    response.status_code = 302
    response.headers["Location"] = f"https://user:pw@evil.test:8443/x?access_token={PAGE_TOKEN}"
    assert graph.redirect_refusal(response) == (
        "HTTP 302 redirect to evil.test, not followed (Meta's API never redirects)"
    )
    response.status_code = 200
    assert graph.redirect_refusal(response) == ""
