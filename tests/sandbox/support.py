"""Shared data and helpers of the sandbox tests: a page with a form, and Graph calls
over real HTTP."""

from __future__ import annotations

import json
import time

import requests

from sandbox import MetaSandbox

PAGE = "111111111111111"
OTHER_PAGE = "999999999999999"
FORM = "222222222222222"
AD = "23850000000000001"
PAGE_TOKEN = "page-token-1"
SYSTEM_TOKEN = "system-user-token"
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z


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
