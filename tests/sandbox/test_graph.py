"""Graph endpoints: lead, form, page and ad nodes, tokens, the `/leads` and
`/leadgen_forms` edges with cursors and filtering, and `/subscribed_apps`."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import MetaSandbox, parse_meta_time
from tests.sandbox.support import (
    AD,
    FORM,
    PAGE,
    PAGE_TOKEN,
    SYSTEM_TOKEN,
    T0,
    add_leads,
    error_of,
    follow,
    graph,
)

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
