"""Injected faults, usage headers, recorded requests and malformed requests."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sandbox import MetaSandbox
from tests.sandbox.support import FORM, PAGE, PAGE_TOKEN, SYSTEM_TOKEN, add_leads, error_of, graph


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
