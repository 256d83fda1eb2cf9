"""Queue background work for when the surrounding transaction commits, passing ids only.

A task queued inside an open transaction must not run before the rows it needs are
visible, nor for rows that are then rolled back. With the ORM broker on our own database
(the default), the task row is simply written in that transaction: it becomes visible to
workers at the same commit as the rows it refers to, and is rolled back with them; no
second commit, and no window after the commit in which a crash loses the task. With any
other broker (Redis), the task is pushed from `transaction.on_commit`; if the broker is
down then, the work is not lost either: every queued job here has a row with a status (a
lead waiting for its fetch, an event waiting to be sent) that a scheduled sweep re-queues.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from leads import sql

logger = logging.getLogger(__name__)

# Lead ids per fetch task: small enough that workers share a large delivery, large enough
# that a 1000-lead delivery does not write 1000 broker rows inside the webhook request.
FETCH_CHUNK = 25


class _OrmBroker(ORM):
    """django-q2's ORM broker, writing its task row in one prepared statement (the webhook
    writes it inside its transaction, while it holds SQLite's write lock)."""

    def enqueue(self, task: str) -> int:
        row = OrmQ(key=self.list_key or Conf.CLUSTER_NAME, payload=task, lock=timezone.now())
        return sql.insert(row, using=Conf.ORM).pk


@functools.cache
def _broker() -> Broker:
    # One broker per process: django-q2 would otherwise build one (and, for Redis, a new
    # connection pool) per task. Both kinds are safe to share between threads.
    # Only django-q2's own ORM broker is replaced; a custom broker class keeps its enqueue.
    broker = get_broker()
    return _OrmBroker(list_key=broker.list_key) if type(broker) is ORM else broker


def _in_transaction_queue() -> bool:
    """True when tasks are rows of the default database, written in its transaction."""
    return isinstance(_broker(), _OrmBroker) and Conf.ORM == DEFAULT_DB_ALIAS and not Conf.SYNC


def enqueue(func: str, *args: object) -> None:
    """Queue a task now (outside a transaction, or when losing it is recoverable)."""
    try:
        async_task(func, *args, broker=_broker())
    except Exception:  # the broker is unavailable; the sweep recovers the work
        logger.exception("Could not queue %s; the scheduled sweep will retry it", func)


def enqueue_on_commit(func: str, *args: object) -> None:
    """Queue a task that workers see only once the current transaction has committed."""
    if _in_transaction_queue() and transaction.get_connection().in_atomic_block:
        # Part of the transaction: a failure here is the database's, and must roll it back.
        async_task(func, *args, broker=_broker())
    else:
        transaction.on_commit(lambda: enqueue(func, *args))


def chunks(ids: Iterable[int], size: int = FETCH_CHUNK) -> list[list[int]]:
    items: Sequence[int] = list(ids)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def enqueue_fetches_on_commit(lead_ids: Iterable[int]) -> None:
    for chunk in chunks(lead_ids):
        enqueue_on_commit("leads.tasks.fetch_leads", chunk)
