"""Serialising write transactions on SQLite.

SQLite allows one writer at a time. When several threads and processes write at once (32
concurrent webhooks), the losers wait in SQLite's busy handler, which sleeps in growing
steps of up to 100 ms and so leaves the database idle while requests queue: throughput
drops and the slowest requests wait for seconds. Taking a blocking lock first (a thread
lock within the process, then `flock` on a file beside the database across processes)
hands the database to the next writer the moment the last one commits.

On PostgreSQL, or inside an outer transaction (which already holds what it needs), this
does nothing.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

_thread_lock = threading.Lock()
_files: dict[str, int] = {}


def _lock_file(database: str) -> int:
    fd = _files.get(database)
    if fd is None:
        fd = os.open(f"{database}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)
        _files[database] = fd
    return fd


@contextmanager
def serialized_writes(using: str = "default") -> Iterator[None]:
    connection = connections[using]
    name = str(connection.settings_dict.get("NAME") or "")
    if (
        connection.vendor != "sqlite"
        or connection.in_atomic_block
        or not name
        or name == ":memory:"
        or name.startswith("file:")
    ):
        yield
        return
    with _thread_lock:
        fd = _lock_file(name)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def immediate_transaction(using: str = "default") -> Iterator[Any]:
    """SQLite, outside any transaction: hold the write lock (`serialized_writes`) and run
    BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception) on one cursor, which it yields
    for the statements in between.

    For the webhook's few statements, whose time under the lock every other writer waits
    out: Django's `atomic()` and a wrapped cursor per statement cost as much Python as a
    third of SQLite's own work there (bench/webhook, profiled). The cursor is the
    connection's own (Django's `%s` placeholders, errors raised as Django's), wrapped as
    Django wraps its cursors only when something watches them (query logging, execute
    wrappers). Django's `on_commit` callbacks do not wait for this COMMIT: work for after
    it is the caller's to run. Use `transaction.atomic()` anywhere else; this refuses.
    """
    from leads.sql import cursor_for  # leads.sql builds statements; this module is lower

    connection = connections[using]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        raise RuntimeError("immediate_transaction is for SQLite outside a transaction.")
    with serialized_writes(using), connection.wrap_database_errors:
        cursor = cursor_for(connection, bare=True)
        try:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT (a deferred foreign key), which leaves it open.
                cursor.execute("ROLLBACK")
                raise
        finally:
            cursor.close()


# Rows a bulk read must add before it refreshes the statistics itself.
STATISTICS_AFTER_ROWS = 5_000


def refresh_statistics(using: str = "default") -> None:
    """Refresh SQLite's query-planner statistics (`ANALYZE`).

    Without them SQLite guesses that `page_id IN (...)` is selective and sorts every lead
    of a salesperson's pages to list the newest 50: 230-340 ms at 100,000 leads, against
    17-24 ms once it knows (bench/ui). A full ANALYZE took 0.1 s at 100,000 leads; the
    sampled one (`analysis_limit`) was cheaper but did not fix that plan. Run hourly by a
    schedule and after a large bulk read. PostgreSQL's autovacuum keeps its own
    statistics; nothing to do there.
    """
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with serialized_writes(using), connection.cursor() as cursor:
        cursor.execute("PRAGMA analysis_limit=0")  # the whole tables (0 is no limit)
        cursor.execute("ANALYZE")
