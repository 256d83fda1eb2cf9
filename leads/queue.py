"""Queue background work after the surrounding transaction commits, passing ids only.

A task queued inside an open transaction could run before the rows it needs are visible,
or for rows that are then rolled back; `on_commit` rules both out. If the broker is down
when the callback runs, the work is not lost: every queued job here has a row with a status
(a lead waiting for its fetch, an event waiting to be sent) that a scheduled sweep re-queues.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.db import transaction
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

# Lead ids per fetch task: small enough that workers share a large delivery, large enough
# that a 1000-lead delivery does not write 1000 broker rows inside the webhook request.
FETCH_CHUNK = 25


def enqueue(func: str, *args: object) -> None:
    try:
        async_task(func, *args)
    except Exception:  # the broker is unavailable; the sweep recovers the work
        logger.exception("Could not queue %s; the scheduled sweep will retry it", func)


def enqueue_on_commit(func: str, *args: object) -> None:
    transaction.on_commit(lambda: enqueue(func, *args))


def chunks(ids: Iterable[int], size: int = FETCH_CHUNK) -> list[list[int]]:
    items: Sequence[int] = list(ids)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def enqueue_fetches_on_commit(lead_ids: Iterable[int]) -> None:
    for chunk in chunks(lead_ids):
        enqueue_on_commit("leads.tasks.fetch_leads", chunk)
