"""The one way to queue background work: django-q2 tasks, passing ids only, visible to
workers only once the surrounding transaction commits.

A task queued inside an open transaction must not run before the rows it needs are
visible, nor for rows that are then rolled back. With the ORM broker on our own database
(the default), the task row is simply written in that transaction: it becomes visible to
workers at the same commit as the rows it refers to, and is rolled back with them; no
second commit, and no window after the commit in which a crash loses the task. With any
other broker (Redis), the task is pushed from `transaction.on_commit`; if the broker is
down then, the work is not lost either: every queued job here has a row with a status (a
lead waiting for its fetch, an event waiting to be sent) that a scheduled sweep re-queues.

A task can be prepared (`prepare`) before the transaction: its package is pickled and
signed then, so that queueing it inside costs one INSERT (docs/performance.md#w5). The
package is the one django-q2's `async_task` builds (tests/db/test_tasks.py pins it).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django_q.brokers import Broker, get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signals import pre_enqueue
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from core.db.inserts import PreparedInsert

logger = logging.getLogger(__name__)


class _OrmBroker(ORM):
    """django-q2's ORM broker, writing its task row as one prepared statement (the webhook
    writes it inside its transaction, while it holds SQLite's write lock)."""

    def row(self, task: str) -> PreparedInsert:
        return PreparedInsert(
            OrmQ,
            [{"key": self.list_key or Conf.CLUSTER_NAME, "payload": task, "lock": timezone.now()}],
            key="id",
            using=Conf.ORM,
        )

    def enqueue(self, task: str) -> int:
        (pk,) = self.row(task).execute().values()
        return pk


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


@dataclass(frozen=True)
class PreparedTask:
    """A task whose package is built: what `async_task` would push, pickled and signed."""

    func: str
    args: tuple[Any, ...]
    package: str
    # The ORM broker's row, its values adapted too (None with another broker): written in
    # the transaction, by `enqueue_on_commit` or by `core.db.writes`.
    row: PreparedInsert | None

    def enqueue(self) -> None:
        """Queue it now (outside a transaction, or when losing it is recoverable)."""
        try:
            self._push()
        except Exception:  # the broker is unavailable; the sweep recovers the work
            logger.exception("Could not queue %s; the scheduled sweep will retry it", self.func)

    def enqueue_on_commit(self) -> None:
        """Queue it so that workers see it only once the current transaction commits."""
        if self.row is not None and transaction.get_connection().in_atomic_block:
            # Part of the transaction: a failure here is the database's, and must roll it back.
            self.row.execute()
        else:
            transaction.on_commit(self.enqueue)

    def _push(self) -> None:
        if Conf.SYNC:  # django-q2's synchronous mode runs the task here and now
            async_task(self.func, *self.args)
        elif self.row is not None:
            self.row.execute()
        else:
            _broker().enqueue(self.package)


def prepare(func: str, *args: object) -> PreparedTask:
    """Build the package of task `func(*args)` as django-q2's `async_task` does (with our
    own task name, which the admin's task lists show: what ran, and which run it was)."""
    task_id = uuid.uuid4().hex
    task: dict[str, Any] = {
        "id": task_id,
        "name": f"{func.rsplit('.', 1)[-1]}-{task_id[:8]}",
        "func": func,
        "args": args,
        "kwargs": {},
    }
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["started"] = timezone.now()
    pre_enqueue.send(sender="django_q", task=task)
    package = SignedPackage.dumps(task)
    broker = _broker()
    row = broker.row(package) if _in_transaction_queue() else None  # type: ignore[attr-defined]
    return PreparedTask(func, args, package, row)


def enqueue(func: str, *args: object) -> None:
    """Queue a task now (outside a transaction, or when losing it is recoverable). A broker
    that is down is logged, not raised: the sweeps recover the work."""
    try:
        task = prepare(func, *args)
    except Exception:
        logger.exception("Could not queue %s; the scheduled sweep will retry it", func)
        return
    task.enqueue()


def enqueue_on_commit(func: str, *args: object) -> None:
    """Queue a task that workers see only once the current transaction has committed."""
    prepare(func, *args).enqueue_on_commit()


def push(func: str, *args: object) -> None:
    """Queue a task now and raise if the broker is down, for a caller that must know (one
    that marked a row as queued and has to unmark it)."""
    prepare(func, *args)._push()


def chunks(ids: Iterable[Any], size: int) -> list[list[Any]]:
    """`ids` in lists of at most `size`, one task's worth each."""
    items = list(ids)
    return [items[i : i + size] for i in range(0, len(items), size)]
