from __future__ import annotations

import hashlib
import hmac
import json
import logging
import pickle
import traceback
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.core.cache import cache
from responses import matchers

from leads import graph
from leads.graph import (
    FORM_FIELDS,
    LEAD_FIELDS,
    BadParameterError,
    GraphClient,
    GraphError,
    PermissionDeniedError,
    RetryableError,
    ThrottledError,
    TokenError,
    Usage,
    parse_usage,
)

TOKEN = "EAAGtestPAGEtoken0123456789abcdefSECRET"
BASE = "https://graph.test/v24.0"
NOW = 1_700_000_000.0


class FakeTime:
    """Clock and sleep in one: sleeping advances the clock and records the seconds."""

    def __init__(self) -> None:
        self.now = NOW
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def graph_settings(settings):
    settings.META_GRAPH_URL = "https://graph.test"
    settings.META_API_VERSION = "v24.0"
    settings.META_APP_SECRET = ""
    settings.META_HTTP_TIMEOUT = (5.0, 20.0)
    return settings


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def client(fake_time: FakeTime, *, max_wait: float = 0.0) -> GraphClient:
    return GraphClient(max_wait=max_wait, sleep=fake_time.sleep, clock=fake_time.time)


def error_body(
    code: int,
    subcode: int | None = None,
    *,
    message: str = "An error occurred",
    is_transient: bool = False,
) -> dict:
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf123",
        "is_transient": is_transient,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# --- Authentication ------------------------------------------------------------------------


def test_token_goes_in_bearer_header_and_never_in_the_url(mocked, fake_time):
    mocked.get(
        f"{BASE}/123",
        json={"id": "123", "name": "Acme"},
        match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})],
    )

    assert client(fake_time).page_info("123", token=TOKEN) == {"id": "123", "name": "Acme"}

    request = mocked.calls[0].request
    assert TOKEN not in request.url
    assert "access_token" not in request.url
    assert query(mocked.calls[0]) == {"fields": ["id,name"]}
    assert request.req_kwargs["timeout"] == (5.0, 20.0)


def test_base_url_version_and_timeout_are_read_at_call_time(mocked, fake_time, settings):
    settings.META_GRAPH_URL = "https://other.test/"
    settings.META_API_VERSION = "v99.0"
    settings.META_HTTP_TIMEOUT = (1.0, 2.0)
    mocked.get("https://other.test/v99.0/me", json={"id": "1"})

    assert client(fake_time).get("/me", token=TOKEN) == {"id": "1"}
    assert mocked.calls[0].request.req_kwargs["timeout"] == (1.0, 2.0)


def test_appsecret_proof_is_hmac_sha256_of_the_token(mocked, fake_time, settings):
    settings.META_APP_SECRET = "app-secret"
    expected = hmac.new(b"app-secret", TOKEN.encode(), hashlib.sha256).hexdigest()
    mocked.get(f"{BASE}/123", json={"id": "123"})
    mocked.post(f"{BASE}/123/subscribed_apps", json={"success": True})

    client(fake_time).get("123", token=TOKEN)
    client(fake_time).subscribe_page("123", token=TOKEN)

    assert query(mocked.calls[0]) == {"appsecret_proof": [expected]}
    # In the body of a POST, not its URL.
    assert urlsplit(mocked.calls[1].request.url).query == ""
    assert parse_qs(mocked.calls[1].request.body) == {
        "subscribed_fields": ["leadgen"],
        "appsecret_proof": [expected],
    }


def test_no_appsecret_proof_without_app_secret(mocked, fake_time):
    mocked.get(f"{BASE}/123", json={"id": "123"})

    client(fake_time).get("123", token=TOKEN)

    assert "appsecret_proof" not in mocked.calls[0].request.url


def test_empty_token_fails_without_a_call(mocked, fake_time):
    with pytest.raises(TokenError):
        client(fake_time).get("123", token="")
    assert len(mocked.calls) == 0


