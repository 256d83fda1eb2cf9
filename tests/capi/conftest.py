"""Fixtures for the Conversions API: a configured dataset and token, Meta-shaped leads, and a
stand-in for `POST /{dataset}/events` that records every batch it is sent."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from django.utils import timezone

from leads.models import Lead
from tests.conftest import GRAPH

DATASET = "1261294122522559"
TOKEN = "capi-system-user-token"
EVENTS_URL = f"{GRAPH}/{DATASET}/events"

# A lead's answers as Meta sends them (standard question keys, one value each).
ANSWERS: dict[str, str] = {
    "full_name": "Jürgen Müller",
    "email": "Jurgen.Muller@Example.com",
    "phone_number": "+34 612 345 678",
    "city": "Madrid",
    "state": "Comunidad de Madrid",
    "zip_code": "28013",
    "country": "España",
    "date_of_birth": "16.02.1997",
    "gender": "Hombre",
}


@pytest.fixture(autouse=True)
def _no_batch_window(settings):
    """The sender sends at once here (CAPI_BATCH_WINDOW 0); tests of the window set it."""
    settings.CAPI_BATCH_WINDOW = 0.0


@pytest.fixture
def capi_settings(settings):
    """A configured dataset and token, with retries due at once (no back-off wait)."""
    settings.META_DATASET_ID = DATASET
    settings.META_ACCESS_TOKEN = TOKEN
    settings.META_TEST_EVENT_CODE = ""
    settings.CRM_NAME = "Leadloop"
    settings.CAPI_BACKOFF = 0.0
    return settings


_counter = iter(range(1, 10**9))


def make_lead(
    answers: dict[str, str] | None = None,
    *,
    leadgen_id: str | None = None,
    created_time: dt.datetime | None = None,
    **columns: Any,
) -> Lead:
    """A fetched lead (no stage yet) with Meta-shaped field_data and extracted columns."""
    answers = ANSWERS if answers is None else answers
    values = {
        "leadgen_id": leadgen_id or f"{1234567890000000 + next(_counter)}",
        "created_time": created_time or timezone.now() - dt.timedelta(minutes=5),
        "field_data": [{"name": key, "values": [value]} for key, value in answers.items()],
        "email": answers.get("email", ""),
        "phone": answers.get("phone_number", ""),
        "full_name": answers.get("full_name", ""),
        "fetch_status": Lead.FetchStatus.COMPLETE,
    }
    values.update(columns)
    return Lead.objects.create(**values)


@dataclass
class Post:
    """One POST to /{dataset}/events as Meta would have received it."""

    url: str
    params: dict[str, str]
    events: list[dict[str, Any]]
    raw_data: str
    status: int

    @property
    def event_ids(self) -> list[str]:
        return [event["event_id"] for event in self.events]

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclass
class FakeMeta:
    """Answers `POST /{dataset}/events` like Meta: the whole batch is refused when one event
    is in `bad` (code 100, naming `data[i]` unless `name_index` is off), and queued
    `failures` (HTTP status, JSON body or exception) answer the next POSTs first."""

    posts: list[Post] = field(default_factory=list)
    bad: set[str] = field(default_factory=set)
    name_index: bool = True
    failures: list[Any] = field(default_factory=list)
    # Called with each POST's events before it is answered (a test's view of "meanwhile").
    on_post: Callable[[list[dict[str, Any]]], None] | None = None

    def fail_next(self, *answers: Any) -> None:
        self.failures.extend(answers)

    def callback(self, request: Any) -> tuple[int, dict[str, str], str]:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        params = {key: values[0] for key, values in parse_qs(body).items()}
        raw = params.get("data", "[]")
        events = json.loads(raw)
        if self.on_post is not None:
            self.on_post(events)
        if self.failures:
            answer = self.failures.pop(0)
            if isinstance(answer, Exception):
                raise answer
            status, payload = answer
            self.posts.append(Post(request.url, params, events, raw, status))
            return status, {}, json.dumps(payload)
        for index, event in enumerate(events):
            if event["event_id"] in self.bad:
                where = f"data[{index}][user_data]" if self.name_index else "user_data"
                error = {
                    "message": f"(#100) param {where} must contain at least one customer "
                    "information parameter",
                    "type": "OAuthException",
                    "code": 100,
                    "error_user_title": "Missing User Data",
                    "fbtrace_id": "AbadEvent",
                }
                self.posts.append(Post(request.url, params, events, raw, 400))
                return 400, {}, json.dumps({"error": error})
        self.posts.append(Post(request.url, params, events, raw, 200))
        reply = {
            "events_received": len(events),
            "messages": [],
            "fbtrace_id": f"Atrace{len(self.posts)}",
        }
        return 200, {}, json.dumps(reply)

    @property
    def accepted_ids(self) -> list[str]:
        return [event_id for post in self.posts if post.accepted for event_id in post.event_ids]


@pytest.fixture
def fake_meta(mocked_graph: responses.RequestsMock) -> FakeMeta:
    fake = FakeMeta()
    mocked_graph.add_callback(
        responses.POST, EVENTS_URL, callback=fake.callback, content_type="application/json"
    )
    return fake


def graph_error(code: int, message: str, *, status: int = 400, **extra: Any) -> tuple[int, dict]:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Aerr"}
    error.update(extra)
    return status, {"error": error}


LeadFactory = Callable[..., Lead]


@pytest.fixture
def lead_factory() -> LeadFactory:
    return make_lead
