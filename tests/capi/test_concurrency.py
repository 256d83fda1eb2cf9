"""Two senders at once, each in its own thread with its own database connection, against
the real database (SQLite here, PostgreSQL in CI): no event is ever sent twice."""

from __future__ import annotations

import json
import threading
from collections import Counter
from urllib.parse import parse_qs

import pytest
import responses
from django.db import connection

from capi import sending
from capi.models import ConversionEvent
from tests.capi.conftest import EVENTS_URL
from tests.capi.test_sending import pending_events

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("capi_settings"),
]


def test_two_senders_running_at_once_never_send_an_event_twice(mocked_graph, settings):
    settings.CAPI_MAX_BATCH = 50  # many batches, so the two runs interleave
    events = pending_events(400)
    accepted: list[list[str]] = []
    runs_in_first_post = threading.Barrier(2, timeout=20)
    first_post_seen: set[str] = set()
    lock = threading.Lock()

    def meta(request):
        batch = json.loads(parse_qs(request.body)["data"][0])
        me = threading.current_thread().name
        with lock:
            first = me not in first_post_seen
            first_post_seen.add(me)
        if first:
            # Both runs hold a claimed batch at the same moment: the overlap is certain,
            # not left to scheduling luck.
            runs_in_first_post.wait()
        with lock:
            accepted.append([event["event_id"] for event in batch])
        body = {"events_received": len(batch), "messages": [], "fbtrace_id": "Aconcurrent"}
        return 200, {}, json.dumps(body)

    mocked_graph.add_callback(responses.POST, EVENTS_URL, callback=meta)
    summaries: dict[str, sending.SendSummary] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            summaries[name] = sending.send_pending()
        except BaseException as exc:  # reported below, with the thread's own traceback
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(name,), name=name) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    sent_ids = Counter(event_id for batch in accepted for event_id in batch)
    assert sent_ids == Counter(event.event_id for event in events)  # each exactly once
    assert summaries["a"].sent + summaries["b"].sent == 400
    assert summaries["a"].sent > 0 and summaries["b"].sent > 0
    assert all(len(batch) <= 50 for batch in accepted)
    assert set(ConversionEvent.objects.values_list("status", flat=True)) == {"sent"}
