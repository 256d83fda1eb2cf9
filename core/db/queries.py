"""Small reads the ORM would compile at more cost than the database takes to answer them,
the liveness probe, and the on-commit helper that needs Django's callback list."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.db.models import Model

from core.db.cursors import cursor_for

M = TypeVar("M", bound=Model)


def ping(using: str = DEFAULT_DB_ALIAS) -> None:
    """One round trip to the database (`SELECT 1`); raises DatabaseError when it is down."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def drop_connection(using: str = DEFAULT_DB_ALIAS) -> None:
    """Close this thread's connection, so the next query opens a new one (after an error
    in a long-running loop that is not a request, where Django would not close it)."""
    connections[using].close()


def first_row(model: type[M]) -> M | None:
    """The model's first row in its `Meta.ordering`, read with `raw()`: asked on every
    bulk-read page, where compiling even this query with the ORM cost a multiple of what
    `raw` does (docs/performance.md#b10)."""
    meta = model._meta
    connection = connections[router.db_for_read(model)]
    quote = connection.ops.quote_name
    order = ", ".join(
        f"{quote(meta.get_field(name.lstrip('-')).column)}{' DESC' if name[0] == '-' else ''}"
        for name in meta.ordering
    )
    # bandit B608: names come from the model; there are no values.
    sql = f"SELECT * FROM {quote(meta.db_table)} ORDER BY {order} LIMIT 1"  # noqa: S608  # nosec B608
    for row in model._default_manager.raw(sql):
        return row
    return None


def set_after(model: type[Model], *, pk: object, field: str, time: dt.datetime) -> bool:
    """Whether row `pk`'s date-time `field` is set and later than `time`, with one plain
    statement: asked after every commit that wrote conversion events (each page of a bulk
    read), where the ORM's compiling cost a multiple of SQLite's answer
    (docs/performance.md#b11)."""
    meta = model._meta
    connection = connections[router.db_for_read(model)]
    quote = connection.ops.quote_name
    column = meta.get_field(field)
    sql = (
        f"SELECT 1 FROM {quote(meta.db_table)} "  # noqa: S608  # nosec B608 (names from the model)
        f"WHERE {quote(meta.pk.column)} = %s AND {quote(column.column)} > %s"
    )
    with cursor_for(connection) as cursor:
        cursor.execute(sql, [pk, connection.ops.adapt_datetimefield_value(time)])
        return cursor.fetchone() is not None


def on_commit_once(func: Callable[[], None], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """`transaction.on_commit(func)` unless `func` is already waiting for the current
    transaction's commit: however often a transaction asks, `func` runs once after it.
    Django keeps the waiting callbacks per transaction, savepoints included, so a savepoint
    rollback that drops `func` lets the next call add it again. Outside a transaction it
    runs `func` at once, as `on_commit` does."""
    connection = transaction.get_connection(using)
    if connection.in_atomic_block and any(entry[1] is func for entry in connection.run_on_commit):
        return
    transaction.on_commit(func, using=using)