# --- Errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "subcode", "expected"),
    [
        (400, 190, 460, TokenError),
        (400, 190, None, TokenError),
        (400, 102, None, TokenError),
        (500, 1, None, RetryableError),
        (503, 2, None, RetryableError),
        (400, 341, None, RetryableError),
        (400, 368, None, RetryableError),
        (403, 4, None, ThrottledError),
        (403, 17, None, ThrottledError),
        (403, 32, None, ThrottledError),
        (400, 613, None, ThrottledError),
        (400, 80001, None, ThrottledError),
        (400, 80004, None, ThrottledError),
        (400, 80005, None, ThrottledError),
        (403, 10, None, PermissionDeniedError),
        (403, 200, None, PermissionDeniedError),
        (403, 299, None, PermissionDeniedError),
        (400, 100, 33, BadParameterError),
        (400, 100, None, BadParameterError),
        (400, 12345, None, GraphError),
    ],
)
def test_errors_are_classified_by_code(mocked, fake_time, status, code, subcode, expected):
    mocked.get(f"{BASE}/123", status=status, json=error_body(code, subcode))

    with pytest.raises(GraphError) as info:
        client(fake_time).get("123", token=TOKEN)

    error = info.value
    assert type(error) is expected
    assert error.retryable is issubclass(expected, RetryableError)
    assert (error.status, error.code, error.subcode) == (status, code, subcode)
    assert error.fbtrace_id == "AbCdEf123"
    assert error.error_type == "OAuthException"
    assert error.message == "An error occurred"


