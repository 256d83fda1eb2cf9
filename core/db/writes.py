"""The webhook's write: one transaction on every database, with the same outcome on each.

    with write_transaction() as write:
        pks = write.ensure_keys(Page, "page_id", {...})      # only for keys not yet known
        created = write.write_delivery(parent=..., children=..., link=..., count=...,
                                       tasks=...)

The transaction begins at its first statement and commits when the block ends (rolls back
on any exception). How each database runs it is this module's business alone:

- PostgreSQL, outside any transaction: `write_delivery` is one statement, atomic on its
  own: one round trip, no BEGIN or COMMIT (docs/performance.md#w7).
- SQLite, outside any transaction: `BEGIN IMMEDIATE ... COMMIT` on one cursor under the
  write lock (`core.db.sqlite.immediate_transaction`, docs/performance.md#w13).
- Otherwise: `atomic()` (a savepoint when nested) under the write lock, with plain
  statements: inside an outer transaction (tests, an admin's reprocess), on any other
  database, and when `ensure_keys` has to run first (a page or form this process has not
  seen yet: once per row and process, so the fast paths are not bent for it).

The rule for the task rows (`tasks`) is the same everywhere: they are queued only when at
least one child was new, and only with the commit (the ORM broker's rows in the
transaction, other brokers' after it). They are prepared before the write, so they name
what the caller knew then (for the webhook: every lead of the delivery; a fetch claims
only pending, due leads, so a stored one is not fetched again on their account).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Model

from core.db import postgres, sqlite
from core.db.cursors import cursor_for
from core.db.inserts import PreparedInsert, PreparedInstance, pks_by
from core.db.tasks import PreparedTask


class WriteTransaction:
    """One write transaction, begun lazily (see the module docstring); made by
    `write_transaction`."""

    def __init__(self, using: str, stack: contextlib.ExitStack) -> None:
        self.using = using
        self._connection = connections[using]
        self._stack = stack
        self._cursor: Any = None
        self._fast = True  # the database's own fast path may still be taken
        self._after_commit: list[Callable[[], None]] = []

    def _begin(self) -> Any:
        """The transaction's cursor, beginning the transaction at the first call."""
        if self._cursor is None:
            if self._fast and sqlite.can_begin_immediately(self.using):
                self._cursor = self._stack.enter_context(sqlite.immediate_transaction(self.using))
            else:
                self._stack.enter_context(sqlite.serialized_writes(self.using))
                self._stack.enter_context(transaction.atomic(using=self.using))
                self._cursor = self._stack.enter_context(cursor_for(self._connection))
        return self._cursor

    @property
    def _one_statement(self) -> bool:
        """PostgreSQL, nothing sent yet, outside any transaction."""
        return (
            self._fast
            and self._cursor is None
            and self._connection.vendor == "postgresql"
            and not self._connection.in_atomic_block
        )

    def on_commit(self, func: Callable[[], None]) -> None:
        """Run `func` once this transaction has committed (and any outer one with it);
        never if it rolls back."""
        self._after_commit.append(func)

    def ensure_keys(
        self, model: type[Model], field: str, wanted: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, int]:
        """{value: pk} of `model`'s rows whose unique `field` has one of `wanted`'s values,
        inserting the missing ones first with the column values `wanted` gives them. Safe
        under concurrency: the unique constraint absorbs a race and the rows are read
        back. In this transaction, so a rollback takes the new rows with it."""
        if not wanted:
            return {}
        self._fast = False
        cursor = self._begin()
        found = pks_by(model, field, wanted.keys(), using=self.using, cursor=cursor)
        missing = [{field: value, **wanted[value]} for value in wanted if value not in found]
        if missing:
            insert = PreparedInsert(model, missing, key=field, skip_existing=True, using=self.using)
            found.update(insert.execute(cursor))
            raced = [row[field] for row in missing if row[field] not in found]
            if raced:
                found.update(pks_by(model, field, raced, using=self.using, cursor=cursor))
        return found

    def insert(self, rows: PreparedInsert) -> dict[Any, int]:
        """`rows.execute()` in this transaction."""
        return rows.execute(self._begin())

    def write_delivery(
        self,
        *,
        parent: PreparedInstance,
        children: PreparedInsert | None,
        link: str,
        count: str,
        tasks: Sequence[PreparedTask] = (),
    ) -> dict[Any, int]:
        """INSERT `parent`, then `children` (skipping stored keys when they were prepared
        so) with their `link` column pointing to it, and `parent`'s `count` column set to
        how many children were new; then queue `tasks` if any child was new. Sets the
        parent's key and count; returns {child key: pk} of the children inserted."""
        rows = [task.row for task in tasks if task.row is not None]
        pushed = [task for task in tasks if task.row is None]
        if children is None or not children.params:
            # One statement: atomic alone where no transaction is needed for more.
            parent.execute(None if self._one_statement else self._begin())
            return {}
        if self._one_statement:
            created = postgres.insert_with_parent(
                children, parent, link=link, count=count, then=rows
            )
        else:
            cursor = self._begin()
            # Counted as if every child were new, and corrected below when some were not:
            # the usual case is then three statements, the correction a fourth.
            parent.set(count, len(children.params))
            parent.execute(cursor)
            children.set(link, parent.obj.pk)
            created = children.execute(cursor)
            setattr(parent.obj, count, len(created))
            if len(created) != len(children.params):
                type(parent.obj)._default_manager.using(self.using).filter(pk=parent.obj.pk).update(
                    **{count: len(created)}
                )
            if created:
                for row in rows:
                    row.execute(cursor)
        if created:
            for task in pushed:
                self.on_commit(task.enqueue)
        return created


@contextlib.contextmanager
def write_transaction(using: str = DEFAULT_DB_ALIAS) -> Iterator[WriteTransaction]:
    """One write transaction (see the module docstring): commits when the block ends, rolls
    back on any exception; its `on_commit` callbacks run after the commit (inside an outer
    transaction, after that one's)."""
    with contextlib.ExitStack() as stack:
        write = WriteTransaction(using, stack)
        yield write
    for func in write._after_commit:
        transaction.on_commit(func, using=using)
