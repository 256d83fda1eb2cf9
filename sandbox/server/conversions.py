"""The Conversions API stand-in: ``POST /{dataset_id}/events`` validates each event as
Meta does (one invalid event fails the whole request) and keeps the accepted ones in
:attr:`MetaSandbox.events`, which is what Meta would have seen."""

from __future__ import annotations

import copy
import time
from typing import Any

from sandbox.server.errors import GraphError, bad_param
from sandbox.server.params import json_array
from sandbox.server.routing import GraphContext
from sandbox.server.wire import JSON, fbtrace_id

MAX_EVENTS_PER_REQUEST = 1000
MAX_EVENT_AGE_SECONDS = 7 * 24 * 3600
MAX_EVENT_FUTURE_SKEW_SECONDS = 60

VALID_ACTION_SOURCES = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)

# Request parameters Meta applies to every event of the request; kept on each event.
REQUEST_EXTRAS = ("test_event_code", "partner_agent", "upload_tag", "namespace_id")


def post_events(ctx: GraphContext, object_id: str) -> JSON:
    ctx.check_token()
    params = ctx.params
    events = parse_events(params.get("data"))
    now = time.time()
    for index, event in enumerate(events):
        validate_event(index, event, now)
    extras = {
        key: params[key]
        for key in REQUEST_EXTRAS
        if isinstance(params.get(key), str) and params[key]
    }
    for event in events:
        record = copy.deepcopy(event)
        record.update(extras)
        record["dataset_id"] = object_id
        record["received_at"] = now
        ctx.sandbox.events.append(record)
    return {"events_received": len(events), "messages": [], "fbtrace_id": fbtrace_id()}


def parse_events(value: Any) -> list[dict[str, JSON]]:
    if value is None or value == "":
        raise bad_param("The parameter data is required")
    events = json_array(value, "param data must be an array.")
    if not events:
        raise bad_param("param data must be an array with at least 1 element.")
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise bad_param(
            f"param data must be an array with at most {MAX_EVENTS_PER_REQUEST} elements."
        )
    return events


def _event_error(
    index: int,
    key: str,
    problem: str,
    *,
    subcode: int | None = None,
    title: str = "Invalid parameter",
    detail: str | None = None,
) -> GraphError:
    return GraphError(
        f"(#100) param data[{index}][{key}] {problem}",
        code=100,
        subcode=subcode,
        user_title=title,
        user_msg=f"{detail or problem} (event data[{index}])",
    )


def validate_event(index: int, event: Any, now: float) -> None:
    """Reject like Meta: one invalid event fails the whole request."""
    if not isinstance(event, dict):
        raise GraphError(
            f"(#100) param data[{index}] must be an object",
            code=100,
            user_title="Invalid parameter",
            user_msg=f"Each event must be a JSON object (event data[{index}])",
        )
    name = event.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise _event_error(index, "event_name", "is required and must be a string")
    raw_time = event.get("event_time")
    if isinstance(raw_time, bool) or not (
        isinstance(raw_time, int) or (isinstance(raw_time, str) and raw_time.isdigit())
    ):
        raise _event_error(index, "event_time", "must be a unix timestamp in seconds")
    event_time = int(raw_time)
    if event_time < now - MAX_EVENT_AGE_SECONDS:
        raise _event_error(
            index,
            "event_time",
            "is too far in the past",
            subcode=2804003,
            title="Event Timestamp Too Old",
            detail="The timestamp for this event is too far in the past. Events need to be "
            "sent from your server within 7 days of when they occurred.",
        )
    if event_time > now + MAX_EVENT_FUTURE_SKEW_SECONDS:
        raise _event_error(
            index,
            "event_time",
            "is in the future",
            title="Event Timestamp In Future",
            detail="The timestamp for this event is in the future.",
        )
    source = event.get("action_source")
    if source not in VALID_ACTION_SOURCES:
        raise _event_error(
            index, "action_source", f"must be one of {{{', '.join(sorted(VALID_ACTION_SOURCES))}}}"
        )
    user_data = event.get("user_data")
    if not isinstance(user_data, dict) or not any(
        value not in (None, "", []) for value in user_data.values()
    ):
        raise _event_error(
            index,
            "user_data",
            "must contain at least one customer information parameter",
            title="Missing User Data",
        )
    custom_data = event.get("custom_data")
    if custom_data is not None and not isinstance(custom_data, dict):
        raise _event_error(index, "custom_data", "must be an object")
