"""The Meta sandbox answers like the Graph API does, over real HTTP.

No Django here: run with ``pytest tests/sandbox -p no:django``.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import MetaSandbox, parse_meta_time

pytestmark = []

PAGE = "111111111111111"
OTHER_PAGE = "999999999999999"
FORM = "222222222222222"
AD = "23850000000000001"
PAGE_TOKEN = "page-token-1"
SYSTEM_TOKEN = "system-user-token"
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z


@pytest.fixture(scope="module")
def server() -> Iterator[MetaSandbox]:
    sandbox = MetaSandbox().start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def _fresh_queue_and_cache() -> Iterator[None]:
    """Shadow the autouse fixture of tests/conftest.py, which needs Django (and Redis when
    configured): these tests touch neither, so they must not depend on them."""
    yield


@pytest.fixture
def sandbox(server: MetaSandbox) -> MetaSandbox:
    server.reset()
    server.add_page(PAGE, name="Acme Kitchens", token=PAGE_TOKEN)
    server.add_page(OTHER_PAGE, name="Someone Else", token="other-page-token")
    server.add_token(SYSTEM_TOKEN)
    server.add_form(
        FORM,
        page_id=PAGE,
        name="Kitchen quote",
        created_time=T0 - 86400,
        questions=[{"key": "full_name"}, {"key": "email"}, {"key": "phone_number"}],
    )
    return server


def add_leads(sandbox: MetaSandbox, count: int, *, start: int = T0, ad_id: str = AD) -> None:
    for i in range(count):
        sandbox.add_lead(
            {
                "id": str(1_000_000_000_000_000 + i),
                "created_time": start + i * 60,
                "form_id": FORM,
                "ad_id": ad_id,
                "ad_name": "Spring ad",
                "adset_id": "23850000000000002",
                "adset_name": "Adset",
                "campaign_id": "23850000000000003",
                "campaign_name": "Campaign",
                "is_organic": False,
                "platform": "fb",
                "field_data": [
                    {"name": "full_name", "values": [f"Lead {i}"]},
                    {"name": "email", "values": [f"lead{i}@example.com"]},
                    {"name": "phone_number", "values": ["+4915112345678"]},
                ],
            }
        )


def graph(sandbox: MetaSandbox, path: str, token: str | None = PAGE_TOKEN, **params):
    if token is not None:
        params["access_token"] = token
    return requests.get(f"{sandbox.graph_url}/{path}", params=params, timeout=5)


def error_of(response: requests.Response) -> dict:
    return response.json()["error"]


def follow(first: requests.Response) -> list[list[str]]:
    """Ids per page, following `next` until it is absent (as a correct client must)."""
    pages, response = [], first
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([row["id"] for row in body["data"]])
        next_url = body.get("paging", {}).get("next")
        if not next_url:
            return pages
        response = requests.get(next_url, timeout=5)


# ---- lead node ----------------------------------------------------------------------


def test_lead_by_id_returns_only_requested_fields_plus_id(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, "1000000000000000", fields="field_data,ad_name,is_organic")

    assert response.status_code == 200
    assert response.json() == {
        "id": "1000000000000000",
        "field_data": [
            {"name": "full_name", "values": ["Lead 0"]},
            {"name": "email", "values": ["lead0@example.com"]},
            {"name": "phone_number", "values": ["+4915112345678"]},
        ],
        "ad_name": "Spring ad",
        "is_organic": False,
    }


def test_lead_without_fields_gives_only_id_and_created_time(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, "1000000000000000")

    assert response.json() == {
        "id": "1000000000000000",
        "created_time": "2025-01-01T00:00:00+0000",
    }


def test_created_time_in_meta_format_is_accepted_and_kept(sandbox: MetaSandbox) -> None:
    stored = sandbox.add_lead(
        {"id": "5", "form_id": FORM, "created_time": "2015-02-28T08:49:14+0000"}
    )

    assert stored["created_time"] == "2015-02-28T08:49:14+0000"
    assert parse_meta_time(stored["created_time"]) == 1425113354


def test_unknown_lead_is_unsupported_get_request(sandbox: MetaSandbox) -> None:
    response = graph(sandbox, "424242")

    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert "Object with ID '424242' does not exist" in error["message"]


def test_nonexisting_lead_field_is_rejected(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, "1000000000000000", fields="id,form_name")

    assert response.status_code == 400
    assert error_of(response)["code"] == 100
    assert "(form_name)" in error_of(response)["message"]


# ---- tokens -------------------------------------------------------------------------


def test_unknown_token_is_190(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, "1000000000000000", token="not-a-token")

    assert response.status_code == 400
    error = error_of(response)
    assert (error["type"], error["code"], error["error_subcode"]) == ("OAuthException", 190, 460)
    assert "WWW-Authenticate" in response.headers


def test_missing_token_is_190(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, "1000000000000000", token=None)

    assert response.status_code == 400
    assert error_of(response)["code"] == 190
    assert error_of(response)["message"].startswith("An access token is required")


def test_revoked_token_is_190_with_its_subcode(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)
    assert graph(sandbox, "1000000000000000").status_code == 200

    sandbox.revoke_token(PAGE_TOKEN)
    revoked = graph(sandbox, "1000000000000000")
    sandbox.revoke_token(SYSTEM_TOKEN, subcode=463)
    expired = graph(sandbox, "1000000000000000", token=SYSTEM_TOKEN)

    assert (error_of(revoked)["code"], error_of(revoked)["error_subcode"]) == (190, 460)
    assert (error_of(expired)["code"], error_of(expired)["error_subcode"]) == (190, 463)


def test_token_in_either_authorization_scheme(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)
    url = f"{sandbox.graph_url}/1000000000000000"

    bearer = requests.get(url, headers={"Authorization": f"Bearer {PAGE_TOKEN}"}, timeout=5)
    oauth = requests.get(url, headers={"Authorization": f"OAuth {SYSTEM_TOKEN}"}, timeout=5)
    with_proof = graph(sandbox, "1000000000000000", appsecret_proof="ab" * 32)

    assert [bearer.status_code, oauth.status_code, with_proof.status_code] == [200, 200, 200]


def test_page_token_does_not_open_another_pages_objects(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, "1000000000000000", token="other-page-token")

    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["error_subcode"]) == (100, 33)


def test_set_token_replaces_the_page_token(sandbox: MetaSandbox) -> None:
    sandbox.set_token(PAGE, "rotated")

    old = graph(sandbox, PAGE, fields="id,name")
    new = graph(sandbox, PAGE, token="rotated", fields="id,name")

    assert error_of(old)["code"] == 190
    assert new.json() == {"id": PAGE, "name": "Acme Kitchens"}


# ---- bulk read ----------------------------------------------------------------------


def test_paging_follows_next_across_pages_with_filtering(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 60)  # created T0, T0+60, ..., T0+59*60
    filtering = json.dumps(
        [{"field": "time_created", "operator": "GREATER_THAN", "value": T0 + 4 * 60}]
    )

    first = graph(sandbox, f"{FORM}/leads", fields="id,created_time", limit=25, filtering=filtering)
    pages = follow(first)

    assert [len(page) for page in pages] == [25, 25, 5]
    ids = [i for page in pages for i in page]
    assert ids == [str(1_000_000_000_000_000 + i) for i in range(59, 4, -1)]  # newest first
    next_url = first.json()["paging"]["next"]
    assert next_url.startswith(sandbox.graph_url + f"/{FORM}/leads?")
    query = parse_qs(urlsplit(next_url).query)
    assert query["access_token"] == [PAGE_TOKEN]
    assert query["fields"] == ["id,created_time"]
    assert query["limit"] == ["25"]
    assert json.loads(query["filtering"][0]) == json.loads(filtering)
    assert set(first.json()["paging"]["cursors"]) == {"before", "after"}


def test_next_carries_the_access_token_even_when_sent_in_a_header(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 3)

    response = requests.get(
        f"{sandbox.graph_url}/{FORM}/leads",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {PAGE_TOKEN}"},
        timeout=5,
    )

    next_url = response.json()["paging"]["next"]
    assert parse_qs(urlsplit(next_url).query)["access_token"] == [PAGE_TOKEN]
    assert response.json()["data"] == [
        {"id": "1000000000000002", "created_time": "2025-01-01T00:02:00+0000"}
    ]


def test_default_page_size_is_25_and_last_page_has_no_next(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 26)

    pages = follow(graph(sandbox, f"{FORM}/leads"))

    assert [len(page) for page in pages] == [25, 1]


def test_filtering_operators(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 5)

    def ids(operator: str, value: int) -> list[str]:
        filtering = json.dumps([{"field": "time_created", "operator": operator, "value": value}])
        body = graph(sandbox, f"{FORM}/leads", filtering=filtering).json()
        return [row["id"][-1] for row in body["data"]]

    assert ids("GREATER_THAN", T0 + 120) == ["4", "3"]
    assert ids("GREATER_THAN_OR_EQUAL", T0 + 120) == ["4", "3", "2"]
    assert ids("LESS_THAN", T0 + 120) == ["1", "0"]


def test_leads_arriving_while_paging_are_not_repeated(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 4)

    first = graph(sandbox, f"{FORM}/leads", limit=2)
    sandbox.add_lead({"id": "77", "form_id": FORM, "created_time": T0 + 3600})
    rest = follow(requests.get(first.json()["paging"]["next"], timeout=5))

    seen = [row["id"] for row in first.json()["data"]] + [i for page in rest for i in page]
    assert seen == ["1000000000000003", "1000000000000002", "1000000000000001", "1000000000000000"]


def test_injected_empty_page_still_has_next(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 5)
    sandbox.add_empty_page_at(r"/leads$", 1)

    first = graph(sandbox, f"{FORM}/leads", limit=2)
    pages = follow(first)

    assert [len(page) for page in pages] == [2, 0, 2, 1]
    assert len({i for page in pages for i in page}) == 5
    # The rule was used up: a second run sees no empty page.
    assert [len(page) for page in follow(graph(sandbox, f"{FORM}/leads", limit=2))] == [2, 2, 1]


def test_empty_first_page(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)
    sandbox.add_empty_page_at(page_index=0)

    first = graph(sandbox, f"{FORM}/leads")

    assert first.json()["data"] == []
    assert "next" in first.json()["paging"]
    assert follow(first) == [[], ["1000000000000000"]]


def test_no_leads_gives_empty_data_without_next(sandbox: MetaSandbox) -> None:
    response = graph(sandbox, f"{FORM}/leads")

    assert response.json() == {"data": []}


def test_ad_leads_only_include_that_ads_leads(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 2)
    sandbox.add_lead({"id": "9", "form_id": FORM, "ad_id": "5555", "created_time": T0})

    response = graph(sandbox, f"{AD}/leads", fields="id,ad_id")

    assert response.json()["data"] == [
        {"id": "1000000000000001", "ad_id": AD},
        {"id": "1000000000000000", "ad_id": AD},
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"filtering": "not json"},
        {"filtering": json.dumps([{"field": "ad_id", "operator": "EQUAL", "value": 1}])},
        {"filtering": json.dumps([{"field": "time_created", "operator": "IN", "value": 1}])},
        {"limit": "lots"},
        {"limit": "0"},
        {"after": "%%%not-a-cursor"},
    ],
)
def test_bad_listing_parameters_are_meta_errors(sandbox: MetaSandbox, params: dict) -> None:
    add_leads(sandbox, 1)

    response = graph(sandbox, f"{FORM}/leads", **params)

    assert response.status_code == 400
    assert error_of(response)["code"] == 100


# ---- pages and forms ----------------------------------------------------------------


def test_page_node_and_its_token(sandbox: MetaSandbox) -> None:
    assert graph(sandbox, PAGE, fields="id,name").json() == {"id": PAGE, "name": "Acme Kitchens"}
    assert graph(sandbox, PAGE, token=SYSTEM_TOKEN, fields="access_token").json() == {
        "id": PAGE,
        "access_token": PAGE_TOKEN,
    }


def test_leadgen_forms_with_fields_and_paging(sandbox: MetaSandbox) -> None:
    sandbox.add_form(
        "333",
        page_id=PAGE,
        name="Archived",
        status="ARCHIVED",
        locale="de_DE",
        created_time=T0,
        questions=[
            {
                "key": "custom_budget",
                "label": "Budget?",
                "type": "CUSTOM",
                "options": [{"key": "low", "value": "Low"}],
            }
        ],
    )
    fields = "id,name,status,locale,created_time,questions"

    first = graph(sandbox, f"{PAGE}/leadgen_forms", fields=fields, limit=1)
    pages = follow(first)

    assert pages == [["333"], [FORM]]
    assert first.json()["data"] == [
        {
            "id": "333",
            "name": "Archived",
            "status": "ARCHIVED",
            "locale": "de_DE",
            "created_time": "2025-01-01T00:00:00+0000",
            "questions": [
                {
                    "key": "custom_budget",
                    "label": "Budget?",
                    "type": "CUSTOM",
                    "options": [{"key": "low", "value": "Low"}],
                    "id": "333000",
                }
            ],
        }
    ]
    standard = graph(sandbox, FORM, fields="questions").json()["questions"]
    assert [(q["key"], q["type"]) for q in standard] == [
        ("full_name", "FULL_NAME"),
        ("email", "EMAIL"),
        ("phone_number", "PHONE"),
    ]


def test_subscribed_apps_records_the_subscription(sandbox: MetaSandbox) -> None:
    url = f"{sandbox.graph_url}/{PAGE}/subscribed_apps"

    response = requests.post(
        url, params={"subscribed_fields": "leadgen", "access_token": PAGE_TOKEN}, timeout=5
    )
    missing = requests.post(url, data={"access_token": PAGE_TOKEN}, timeout=5)
    listed = requests.get(url, params={"access_token": PAGE_TOKEN}, timeout=5)

    assert response.json() == {"success": True}
    assert sandbox.subscriptions == {PAGE: ["leadgen"]}
    assert error_of(missing)["code"] == 100
    assert listed.json()["data"][0]["subscribed_fields"] == ["leadgen"]


# ---- lead export --------------------------------------------------------------------


def export(sandbox: MetaSandbox, **params) -> requests.Response:
    params = {"id": FORM, "type": "form", "access_token": PAGE_TOKEN, **params}
    return requests.get(f"{sandbox.url}/ads/lead_gen/export_csv/", params=params, timeout=5)


def test_export_is_utf16_tsv_with_meta_columns_and_prefixes(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 2)
    sandbox.add_lead(
        {
            "id": "3",
            "form_id": FORM,
            "created_time": T0 + 3600,
            "is_organic": True,
            "platform": "ig",
            "field_data": {"full_name": "Jürgen Groß", "email": "j@example.com"},
        }
    )

    response = export(sandbox)

    assert response.status_code == 200
    assert response.content.startswith(b"\xff\xfe")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-16")), delimiter="\t"))
    assert rows[0] == [
        "id",
        "created_time",
        "ad_id",
        "ad_name",
        "adset_id",
        "adset_name",
        "campaign_id",
        "campaign_name",
        "form_id",
        "form_name",
        "is_organic",
        "platform",
        "full_name",
        "email",
        "phone_number",
        "lead_status",
    ]
    assert rows[1] == [
        "l:3",
        "2025-01-01T01:00:00+00:00",
        "",
        "",
        "",
        "",
        "",
        "",
        f"f:{FORM}",
        "Kitchen quote",
        "1",
        "ig",
        "Jürgen Groß",
        "j@example.com",
        "",
        "",
    ]
    assert rows[2] == [
        "l:1000000000000001",
        "2025-01-01T00:01:00+00:00",
        f"ag:{AD}",
        "Spring ad",
        "as:23850000000000002",
        "Adset",
        "c:23850000000000003",
        "Campaign",
        f"f:{FORM}",
        "Kitchen quote",
        "0",
        "fb",
        "Lead 1",
        "lead1@example.com",
        "p:+4915112345678",
        "",
    ]
    assert len(rows) == 4


def test_export_clamps_dates_to_form_creation_and_now(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 3)
    sandbox.add_lead({"id": "42", "form_id": FORM, "created_time": T0 - 2 * 86400})  # pre-form

    def ids(**params) -> list[str]:
        text = export(sandbox, **params).content.decode("utf-16")
        return [row[0] for row in csv.reader(io.StringIO(text), delimiter="\t")][1:]

    assert ids(from_date=0, to_date=4_000_000_000) == [
        "l:1000000000000002",
        "l:1000000000000001",
        "l:1000000000000000",
    ]
    assert ids(from_date=T0 + 30, to_date=T0 + 90) == ["l:1000000000000001"]


def test_export_variant_utf8_commas_and_offset(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)
    response = requests.post(
        f"{sandbox.url}/__sandbox__/export_options",
        json={
            "encoding": "utf-8",
            "delimiter": ",",
            "organic_false": "false",
            "utc_offset_minutes": 120,
        },
        timeout=5,
    )
    assert response.status_code == 200

    rows = list(csv.reader(io.StringIO(export(sandbox).content.decode("utf-8"))))

    assert rows[1][1] == "2025-01-01T02:00:00+02:00"
    assert rows[1][10] == "false"


def test_export_needs_a_token_for_the_forms_page(sandbox: MetaSandbox) -> None:
    assert error_of(export(sandbox, access_token="other-page-token"))["code"] == 100
    assert error_of(export(sandbox, access_token="bogus"))["code"] == 190


# ---- conversions API ----------------------------------------------------------------


def crm_event(**overrides) -> dict:
    event = {
        "event_name": "Qualified",
        "event_time": int(time.time()) - 60,
        "action_source": "system_generated",
        "custom_data": {"event_source": "crm", "lead_event_source": "Leadloop"},
        "user_data": {"lead_id": 1000000000000000},
    }
    event.update(overrides)
    return event


def post_events(sandbox: MetaSandbox, events: list, **extra) -> requests.Response:
    data = {"access_token": SYSTEM_TOKEN, "data": json.dumps(events), **extra}
    return requests.post(f"{sandbox.graph_url}/1234567890/events", data=data, timeout=10)


def test_valid_events_are_accepted_and_recorded(sandbox: MetaSandbox) -> None:
    response = post_events(
        sandbox, [crm_event(), crm_event(event_name="Converted")], test_event_code="TEST123"
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["events_received"], body["messages"]) == (2, [])
    assert body["fbtrace_id"]
    assert [e["event_name"] for e in sandbox.events] == ["Qualified", "Converted"]
    assert {e["dataset_id"] for e in sandbox.events} == {"1234567890"}
    assert {e["test_event_code"] for e in sandbox.events} == {"TEST123"}
    assert all(isinstance(e["received_at"], float) for e in sandbox.events)


def test_events_as_json_body(sandbox: MetaSandbox) -> None:
    response = requests.post(
        f"{sandbox.graph_url}/1234567890/events",
        json={"data": [crm_event()], "partner_agent": "leadloop"},
        headers={"Authorization": f"Bearer {SYSTEM_TOKEN}"},
        timeout=5,
    )

    assert response.json()["events_received"] == 1
    assert sandbox.events[0]["partner_agent"] == "leadloop"


def test_more_than_1000_events_are_rejected(sandbox: MetaSandbox) -> None:
    response = post_events(sandbox, [crm_event() for _ in range(1001)])

    assert response.status_code == 400
    assert error_of(response)["code"] == 100
    assert sandbox.events == []
    assert post_events(sandbox, [crm_event() for _ in range(1000)]).status_code == 200


def test_one_old_event_rejects_the_whole_batch(sandbox: MetaSandbox) -> None:
    old = crm_event(event_time=int(time.time()) - 8 * 86400)

    response = post_events(sandbox, [crm_event(), crm_event(), crm_event(), old])

    assert response.status_code == 400
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (100, 2804003)
    assert error["error_user_title"] == "Event Timestamp Too Old"
    assert "data[3]" in error["message"]
    assert "data[3]" in error["error_user_msg"]
    assert sandbox.events == []


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (crm_event(event_name=""), "event_name"),
        (crm_event(event_time="yesterday"), "event_time"),
        (crm_event(event_time=int(time.time()) + 3600), "event_time"),
        (crm_event(action_source="crm"), "action_source"),
        (crm_event(user_data={}), "user_data"),
    ],
)
def test_invalid_events_name_index_and_field(sandbox: MetaSandbox, event: dict, field: str) -> None:
    response = post_events(sandbox, [crm_event(), event])

    assert response.status_code == 400
    assert error_of(response)["code"] == 100
    assert f"data[1][{field}]" in error_of(response)["message"]


def test_events_need_a_valid_token_and_data(sandbox: MetaSandbox) -> None:
    url = f"{sandbox.graph_url}/1234567890/events"

    no_token = requests.post(url, data={"data": json.dumps([crm_event()])}, timeout=5)
    no_data = requests.post(url, data={"access_token": SYSTEM_TOKEN}, timeout=5)
    not_json = requests.post(url, data={"access_token": SYSTEM_TOKEN, "data": "[{"}, timeout=5)

    assert error_of(no_token)["code"] == 190
    assert error_of(no_data)["code"] == 100
    assert error_of(not_json)["code"] == 100


# ---- faults and usage headers -------------------------------------------------------


def test_every_graph_answer_carries_app_usage(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)

    ok = graph(sandbox, "1000000000000000")
    failed = graph(sandbox, "404")

    for response in (ok, failed):
        usage = json.loads(response.headers["X-App-Usage"])
        assert set(usage) == {"call_count", "total_cputime", "total_time"}
        assert all(0 <= value <= 100 for value in usage.values())
        assert response.headers["facebook-api-version"] == "v24.0"


def test_fault_with_code_and_headers_is_used_times_then_gone(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)
    usage = {
        PAGE: [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 20,
                "total_time": 30,
                "estimated_time_to_regain_access": 5,
            }
        ]
    }
    sandbox.add_fault(
        path=r"/leads$",
        status=400,
        code=80001,
        times=2,
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
    )

    answers = [graph(sandbox, f"{FORM}/leads") for _ in range(3)]
    node = graph(sandbox, "1000000000000000")

    assert [r.status_code for r in answers] == [400, 400, 200]
    error = error_of(answers[0])
    assert (error["code"], error["type"], error["is_transient"]) == (80001, "OAuthException", True)
    assert error["fbtrace_id"]
    assert json.loads(answers[0].headers["X-Business-Use-Case-Usage"]) == usage
    assert node.status_code == 200  # path did not match
    assert sandbox.request_count(r"/leads$") == 3


def test_faults_apply_in_order_and_forever(sandbox: MetaSandbox) -> None:
    sandbox.add_fault(path=PAGE, status=500, code=2, times=1)
    sandbox.add_fault(
        path=PAGE, status=400, code=4, subcode=None, message="slow down", times=-1, method="GET"
    )

    codes = [error_of(graph(sandbox, PAGE))["code"] for _ in range(3)]
    message = error_of(graph(sandbox, PAGE))["message"]
    sandbox.clear_faults()

    assert codes == [2, 4, 4]
    assert message == "slow down"
    assert graph(sandbox, PAGE).status_code == 200


def test_fault_method_filter(sandbox: MetaSandbox) -> None:
    sandbox.add_fault(path="subscribed_apps", method="POST", status=500, times=-1)

    get = requests.get(
        f"{sandbox.graph_url}/{PAGE}/subscribed_apps",
        params={"access_token": PAGE_TOKEN},
        timeout=5,
    )
    post = requests.post(
        f"{sandbox.graph_url}/{PAGE}/subscribed_apps",
        params={"access_token": PAGE_TOKEN, "subscribed_fields": "leadgen"},
        timeout=5,
    )

    assert (get.status_code, post.status_code) == (200, 500)
    assert error_of(post)["code"] == 1


def test_fault_delay_provokes_client_timeout(sandbox: MetaSandbox) -> None:
    sandbox.add_fault(path=PAGE, delay=1.0, status=200)  # slow but otherwise normal

    with pytest.raises(requests.Timeout):
        requests.get(
            f"{sandbox.graph_url}/{PAGE}", params={"access_token": PAGE_TOKEN}, timeout=0.2
        )
    time.sleep(1.0)  # let the delayed answer finish and be recorded
    after = graph(sandbox, PAGE)

    assert after.status_code == 200
    assert sandbox.request_count(PAGE) == 2


def test_fault_raw_body_and_pass_through_headers(sandbox: MetaSandbox) -> None:
    sandbox.add_fault(path=PAGE, status=502, body="<html>Bad Gateway</html>")
    sandbox.add_fault(path=PAGE, status=200, headers={"X-App-Usage": '{"call_count":95}'})

    proxy = graph(sandbox, PAGE)
    busy = graph(sandbox, PAGE)

    assert (proxy.status_code, proxy.text) == (502, "<html>Bad Gateway</html>")
    assert busy.status_code == 200
    assert busy.json()["id"] == PAGE
    assert json.loads(busy.headers["X-App-Usage"]) == {"call_count": 95}


def test_requests_are_recorded(sandbox: MetaSandbox) -> None:
    graph(sandbox, PAGE, fields="id")
    requests.post(
        f"{sandbox.graph_url}/1/events",
        data={"access_token": SYSTEM_TOKEN, "data": "[]"},
        timeout=5,
    )

    first, second = sandbox.requests
    assert (first.method, first.path, first.status) == ("GET", f"/v24.0/{PAGE}", 200)
    assert first.query == {"fields": "id", "access_token": PAGE_TOKEN}
    assert first.api_version == "v24.0"
    assert (second.method, second.status) == ("POST", 400)
    assert "data=%5B%5D" in second.body
    assert sandbox.request_count(method="POST") == 1


def test_malformed_requests_get_meta_errors(sandbox: MetaSandbox) -> None:
    bad_json = requests.post(
        f"{sandbox.graph_url}/1/events",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    unknown_edge = graph(sandbox, f"{PAGE}/nonsense")

    assert (bad_json.status_code, error_of(bad_json)["code"]) == (400, 100)
    assert (unknown_edge.status_code, error_of(unknown_edge)["code"]) == (400, 100)
    assert graph(sandbox, PAGE).status_code == 200  # still serving


# ---- control API --------------------------------------------------------------------


def test_control_api_drives_the_sandbox(server: MetaSandbox) -> None:
    control = f"{server.url}/__sandbox__"

    def post(path: str, payload) -> dict:
        response = requests.post(f"{control}/{path}", json=payload, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    post("reset", {})
    page = post("pages", {"page_id": "1", "name": "Remote", "token": "remote-page"})
    post("forms", {"form_id": "2", "page_id": "1", "name": "Remote form", "created_time": T0})
    leads = post(
        "leads",
        [
            {"id": "3", "form_id": "2", "created_time": T0 + 5},
            {"id": "4", "form_id": "2", "created_time": T0 + 6},
        ],
    )
    post("tokens", {"token": "remote-system"})
    post("faults", {"path": "/3$", "status": 400, "code": 17})
    post("empty_pages", {"path_regex": "/leads$", "page_index": 0})

    assert page == {"id": "1", "name": "Remote", "access_token": "remote-page"}
    assert [lead["created_time"] for lead in leads] == [
        "2025-01-01T00:00:05+0000",
        "2025-01-01T00:00:06+0000",
    ]
    assert error_of(graph(server, "3", token="remote-page"))["code"] == 17
    assert graph(server, "3", token="remote-system").json()["id"] == "3"
    assert follow(graph(server, "2/leads", token="remote-page")) == [[], ["4", "3"]]

    post("tokens", {"token": "remote-page", "revoke": True})
    assert error_of(graph(server, "3", token="remote-page"))["error_subcode"] == 460

    post("faults", [{"path": ".*", "status": 503, "times": -1}])
    assert requests.delete(f"{control}/faults", timeout=5).json() == {"success": True}
    assert graph(server, "3", token="remote-system").status_code == 200

    post_events(server, [crm_event()])  # SYSTEM_TOKEN is unknown after reset
    requests.post(
        f"{server.graph_url}/777/events",
        data={"access_token": "remote-system", "data": json.dumps([crm_event()])},
        timeout=5,
    )
    events = requests.get(f"{control}/events", timeout=5).json()
    recorded = requests.get(f"{control}/requests", params={"path": "/events$"}, timeout=5).json()
    assert [event["dataset_id"] for event in events] == ["777"]
    assert [(r["path"], r["status"]) for r in recorded] == [
        ("/v24.0/1234567890/events", 400),
        ("/v24.0/777/events", 200),
    ]
    assert not any(
        r["path"].startswith("/__sandbox__")
        for r in requests.get(f"{control}/requests", timeout=5).json()
    )

    post("reset", {})
    assert server.requests == [] and server.events == []
    assert server.state()["lead_count"] == 0


def test_control_api_rejects_bad_input(server: MetaSandbox) -> None:
    control = f"{server.url}/__sandbox__"
    server.reset()

    unknown_form = requests.post(f"{control}/leads", json={"id": "1", "form_id": "nope"}, timeout=5)
    bad_fault = requests.post(f"{control}/faults", json={"path": "(", "code": 1}, timeout=5)
    unknown_key = requests.post(f"{control}/faults", json={"colour": "red"}, timeout=5)
    not_json = requests.post(f"{control}/pages", data=b"{", timeout=5)
    no_route = requests.get(f"{control}/nothing", timeout=5)

    assert [r.status_code for r in (unknown_form, bad_fault, unknown_key, not_json)] == [400] * 4
    assert no_route.status_code == 404
    assert server.requests == []


def test_in_process_helpers_validate(sandbox: MetaSandbox) -> None:
    with pytest.raises(ValueError, match="unknown form"):
        sandbox.add_lead({"form_id": "404"})
    with pytest.raises(ValueError, match="unknown page"):
        sandbox.add_form("1", page_id="404")
    with pytest.raises(ValueError):
        sandbox.add_fault(times=0)

    generated = sandbox.add_lead({"form_id": FORM, "field_data": {"email": "x@example.com"}})
    assert generated["id"].isdigit() and len(generated["id"]) == 15
    assert generated["field_data"] == [{"name": "email", "values": ["x@example.com"]}]


# ---- process ------------------------------------------------------------------------


def test_cli_serves_until_terminated() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--token", "cli-token"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        response = requests.get(f"{url}/v24.0/me", params={"access_token": "cli-token"}, timeout=5)
        assert response.json()["name"] == "Sandbox System User"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
