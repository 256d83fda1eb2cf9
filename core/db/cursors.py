"""Cursors for the layer's own statements, wrapped as Django wraps its own.

Django's cursors bind every value on the client, quoting it into the SQL text, and on
SQLite convert every statement's `%s` into `?` with a regular expression each time it is
sent. For the hot paths' statements this cursor sends the values apart from the text on
PostgreSQL (psycopg's server-side binding, which also lets a repeated statement be
prepared on the server: `prepare_threshold` in config/settings.py) and remembers SQLite's
conversion. Why and how much: docs/performance.md#w8 and #b5.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.sqlite3.base import SQLiteCursorWrapper


class _SQLiteCursor(SQLiteCursorWrapper):
    """Django's SQLite cursor, remembering the text it converts for the sqlite3 module:
    the hot statements repeat, and so would their conversion."""

    _converted: ClassVar[dict[str, str]] = {}

    def convert_query(self, query: str, *, param_names: Any = None) -> str:
        if param_names is not None:
            return super().convert_query(query, param_names=param_names)
        converted = self._converted.get(query)
        if converted is None:
            if len(self._converted) >= 64:  # a few kilobytes each: keep a handful
                self._converted.clear()
            converted = self._converted[query] = super().convert_query(query)
        return converted


def cursor_for(connection: BaseDatabaseWrapper, *, bare: bool = False) -> Any:
    """A cursor for the layer's statements, wrapped as Django wraps its own (execute
    wrappers, query logging), so that tests and fault injection see every statement.

    `bare`: wrapped only when something watches it (query logging, execute wrappers); the
    caller then translates errors itself (`connection.wrap_database_errors`, as
    `core.db.sqlite.immediate_transaction` does).
    """
    if connection.vendor not in ("postgresql", "sqlite"):
        return connection.cursor()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    if connection.vendor == "postgresql":
        import psycopg

        cursor = psycopg.Cursor(connection.connection)
    else:
        cursor = connection.connection.cursor(factory=_SQLiteCursor)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    if bare and not connection.execute_wrappers:
        return cursor
    return connection.make_cursor(cursor)
