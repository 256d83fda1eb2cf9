"""The control API under `/__sandbox__/` and the in-process helpers."""

from __future__ import annotations

import json

import pytest
import requests

from sandbox import MetaSandbox
from tests.sandbox.support import FORM, T0, crm_event, error_of, follow, graph, post_events


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
