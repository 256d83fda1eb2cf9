"""INSERT and SELECT statements built from a model's fields, for the two hot paths (the
webhook and the bulk read) and for what they share with others (stage changes, conversion
events, the ORM broker's task row).

Django compiles every query anew and prepares every value through its field; for these
statements that compiling cost more than the database's work, and a webhook runs its
statements while it holds SQLite's write lock (docs/performance.md#w1). These helpers
send the SQL the ORM would send: each column's default, `auto_now` time and encoding are
Django's own, looked up once per model instead of once per value (UTC times on SQLite and
JSON take shortcuts to the same values: #b3, #b4).

Leadloop runs on SQLite (3.35 or later) and PostgreSQL; both have
`INSERT ... ON CONFLICT ... DO NOTHING RETURNING`, which tells exactly which rows were new
(`bulk_create(ignore_conflicts=True)` cannot). Model signals are not sent, as with
`bulk_create`: these are for models with no receivers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone

from core.db import fastjson
from core.db.cursors import cursor_for


def _same_value(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Column:
    field: Field
    adapt: Callable[[Any], Any]  # Python value -> database parameter
    now: bool  # auto_now / auto_now_add: the time of the INSERT unless given
    # The default, adapted once; None when it must be computed per INSERT (a callable
    # other than list or dict could return a different value each time).
    fixed_default: tuple[Any] | None


def _datetime_adapter(connection: BaseDatabaseWrapper) -> Callable[[Any], Any]:
    """Django's date-time adapter, with a shortcut for SQLite storing UTC (Django's default
    with USE_TZ): a UTC time is its text without the offset, which is what Django's
    adapter computes through `settings`, `is_aware` and `make_naive` per value, hundreds
    per bulk-read page (docs/performance.md#b3)."""
    django_adapt = connection.ops.adapt_datetimefield_value
    if connection.vendor != "sqlite" or connection.timezone is not dt.UTC:
        return django_adapt

    def adapt(value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is dt.UTC:
            return value.isoformat(" ")[:-6]  # less its "+00:00": as str() of it made naive
        return django_adapt(value)

    return adapt


def _json_adapter(connection: BaseDatabaseWrapper, field: models.JSONField) -> Callable[[Any], Any]:
    """Django's JSON adapter, with a faster encoder (`core.db.fastjson`) for a field without
    an encoder of its own: text for SQLite, psycopg's Jsonb wrapper for PostgreSQL, as
    Django's adapters give."""
    ops = connection.ops
    if field.encoder is not None or connection.vendor not in ("sqlite", "postgresql"):

        def django_adapt(value: Any, encoder: Any = field.encoder) -> Any:
            return None if value is None else ops.adapt_json_value(value, encoder)

        return django_adapt
    if connection.vendor == "sqlite":
        return lambda value: None if value is None else fastjson.dumps(value)
    from psycopg.types.json import Jsonb

    return lambda value: None if value is None else Jsonb(value, dumps=fastjson.dumps)


@dataclass(frozen=True)
class _Plan:
    """How a model's rows become INSERT parameters, worked out once per model."""

    columns: tuple[_Column, ...]  # every column an INSERT writes: all but the auto key
    index: dict[str, int]  # attname -> position in `columns`
    # One row of parameters with every fixed default in place; the other slots are
    # computed per INSERT (`computed`) or come from the row.
    template: tuple[Any, ...]
    computed: tuple[int, ...]


_plans: dict[tuple[type[Model], str], _Plan] = {}


def _plan(model: type[Model], connection: BaseDatabaseWrapper) -> _Plan:
    """Every column with its adapter: what `field.get_db_prep_save` does, taken directly
    for the common field types and through the field otherwise."""
    key = (model, connection.alias)
    if key in _plans:
        return _plans[key]
    columns = []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        adapt: Callable[[Any], Any]
        if isinstance(field, models.JSONField):
            adapt = _json_adapter(connection, field)

        elif isinstance(field, models.DateTimeField):
            adapt = _datetime_adapter(connection)
        elif isinstance(
            field, models.CharField | models.TextField | models.BooleanField | models.IntegerField
        ) or (field.is_relation and isinstance(field.target_field, models.AutoField)):
            adapt = _same_value
        else:

            def adapt(value: Any, field: Field = field) -> Any:
                return field.get_db_prep_save(value, connection)

        now = bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))
        stable = not callable(field.default) or field.default in (list, dict)
        fixed = (adapt(field.get_default()),) if stable and not now else None
        columns.append(_Column(field, adapt, now, fixed))
    _plans[key] = _Plan(
        columns=tuple(columns),
        index={column.field.attname: i for i, column in enumerate(columns)},
        template=tuple(c.fixed_default[0] if c.fixed_default else None for c in columns),
        computed=tuple(i for i, c in enumerate(columns) if c.fixed_default is None),
    )
    return _plans[key]


