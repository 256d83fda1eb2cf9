"""The Conversions API stand-in validates events like Meta."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sandbox import MetaSandbox
from tests.sandbox.support import SYSTEM_TOKEN, crm_event, error_of, post_events


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
