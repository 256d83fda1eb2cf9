"""What goes to Meta in one POST: the batch size, the window that lets a batch fill, the
payload, and how a batch Meta refused for one event is split.

- A batch holds at most CAPI_MAX_BATCH events (never more than Meta's 1000), of one
  dataset, in event_time order.
- `wait_for_batch` holds the next claim back while fewer than a full batch is due and the
  oldest due event is younger than CAPI_BATCH_WINDOW (CAPI_BATCH_QUIET ends the wait once
  no new event comes): a burst of moves leaves full batches, a lone move goes about a
  window after it was made.
- Meta refuses a whole batch for one invalid event; `split` gives the parts to send
  separately, around the event Meta names when it names one, else in halves.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from capi.claims import due_events
from capi.models import ConversionEvent
from leads.graph import GraphError

META_BATCH_LIMIT = 1000  # Meta's own limit per request
# How often a sender waiting for a batch to fill looks at the outbox again.
WINDOW_POLL = 0.05
# Meta names the offending event as `data[3]` in the error message.
BAD_EVENT_INDEX_RE = re.compile(r"\bdata\[(\d+)\]")


def max_batch() -> int:
    return max(1, min(int(settings.CAPI_MAX_BATCH), META_BATCH_LIMIT))


def batch_window() -> float:
    return max(0.0, float(getattr(settings, "CAPI_BATCH_WINDOW", 0.0)))


def batch_quiet() -> float:
    """Seconds without a new event after which a part-full batch goes (0: no such rule)."""
    return max(0.0, float(getattr(settings, "CAPI_BATCH_QUIET", 0.0)))


# --- The event as Meta sees it ---------------------------------------------------------------


def meta_event(event: ConversionEvent) -> dict[str, Any]:
    """The exact shape of SPEC.md ("Pipeline and conversion events")."""
    return {
        "event_name": event.event_name,
        "event_time": int(event.event_time.timestamp()),
        "action_source": "system_generated",
        "event_id": event.event_id,
        "user_data": event.user_data,
        "custom_data": {"event_source": "crm", "lead_event_source": settings.CRM_NAME},
    }


def payload(batch: Sequence[ConversionEvent]) -> dict[str, Any]:
    """The body of one `POST /{dataset}/events`."""
    data: dict[str, Any] = {"data": [meta_event(event) for event in batch]}
    test_code = settings.META_TEST_EVENT_CODE
    if test_code:
        data["test_event_code"] = test_code
    return data


def group_by_dataset(events: Sequence[ConversionEvent]) -> dict[str, list[ConversionEvent]]:
    groups: dict[str, list[ConversionEvent]] = {}
    for event in events:
        groups.setdefault(event.dataset_id, []).append(event)
    return groups


def split(batch: list[ConversionEvent], exc: GraphError) -> list[list[ConversionEvent]]:
    """Parts of a refused batch to send separately. Around the event Meta names, if it
    names one in range (the others go at once, the named one alone); else halves. The
    hint is only a hint: if the named event is accepted alone, the other parts are still
    split further until the refused one is found."""
    match = BAD_EVENT_INDEX_RE.search(exc.message or "")
    index = int(match.group(1)) if match else -1
    if 0 <= index < len(batch):
        parts = [batch[:index], batch[index : index + 1], batch[index + 1 :]]
    else:
        middle = len(batch) // 2
        parts = [batch[:middle], batch[middle:]]
    return [part for part in parts if part]


# --- Letting a batch fill --------------------------------------------------------------------


def _sleep(seconds: float) -> None:
    """The sender's only sleep (tests replace it to run on a fake clock)."""
    time.sleep(seconds)


def wait_for_batch(
    *,
    window: float,
    due_before: dt.datetime,
    keep_going: Callable[[], bool] = lambda: True,
    quiet: float | None = None,
) -> float:
    """Hold the next claim back while a batch is still filling: fewer than a full batch is
    due, the oldest due event was written less than `window` seconds ago, and (with a
    `quiet`, CAPI_BATCH_QUIET by default) a new event came within the last `quiet`
    seconds. Returns the seconds waited, which never exceed `window`: a full batch goes at
    once, a lone event about `quiet` (else `window`) seconds after it was written, and a
    steady stream fills batches up to the window. `keep_going` is asked before each pause
    (the run's time budget and lease); False ends the wait."""
    if window <= 0:
        return 0.0
    quiet = batch_quiet() if quiet is None else quiet
    full = max_batch()
    give_up_at = timezone.now() + dt.timedelta(seconds=window)
    waited = 0.0
    seen, grew_at = -1, timezone.now()
    while True:
        due = due_events(due_before=due_before).order_by()
        count = due[:full].count()
        if count == 0 or count >= full:
            return waited
        oldest = due.order_by("created_at").values_list("created_at", flat=True).first()
        if oldest is None:
            return waited
        now = timezone.now()
        if count != seen:
            seen, grew_at = count, now
        send_at = min(oldest + dt.timedelta(seconds=window), give_up_at)
        if quiet > 0:
            send_at = min(send_at, grew_at + dt.timedelta(seconds=quiet))
        remaining = (send_at - now).total_seconds()
        if remaining <= 0 or not keep_going():
            return waited
        pause = min(WINDOW_POLL, remaining)
        _sleep(pause)
        waited += pause