def _params(
    plan: _Plan, rows: Sequence[Mapping[str, Any]], common: Mapping[str, Any]
) -> list[list[Any]]:
    """One parameter list per row: the row's value, else `common`'s, else the field's
    default (or the current time for auto_now fields), each adapted for the database.

    The values that are the same for every row are adapted once, into a template that
    each row copies; only a row's own values are adapted per row (a lead has about 40
    columns, and a bulk-read page 100 leads: docs/performance.md#b13).
    """
    template = list(plan.template)
    if plan.computed:
        now = None
        for i in plan.computed:
            column = plan.columns[i]
            if column.now:
                now = now or column.adapt(timezone.now())
                template[i] = now
            else:
                template[i] = column.adapt(column.field.get_default())
    for name, value in common.items():
        i = plan.index[name]
        template[i] = plan.columns[i].adapt(value)
    # Rows usually share their keys: the slots they fill are worked out once per key set,
    # those taken as they are (most of a lead's) apart, so they cost no adapter call.
    slots: dict[tuple[str, ...], _Slots] = {}
    params = []
    for row in rows:
        keys = tuple(row)
        fill = slots.get(keys)
        if fill is None:
            fill = slots[keys] = _slots(plan, keys)
        values = template.copy() if len(rows) > 1 else template
        for i, name in fill.same:
            values[i] = row[name]
        for i, adapt, name in fill.adapted:
            values[i] = adapt(row[name])
        params.append(values)
    return params


@dataclass(frozen=True)
class _Slots:
    same: list[tuple[int, str]]  # (position, key) of the values taken as they are
    adapted: list[tuple[int, Callable[[Any], Any], str]]  # (position, adapter, key)


def _slots(plan: _Plan, keys: tuple[str, ...]) -> _Slots:
    same, adapted = [], []
    for name in keys:
        i = plan.index.get(name)
        if i is None:
            continue
        adapt = plan.columns[i].adapt
        if adapt is _same_value:
            same.append((i, name))
        else:
            adapted.append((i, adapt, name))
    return _Slots(same, adapted)


# Statement texts by (model, database, rows, conflict column, returned fields, ...), for
# the small statements of the webhook path; a many-row statement is cheap to build next to
# its rows, and caching every size would keep megabytes of text (docs/performance.md#b15).
_statements: dict[tuple[Any, ...], str] = {}
CACHED_ROWS = 16


