"""Meta's answer to a POST: how an error reads to admins, what kind of refusal it is, and
the SendAttempt that records it.

The classes of Graph error (leads.graph) say most of it: throttling and transient errors
are retried, the rest is one of
- a refusal no retry or split can fix (`pause_reason`): the token, or access to the
  dataset; the sender pauses;
- a refusal of what we sent (`refuses_content`): one invalid event makes Meta refuse the
  whole batch, which is split until the event is alone;
- anything else (no answer at all, a proxy's page, a reply that is not JSON): retried.

Every error the sender stores is worded by `describe`, which redacts it.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from capi.models import ConversionEvent, SendAttempt
from leads.graph import BadParameterError, GraphError, PermissionDeniedError, TokenError
from leads.redaction import redact

TIMESTAMP_TOO_OLD_SUBCODE = 2804003
OBJECT_MISSING_SUBCODE = 33

_REPEATED_CODE_RE = re.compile(r"^\(#(\d+)(/\d+)?\) \(#\1\) ")


def describe(exc: GraphError) -> str:
    """Meta's error as admins read it: `(#100) param data[3][event_time] is ... [trace]`.
    Meta's messages often start with their own `(#code)`, which str() would repeat. Every
    stored error of the sender (attempts, events, the pause) is made here, so no token or
    secret is stored."""
    return redact(_REPEATED_CODE_RE.sub(lambda m: f"(#{m[1]}{m[2] or ''}) ", str(exc)))


def pause_reason(exc: GraphError, dataset: str) -> str:
    """A refusal that no retry or split can fix: the token, or access to the dataset."""
    if isinstance(exc, TokenError):
        return (
            f"Meta refused the access token: {describe(exc)}. Sending is paused until "
            "META_ACCESS_TOKEN is replaced."
        )
    if isinstance(exc, PermissionDeniedError) or (
        isinstance(exc, BadParameterError) and exc.subcode == OBJECT_MISSING_SUBCODE
    ):
        return (
            f"Meta refused access to dataset {dataset}: {describe(exc)}. Sending is paused until "
            "META_DATASET_ID or META_ACCESS_TOKEN changes, or an admin resumes it."
        )
    return ""


def refuses_content(exc: GraphError) -> bool:
    """Meta answered with a Graph error about the request itself (code 100 and other 4xx),
    which is what one invalid event causes: the whole batch is refused for it."""
    if exc.code is None:
        return False
    return isinstance(exc, BadParameterError) or 400 <= (exc.status or 0) < 500


def record_attempt(
    *,
    dataset: str,
    batch: Sequence[ConversionEvent],
    started_at: dt.datetime,
    started: float,
    outcome: str,
    reply: dict[str, Any] | None = None,
    error: GraphError | None = None,
) -> SendAttempt:
    """Store one POST (begun at `started_at`, `started` on the monotonic clock) with Meta's
    reply or error."""
    attempt = SendAttempt(
        dataset_id=dataset,
        started_at=started_at,
        duration_ms=int((time.monotonic() - started) * 1000),
        event_count=len(batch),
        event_ids=[event.event_id for event in batch],
        test_event_code=settings.META_TEST_EVENT_CODE or "",
        outcome=outcome,
    )
    if reply is not None:
        # Graph answers errors with 4xx/5xx; anything the client returns is a 200.
        attempt.http_status = 200
        received = reply.get("events_received")
        # Stored as Meta's count only when it can be one (the column is 32-bit, >= 0).
        countable = isinstance(received, int) and not isinstance(received, bool)
        attempt.events_received = received if countable and 0 <= received < 2**31 else None
        messages = reply.get("messages")
        attempt.messages = messages if isinstance(messages, list) else []
        attempt.fbtrace_id = str(reply.get("fbtrace_id") or "")[:64]
    if error is not None:
        attempt.http_status = error.status
        attempt.error = describe(error)
        attempt.error_code = error.code
        attempt.error_subcode = error.subcode
        attempt.fbtrace_id = (error.fbtrace_id or "")[:64]
    attempt.save()
    return attempt
