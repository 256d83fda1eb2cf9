"""SQLite's one writer at a time, its write transactions, planner statistics and parameter
limit. On PostgreSQL (or inside an outer transaction, which already holds what it needs)
each of these does nothing, or refuses.

SQLite allows one writer at a time. When several threads and processes write at once (32
concurrent webhooks), the losers wait in SQLite's busy handler, which sleeps in growing
steps of up to 100 ms and so leaves the database idle while requests queue. Taking a
blocking lock first (a thread lock within the process, then `flock` on a file beside the
database across processes) hands the database to the next writer the moment the last one
commits (docs/performance.md#w2).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

from core.db.cursors import cursor_for

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
    """Hold SQLite's write lock (see the module docstring) for the block; a no-op on other
    databases, inside a transaction, and for in-memory databases."""
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


def can_begin_immediately(using: str = "default") -> bool:
    """Whether `immediate_transaction` may run: SQLite, outside any transaction."""
    connection = connections[using]
    return connection.vendor == "sqlite" and not connection.in_atomic_block


@contextmanager
def immediate_transaction(using: str = "default") -> Iterator[Any]:
    """SQLite, outside any transaction: hold the write lock (`serialized_writes`) and run
    BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception) on one cursor, which it yields
    for the statements in between.

    For the webhook's few statements, whose time under the lock every other writer waits
    out: `atomic()` and a wrapped cursor per statement cost Python there
    (docs/performance.md#w13). The cursor is the connection's own (Django's `%s`
    placeholders, errors raised as Django's), wrapped as Django wraps its cursors only
    when something watches them. Django's `on_commit` callbacks do not wait for this
    COMMIT: `core.db.writes.write_transaction` runs its own after it. Refuses where
    `can_begin_immediately` is false.
    """
    connection = connections[using]
    if not can_begin_immediately(using):
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
    """Refresh SQLite's query-planner statistics (`ANALYZE`) of the whole tables.

    Without them SQLite guesses that `page_id IN (...)` is selective and sorts every lead
    of a salesperson's pages to list the newest 50; the sampled ANALYZE
    (`analysis_limit`) did not fix that plan (docs/performance.md#u1). Run hourly by a
    schedule and after a large bulk read. PostgreSQL's autovacuum keeps its own
    statistics; nothing to do there.
    """
    connection = connections[using]
    if connection.vendor != "sqlite":
        return
    with serialized_writes(using), connection.cursor() as cursor:
        cursor.execute("PRAGMA analysis_limit=0")  # the whole tables (0 is no limit)
        cursor.execute("ANALYZE")


@contextlib.contextmanager
def whole_page_statements(using: str = "default") -> Iterator[None]:
    """Let one INSERT or UPDATE carry a whole page on SQLite.

    Django 5.2 assumes SQLite's historic limit of 999 variables per statement and splits a
    500-lead insert (37 columns each) into 17 statements; SQLite 3.32+ allows 32,766 and
    Django 6.0 reads the real limit. Do the same while a page is stored, so a page costs a
    fixed number of queries (docs/performance.md#b6). Other databases are left as they
    are (PostgreSQL has no such split). Connections are per thread, so the change is never
    seen elsewhere.
    """
    connection = connections[using]
    if connection.vendor != "sqlite":
        yield
        return
    connection.ensure_connection()
    features = connection.features
    saved = features.__dict__.get("max_query_params")
    features.max_query_params = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    try:
        yield
    finally:
        if saved is None:
            del features.max_query_params
        else:
            features.max_query_params = saved