def _insert_sql(
    model: type[Model],
    connection: BaseDatabaseWrapper,
    rows: int,
    *,
    skip_existing: str | None,
    returning: tuple[str, ...],
    expressions: tuple[tuple[str, str], ...] = (),
    where: str | None = None,
) -> str:
    """`INSERT ... VALUES (%s, ...), ... [ON CONFLICT (skip_existing) DO NOTHING]
    [RETURNING ...]`, every column a parameter but those of `expressions` ((attname, SQL)
    pairs; the primary key may be one), which are that SQL. With `where`, one row is
    inserted only if that condition holds (`INSERT ... SELECT %s, ... WHERE ...`)."""
    key = (model, connection.alias, rows, skip_existing, returning, expressions, where)
    if key in _statements:
        return _statements[key]
    quote = connection.ops.quote_name
    given = dict(expressions)
    columns = [c.field for c in _plan(model, connection).columns if c.field.attname not in given]
    columns += [model._meta.get_field(name) for name in given]
    names = ", ".join(quote(field.column) for field in columns)
    values = ", ".join(["%s"] * (len(columns) - len(given)) + list(given.values()))
    if where is None:
        rows_sql = "VALUES " + ", ".join([f"({values})"] * rows)
    else:
        if rows != 1:
            raise ValueError("A conditional INSERT writes one row.")
        rows_sql = f"SELECT {values} WHERE {where}"
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) {rows_sql}"
    if skip_existing:
        sql += f" ON CONFLICT ({quote(model._meta.get_field(skip_existing).column)}) DO NOTHING"
    if returning:
        columns_back = ", ".join(quote(model._meta.get_field(name).column) for name in returning)
        sql = f"{sql} RETURNING {columns_back}"
    if rows <= CACHED_ROWS:
        _statements[key] = sql
    return sql