def test_token_errors_are_not_retryable(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=400, json=error_body(190, 463, is_transient=True))

    with pytest.raises(TokenError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert info.value.retryable is False


def test_is_transient_makes_an_unknown_code_retryable(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=400, json=error_body(9007, is_transient=True))

    with pytest.raises(RetryableError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert type(info.value) is RetryableError
    assert info.value.is_transient is True


def test_error_str_shows_code_subcode_message_and_trace(mocked, fake_time):
    mocked.get(
        f"{BASE}/123",
        status=400,
        json=error_body(100, 33, message="Unsupported get request."),
    )

    with pytest.raises(BadParameterError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert str(info.value) == "(#100/33) Unsupported get request. [AbCdEf123]"


def test_500_with_html_body_is_retryable(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=500, body="<html>Oops</html>", content_type="text/html")

    with pytest.raises(RetryableError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert type(info.value) is RetryableError
    assert (info.value.status, info.value.code) == (500, None)
    assert str(info.value) == "(HTTP 500) HTTP 500 without a Graph error body"


def test_4xx_with_html_body_is_final_with_status(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=404, body="<html>Not found</html>", content_type="text/html")

    with pytest.raises(GraphError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert type(info.value) is GraphError
    assert info.value.status == 404
    assert info.value.retryable is False


def test_429_without_body_is_throttled(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=429, body="")

    with pytest.raises(ThrottledError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert info.value.status == 429
    assert info.value.retry_after == 60.0


def test_200_with_non_json_body_is_a_graph_error(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=200, body="<html>captive portal</html>")

    with pytest.raises(GraphError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert type(info.value) is GraphError
    assert info.value.status == 200


@pytest.mark.parametrize(
    "exc",
    [
        requests.ReadTimeout("Read timed out. (read timeout=20)"),
        requests.ConnectTimeout("Connect timed out"),
        requests.ConnectionError("Connection reset by peer"),
    ],
)
def test_timeouts_and_connection_errors_are_retryable(mocked, fake_time, exc):
    mocked.get(f"{BASE}/123", body=exc)

    with pytest.raises(RetryableError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert type(info.value) is RetryableError
    assert (info.value.status, info.value.code, info.value.retry_after) == (None, None, None)
    assert info.value.__cause__ is exc


def test_graph_error_survives_pickling():
    error = ThrottledError("slow down", status=400, code=4, subcode=None, retry_after=60.0)

    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is ThrottledError
    assert (copy.message, copy.code, copy.status, copy.retry_after) == ("slow down", 4, 400, 60.0)


# --- Usage headers and the shared pause ----------------------------------------------------


def test_parse_app_usage():
    headers = {"X-App-Usage": '{"call_count": 28, "total_time": 25, "total_cputime": 95}'}

    assert parse_usage(headers) == Usage(max_percent=95.0, regain_seconds=0.0)


def test_parse_business_use_case_usage_with_regain_estimate():
    buc = {
        "112233445566778": [
            {
                "type": "lead_retrieval",
                "call_count": 100,
                "total_cputime": 20,
                "total_time": 30,
                "estimated_time_to_regain_access": 5,
            },
            {"type": "pages", "call_count": 3, "total_cputime": 1, "total_time": 1},
        ]
    }
    headers = {
        "X-Business-Use-Case-Usage": json.dumps(buc),
        "X-Page-Usage": '{"call_count": 40, "total_cputime": 2, "total_time": 3}',
    }

    usage = parse_usage(headers)

    assert usage == Usage(max_percent=100.0, regain_seconds=300.0)
    assert usage.limit_reached is True


def test_parse_ad_account_usage_at_limit_uses_reset_time():
    headers = {
        "X-Ad-Account-Usage": (
            '{"acc_id_util_pct": 100, "reset_time_duration": 240,'
            ' "ads_api_access_tier": "standard_access"}'
        )
    }

    assert parse_usage(headers) == Usage(max_percent=100.0, regain_seconds=240.0)


def test_parse_usage_without_or_with_malformed_headers():
    assert parse_usage({}) is None
    assert parse_usage({"X-App-Usage": "not json"}) is None


@pytest.mark.parametrize(
    ("usage", "pause"),
    [
        (Usage(50, 0), 0.0),
        (Usage(89.9, 0), 0.0),
        (Usage(90, 0), 5.0),
        (Usage(95, 0), 17.5),
        (Usage(100, 0), 60.0),
        (Usage(40, 120), 120.0),
    ],
)
def test_usage_pause_seconds(usage, pause):
    assert usage.pause_seconds() == pytest.approx(pause)


def test_regain_estimate_blocks_later_calls_without_http(mocked, fake_time):
    buc = {"1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 2}]}
    mocked.get(
        f"{BASE}/123",
        json={"id": "123"},
        headers={"X-Business-Use-Case-Usage": json.dumps(buc)},
    )
    first = client(fake_time, max_wait=60)

    assert first.get("123", token=TOKEN) == {"id": "123"}
    assert first.last_usage == Usage(max_percent=100.0, regain_seconds=120.0)

    # Another client (another process, sharing the cache) sees the pause too.
    with pytest.raises(ThrottledError) as info:
        client(fake_time, max_wait=60).get("123", token=TOKEN)

    assert info.value.retry_after == 120.0
    assert (info.value.status, info.value.code) == (None, None)
    assert len(mocked.calls) == 1
    assert fake_time.slept == []


def test_pause_within_max_wait_sleeps_then_calls(mocked, fake_time):
    buc = {"1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 2}]}
    mocked.get(
        f"{BASE}/123",
        json={"id": "123"},
        headers={"X-Business-Use-Case-Usage": json.dumps(buc)},
    )
    mocked.get(f"{BASE}/456", json={"id": "456"})
    graph_client = client(fake_time, max_wait=200)
    graph_client.get("123", token=TOKEN)

    assert graph_client.get("456", token=TOKEN) == {"id": "456"}

    assert fake_time.slept == [120.0]
    assert len(mocked.calls) == 2
    # The second response had no usage headers: the last report is kept.
    assert graph_client.last_usage == Usage(max_percent=100.0, regain_seconds=120.0)


def test_high_usage_slows_down(mocked, fake_time):
    mocked.get(
        f"{BASE}/123",
        json={"id": "123"},
        headers={"X-App-Usage": '{"call_count": 95, "total_time": 10, "total_cputime": 10}'},
    )
    mocked.get(f"{BASE}/456", json={"id": "456"})
    graph_client = client(fake_time, max_wait=60)
    graph_client.get("123", token=TOKEN)

    graph_client.get("456", token=TOKEN)

    assert fake_time.slept == [pytest.approx(17.5)]


def test_low_usage_does_not_pause(mocked, fake_time):
    mocked.get(
        f"{BASE}/123",
        json={"id": "123"},
        headers={"X-App-Usage": '{"call_count": 12, "total_time": 3, "total_cputime": 4}'},
    )
    mocked.get(f"{BASE}/456", json={"id": "456"})
    graph_client = client(fake_time)
    graph_client.get("123", token=TOKEN)

    graph_client.get("456", token=TOKEN)

    assert graph_client.last_usage == Usage(max_percent=12.0, regain_seconds=0.0)
    assert fake_time.slept == []
    assert cache.get("leadloop:graph-pause:app") is None


def test_expired_pause_does_not_wait(mocked, fake_time):
    cache.set("leadloop:graph-pause:app", NOW - 1)
    mocked.get(f"{BASE}/123", json={"id": "123"})

    client(fake_time).get("123", token=TOKEN)

    assert fake_time.slept == []


def test_throttling_code_without_headers_pauses_a_minute(mocked, fake_time):
    mocked.get(f"{BASE}/123", status=400, json=error_body(80001))

    with pytest.raises(ThrottledError) as first:
        client(fake_time).get("123", token=TOKEN)
    with pytest.raises(ThrottledError) as second:
        client(fake_time, max_wait=30).get("123", token=TOKEN)

    assert first.value.retry_after == 60.0
    assert first.value.code == 80001
    assert second.value.retry_after == 60.0
    assert second.value.code is None
    assert len(mocked.calls) == 1
    assert cache.get("leadloop:graph-pause:app") == NOW + 60


def test_throttling_error_takes_retry_after_from_usage(mocked, fake_time):
    buc = {
        "1": [{"type": "lead_retrieval", "call_count": 100, "estimated_time_to_regain_access": 7}]
    }
    mocked.get(
        f"{BASE}/123",
        status=400,
        json=error_body(80005),
        headers={"X-Business-Use-Case-Usage": json.dumps(buc)},
    )

    with pytest.raises(ThrottledError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert info.value.retry_after == 420.0


def test_retryable_code_with_limit_reached_is_throttled(mocked, fake_time):
    mocked.get(
        f"{BASE}/123",
        status=500,
        json=error_body(2),
        headers={"X-App-Usage": '{"call_count": 100, "total_time": 10, "total_cputime": 10}'},
    )

    with pytest.raises(ThrottledError) as info:
        client(fake_time).get("123", token=TOKEN)

    assert info.value.retry_after == 60.0


def test_usage_is_parsed_on_error_responses(mocked, fake_time):
    mocked.get(
        f"{BASE}/123",
        status=400,
        json=error_body(100, 33),
        headers={"X-App-Usage": '{"call_count": 42, "total_time": 1, "total_cputime": 1}'},
    )
    graph_client = client(fake_time)

    with pytest.raises(BadParameterError):
        graph_client.get("123", token=TOKEN)

    assert graph_client.last_usage == Usage(max_percent=42.0, regain_seconds=0.0)


# --- Calls ---------------------------------------------------------------------------------


def test_lead_fields_are_every_field_of_the_lead_node():
    assert LEAD_FIELDS == (
        "id",
        "created_time",
        "ad_id",
        "ad_name",
        "adset_id",
        "adset_name",
        "campaign_id",
        "campaign_name",
        "form_id",
        "field_data",
        "custom_disclaimer_responses",
        "is_organic",
        "platform",
        "partner_name",
        "retailer_item_id",
        "home_listing",
        "vehicle",
        "post",
        "post_submission_check_result",
    )


def test_get_lead_requests_all_lead_fields_and_keeps_big_ints(mocked, fake_time):
    mocked.get(
        f"{BASE}/120210000000000123",
        body='{"id": "120210000000000123", "ad_id": 120210000000000457}',
        content_type="application/json",
        match=[matchers.query_param_matcher({"fields": ",".join(LEAD_FIELDS)})],
    )

    lead = client(fake_time).get_lead(120210000000000123, token=TOKEN)

    assert lead == {"id": "120210000000000123", "ad_id": 120210000000000457}
    assert query(mocked.calls[0])["fields"][0].split(",") == list(LEAD_FIELDS)


def test_node_ids_cannot_change_the_path(mocked, fake_time):
    mocked.get(f"{BASE}/..%2Fme", json={"id": "x"})

    client(fake_time).get_lead("../me", token=TOKEN)

    assert urlsplit(mocked.calls[0].request.url).path == "/v24.0/..%2Fme"


def test_iter_pages_follows_next_through_an_empty_page(mocked, fake_time):
    leads_url = f"{BASE}/555/leads"
    filtering = [{"field": "time_created", "operator": "GREATER_THAN", "value": 1700000000}]
    page_1 = {
        "data": [{"id": "1"}],
        "paging": {
            "cursors": {"before": "b1", "after": "a1"},
            "next": f"{leads_url}?access_token={TOKEN}&limit=2&after=a1",
        },
    }
    page_2 = {
        "data": [],
        "paging": {
            "cursors": {"before": "b2", "after": "a2"},
            "next": f"{leads_url}?limit=2&access_token={TOKEN}&after=a2",
        },
    }
    page_3 = {"data": [{"id": "3"}], "paging": {"cursors": {"before": "b3", "after": "a3"}}}
    bearer = matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})
    mocked.get(
        leads_url,
        json=page_1,
        match=[
            matchers.query_param_matcher(
                {"limit": "2", "filtering": json.dumps(filtering, separators=(",", ":"))}
            ),
            bearer,
        ],
    )
    mocked.get(
        leads_url,
        json=page_2,
        match=[matchers.query_param_matcher({"limit": "2", "after": "a1"}), bearer],
    )
    mocked.get(
        leads_url,
        json=page_3,
        match=[matchers.query_param_matcher({"limit": "2", "after": "a2"}), bearer],
    )

    pages = list(
        client(fake_time).iter_pages(
            "555/leads", token=TOKEN, params={"limit": 2, "filtering": filtering}
        )
    )

    assert pages == [page_1, page_2, page_3]
    assert len(mocked.calls) == 3
    for call in mocked.calls:
        assert TOKEN not in call.request.url
        assert "access_token" not in call.request.url


def test_iter_pages_refuses_a_next_link_to_another_host(mocked, fake_time):
    page = {"data": [], "paging": {"next": "https://evil.test/v24.0/555/leads?after=a1"}}
    mocked.get(f"{BASE}/555/leads", json=page)
    pages = client(fake_time).iter_pages("555/leads", token=TOKEN)

    assert next(pages) == page
    with pytest.raises(GraphError):
        next(pages)
    assert len(mocked.calls) == 1


def test_leadgen_forms_reads_every_page(mocked, fake_time):
    forms_url = f"{BASE}/777/leadgen_forms"
    mocked.get(
        forms_url,
        json={"data": [{"id": "f1"}], "paging": {"next": f"{forms_url}?after=x&limit=100"}},
        match=[matchers.query_param_matcher({"fields": ",".join(FORM_FIELDS), "limit": "100"})],
    )
    mocked.get(
        forms_url,
        json={"data": [{"id": "f2"}], "paging": {}},
        match=[matchers.query_param_matcher({"after": "x", "limit": "100"})],
    )

    forms = client(fake_time).leadgen_forms("777", token=TOKEN)

    assert forms == [{"id": "f1"}, {"id": "f2"}]


def test_subscribe_page_posts_leadgen(mocked, fake_time):
    mocked.post(
        f"{BASE}/777/subscribed_apps",
        json={"success": True},
        match=[matchers.urlencoded_params_matcher({"subscribed_fields": "leadgen"})],
    )

    assert client(fake_time).subscribe_page("777", token=TOKEN) == {"success": True}


def test_post_json_encodes_lists_and_dicts(mocked, fake_time):
    events = [{"event_name": "Qualified", "user_data": {"lead_id": 120210000000000123}}]
    mocked.post(f"{BASE}/999/events", json={"events_received": 1, "fbtrace_id": "x"})

    client(fake_time).post(
        "999/events", token=TOKEN, data={"data": events, "test_event_code": "TEST1"}
    )

    body = parse_qs(mocked.calls[0].request.body)
    assert json.loads(body["data"][0]) == events
    assert body["test_event_code"] == ["TEST1"]
    assert TOKEN not in mocked.calls[0].request.body


def test_each_call_is_logged_without_query(mocked, fake_time, caplog):
    caplog.set_level(logging.DEBUG, logger="leads.graph")
    mocked.get(f"{BASE}/123", json={"id": "123"})

    client(fake_time).page_info("123", token=TOKEN)

    [record] = [r for r in caplog.records if r.name == "leads.graph"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage().startswith("Graph GET /v24.0/123 -> 200 in ")
    assert record.getMessage().endswith(" ms")


# --- The token never leaks -----------------------------------------------------------------


def test_token_never_appears_in_logs_or_exceptions(mocked, fake_time, caplog, settings):
    caplog.set_level(logging.DEBUG)
    settings.META_APP_SECRET = "app-secret"
    leads_url = f"{BASE}/555/leads"
    # Meta quotes a malformed token back in the message of error 190.
    mocked.get(
        f"{BASE}/1",
        status=400,
        json=error_body(190, message=f"Malformed access token {TOKEN}"),
    )
    mocked.get(f"{BASE}/2", status=500, body=f"<html>{TOKEN}</html>")
    mocked.get(f"{BASE}/3", body=requests.ReadTimeout("Read timed out."))
    mocked.get(f"{BASE}/4", body=requests.ConnectionError("Connection refused"))
    # Responses registered for the same URL answer in order: the next link then fails.
    mocked.get(
        leads_url,
        json={"data": [], "paging": {"next": f"{leads_url}?access_token={TOKEN}&after=a"}},
    )
    mocked.get(leads_url, status=400, json=error_body(100, 33, message=f"bad {TOKEN}"))
    mocked.get(f"{BASE}/5", status=400, json=error_body(4))
    errors: list[BaseException] = []
    graph_client = client(fake_time)

    for path in ("1", "2", "3", "4"):
        with pytest.raises(GraphError) as info:
            graph_client.get(path, token=TOKEN)
        errors.append(info.value)
    with pytest.raises(GraphError) as info:
        list(graph_client.iter_pages("555/leads", token=TOKEN))
    errors.append(info.value)
    with pytest.raises(ThrottledError) as info:
        graph_client.get("5", token=TOKEN)
    errors.append(info.value)
    with pytest.raises(ThrottledError) as info:
        graph_client.get("6", token=TOKEN)
    errors.append(info.value)

    assert str(errors[0]) == "(#190) Malformed access token [token] [AbCdEf123]"
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in "".join(traceback.format_exception(error))
    assert caplog.records
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    for call in mocked.calls:
        assert TOKEN not in call.request.url


# --- Session -------------------------------------------------------------------------------


def test_one_session_per_process_without_urllib3_retries():
    session = graph.get_session()

    assert graph.get_session() is session
    adapter = session.get_adapter("https://graph.test/")
    assert adapter.max_retries.total == 0
    assert adapter._pool_maxsize == graph.POOL_MAXSIZE


def test_session_is_replaced_after_fork():
    session = graph.get_session()

    graph._forget_session()

    assert graph.get_session() is not session
