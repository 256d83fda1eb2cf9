"""PostgreSQL's own statements: a parent row and its children in one statement, and the
planner's row estimate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from core.db.cursors import cursor_for
from core.db.inserts import PreparedInsert, PreparedInstance

_sequences: dict[tuple[str, str, str], str] = {}


def _sequence(connection: BaseDatabaseWrapper, table: str, column: str) -> str:
    """The name of the sequence behind an identity column, as an SQL literal (looked up once
    per process: `pg_get_serial_sequence` in every statement costs catalog reads)."""
    key = (connection.alias, table, column)
    if key not in _sequences:
        with connection.cursor() as cursor:
            cursor.execute("SELECT quote_literal(pg_get_serial_sequence(%s, %s))", [table, column])
            (_sequences[key],) = cursor.fetchone()
    return _sequences[key]


def insert_with_parent(
    children: PreparedInsert,
    parent: PreparedInstance,
    *,
    link: str,
    count: str,
    then: Sequence[PreparedInsert] = (),
) -> dict[Any, int]:
    """In one statement, so atomic even outside a transaction: INSERT `children` (skipping
    stored keys when they were prepared so) pointing their `link` column to `parent`; then
    `parent`, its `count` column set to how many children were inserted; then each of
    `then` (one row each) only if any child was. Sets the parent's key and count; returns
    {child key: pk} of the children inserted.

    One statement instead of BEGIN, three INSERTs and COMMIT: one round trip to the server
    (docs/performance.md#w7). The parent's key is drawn from its sequence first so that
    the children can point to it before it exists; the foreign key is checked at the end
    of the statement (Django makes PostgreSQL's constraints deferred).
    """
    connection = connections[parent.using]
    quote = connection.ops.quote_name
    parent_model = parent.model
    table, pk = parent_model._meta.db_table, parent_model._meta.pk
    children_sql, children_params = children.statement(
        expressions=((link, "(SELECT id FROM parent_key)"),)
    )
    parent_sql, parent_params = parent.statement(
        expressions=(
            (pk.attname, "(SELECT id FROM parent_key)"),
            (count, "(SELECT count(*) FROM children)"),
        )
    )
    parts = [
        f"parent_key AS (SELECT nextval({_sequence(connection, table, pk.column)}) AS id)",
        f"children AS ({children_sql})",
        f"parent AS ({parent_sql})",
    ]
    params = children_params + parent_params
    for i, row in enumerate(then):
        then_sql, then_params = row.statement(where="EXISTS (SELECT 1 FROM children)")
        parts.append(f"then_{i} AS ({then_sql})")
        params += then_params
    key_column = quote(children.model._meta.get_field(children.key).column)
    child_pk = quote(children.model._meta.pk.column)
    # ruff S608, bandit B608: names come from the models, values are parameters.
    sql = (
        f"WITH {', '.join(parts)} "  # noqa: S608  # nosec B608
        f"SELECT {quote(pk.column)}, NULL FROM parent "
        f"UNION ALL SELECT {child_pk}, {key_column} FROM children"
    )
    with cursor_for(connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    (parent_pk,) = [row_pk for row_pk, child_key in rows if child_key is None]
    parent.saved(parent_pk)
    setattr(parent.obj, count, len(rows) - 1)
    return {child_key: row_pk for row_pk, child_key in rows if child_key is not None}


def estimated_count(rows: QuerySet) -> int | None:
    """The planner's estimate of an unfiltered table's rows (`pg_class.reltuples`, kept by
    autovacuum), where counting them exactly would read the whole table; None when it has
    none, the queryset is filtered, or the database is not PostgreSQL
    (docs/performance.md#u4)."""
    connection = connections[rows.db]
    if connection.vendor != "postgresql" or rows.query.where:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [rows.model._meta.db_table],
        )
        found = cursor.fetchone()
    return int(found[0]) if found and found[0] and found[0] > 0 else None