class PreparedInsert:
    """An INSERT whose parameters are adapted now and which `execute` sends later.

    The webhook prepares its rows before it takes the database's write lock, so that only
    the statements themselves run while other writers wait (docs/performance.md#w5). A
    value known only once an earlier statement ran (the key of the delivery a lead points
    to) is filled in with `set`.
    """

    def __init__(
        self,
        model: type[Model],
        rows: Sequence[Mapping[str, Any]],
        *,
        key: str,
        common: Mapping[str, Any] | None = None,
        skip_existing: bool = False,
        using: str = "default",
    ) -> None:
        self.model, self.key, self.skip_existing, self.using = model, key, skip_existing, using
        # Executed by the thread that prepared it: its connection is looked up once.
        self._connection = connections[using]
        self._plan = _plan(model, self._connection)
        self.params = _params(self._plan, rows, common or {})

    def set(self, name: str, value: Any) -> None:
        """Give column `name` (an attname) this value in every row."""
        i = self._plan.index[name]
        adapted = self._plan.columns[i].adapt(value)
        for row in self.params:
            row[i] = adapted

    def statement(
        self, *, expressions: tuple[tuple[str, str], ...] = (), where: str | None = None
    ) -> tuple[str, list[Any]]:
        """The whole INSERT as one statement and its parameters, for use inside another
        statement (see `_insert_sql` for `expressions` and `where`)."""
        sql = self._sql(len(self.params), expressions=expressions, where=where)
        dropped = {self._plan.index[name] for name, _ in expressions if name in self._plan.index}
        params = [v for row in self.params for i, v in enumerate(row) if i not in dropped]
        return sql, params

    def execute(self, cursor: Any = None) -> dict[Any, int]:
        """INSERT the rows in as few statements as the database's parameter limit allows;
        returns {row[key]: pk} of the rows inserted. On `cursor` when given (the one of a
        `core.db.writes.write_transaction`), else on its own."""
        if not self.params:
            return {}
        if cursor is None:
            with cursor_for(self._connection) as own:
                return self.execute(own)
        if len(self.params) == 1 and self._by_rowid():
            return self._execute_one(cursor)
        # SQLite allows 999 parameters per statement (as Django assumes); PostgreSQL 65535.
        limit = self._connection.features.max_query_params or 32767
        size = max(1, min(len(self.params), limit // len(self.params[0])))
        inserted: dict[Any, int] = {}
        for start in range(0, len(self.params), size):
            batch = self.params[start : start + size]
            cursor.execute(self._sql(len(batch)), [value for row in batch for value in row])
            # RETURNING the key, then the `key` column (the same one for an instance).
            inserted.update((row[-1], row[0]) for row in cursor.fetchall())
        return inserted

    def _by_rowid(self) -> bool:
        """SQLite, an integer key (the rowid) and a `key` column whose values are stored as
        given: one row's key can then be read from the cursor instead of RETURNING."""
        if self._connection.vendor != "sqlite":
            return False
        meta = self.model._meta
        if not isinstance(meta.pk, models.AutoField | models.BigAutoField):
            return False
        return (
            self.key == meta.pk.attname
            or self._plan.columns[self._plan.index[self.key]].adapt is _same_value
        )

    def _execute_one(self, cursor: Any) -> dict[Any, int]:
        """One row without RETURNING: its key is the cursor's `lastrowid`, and `rowcount`
        says whether a conflict skipped it. The sqlite3 module runs such an INSERT in one
        step, where RETURNING takes two (the row, then the end), and it releases the GIL
        around each; the webhook sends three of them while it holds the write lock
        (docs/performance.md#w14)."""
        (row,) = self.params
        cursor.execute(self._sql(1, returning=()), row)
        if cursor.rowcount != 1:
            return {}
        pk = cursor.lastrowid
        if self.key == self.model._meta.pk.attname:
            return {pk: pk}
        return {row[self._plan.index[self.key]]: pk}

    def _sql(self, rows: int, **options: Any) -> str:
        pk_name = self.model._meta.pk.attname
        options.setdefault("returning", (pk_name,) if self.key == pk_name else (pk_name, self.key))
        return _insert_sql(
            self.model,
            self._connection,
            rows,
            skip_existing=self.key if self.skip_existing else None,
            **options,
        )


def insert_rows(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str,
    common: Mapping[str, Any] | None = None,
    skip_existing: bool = False,
    using: str = "default",
) -> dict[Any, int]:
    """INSERT rows (dicts keyed by attname: `form_id`, not `form`) in as few statements as
    the database's parameter limit allows; returns {row[key]: pk} of the rows inserted.

    `key` names a unique field. With `skip_existing`, a row whose key is stored already is
    skipped (the unique constraint decides, so two racing requests insert it once and each
    learns whether it was the one); without, it raises IntegrityError as `bulk_create`
    would. Keys must be distinct within `rows`.
    """
    return PreparedInsert(
        model, rows, key=key, common=common, skip_existing=skip_existing, using=using
    ).execute()


class PreparedInstance(PreparedInsert):
    """`insert` in two steps: the instance's values adapted now, `execute` sets its key."""

    def __init__(self, obj: Model, *, using: str = "default") -> None:
        row = {}
        now = None
        for column in _plan(type(obj), connections[using]).columns:
            if column.now:
                now = now or timezone.now()
                setattr(obj, column.field.attname, now)
            row[column.field.attname] = getattr(obj, column.field.attname)
        super().__init__(type(obj), [row], key=type(obj)._meta.pk.attname, using=using)
        self.obj = obj

    def execute(self, cursor: Any = None) -> dict[Any, int]:
        inserted = super().execute(cursor)
        (pk,) = inserted.values()
        self.saved(pk)
        return inserted

    def saved(self, pk: int) -> None:
        """The instance is stored with this key, as `save()` leaves it."""
        self.obj.pk = pk
        self.obj._state.adding = False
        self.obj._state.db = self.using


def insert(obj: Model, *, using: str = "default") -> Model:
    """INSERT one new instance, as `obj.save()` would without signals; sets its key."""
    PreparedInstance(obj, using=using).execute()
    return obj


def pks_by(
    model: type[Model],
    field: str,
    values: Collection[str],
    *,
    using: str = "default",
    cursor: Any = None,
) -> dict[str, int]:
    """{value: primary key} of the rows whose `field` (a unique one) has one of `values`:
    one plain SELECT per 500 values (docs/performance.md#b9). On `cursor` when given."""
    if cursor is None:
        with cursor_for(connections[using]) as own:
            return pks_by(model, field, values, using=using, cursor=own)
    quote = connections[using].ops.quote_name
    column = quote(model._meta.get_field(field).column)
    # bandit B608: table and column names come from the model, values are parameters.
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    select = f"SELECT {column}, {pk} FROM {table} WHERE {column} IN "  # noqa: S608  # nosec B608
    wanted = list(values)
    found: dict[str, int] = {}
    # In slices, under SQLite's limit on parameters per statement.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        cursor.execute(select + "(" + ", ".join(["%s"] * len(chunk)) + ")", chunk)
        found.update(cursor.fetchall())
    return found
