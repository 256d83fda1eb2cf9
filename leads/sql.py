"""INSERT and SELECT statements for the two hot paths: the webhook and the bulk read.

Django compiles every query anew and prepares every value through its field: about 0.2 ms
of Python per statement, and a third of a backfill page's time for 100 leads' 3,700
values, against a few hundredths of a millisecond for SQLite to run a statement. A webhook
runs its statements while it holds the database's write lock, so that compile time is what
capped webhook throughput (bench/webhook and bench/backfill, profiled). These helpers send
the SQL the ORM would send; each column's default, `auto_now` time and JSON or date-time
encoding are Django's own, looked up once per model instead of once per value.

Leadloop runs on SQLite (3.35 or later) and PostgreSQL; both have
`INSERT ... ON CONFLICT ... DO NOTHING RETURNING`, which tells exactly which rows were new
(`bulk_create(ignore_conflicts=True)` cannot). Model signals are not sent, as with
`bulk_create`: these are for models with no receivers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone


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
    ops = connection.ops
    columns = []
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        adapt: Callable[[Any], Any]
        if isinstance(field, models.JSONField):

            def adapt(value: Any, encoder: Any = field.encoder) -> Any:
                return None if value is None else ops.adapt_json_value(value, encoder)

        elif isinstance(field, models.DateTimeField):
            adapt = ops.adapt_datetimefield_value
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
    columns, and a bulk-read page 100 leads).
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
    # Rows usually share their keys: the slots they fill are worked out once per key set.
    slots: dict[tuple[str, ...], list[tuple[int, Callable[[Any], Any], str]]] = {}
    params = []
    for row in rows:
        keys = tuple(row)
        fill = slots.get(keys)
        if fill is None:
            fill = slots[keys] = [
                (plan.index[name], plan.columns[plan.index[name]].adapt, name)
                for name in keys
                if name in plan.index
            ]
        values = template.copy()
        for i, adapt, name in fill:
            values[i] = adapt(row[name])
        params.append(values)
    return params


# Statement texts by (model, database, rows, conflict column, returned fields), for the
# small statements of the webhook path; a many-row statement is cheap to build next to its
# rows, and caching every size would keep megabytes of text.
_statements: dict[tuple[Any, ...], str] = {}
CACHED_ROWS = 16


def _insert_sql(
    model: type[Model],
    connection: BaseDatabaseWrapper,
    rows: int,
    *,
    skip_existing: str | None,
    returning: tuple[str, ...],
) -> str:
    key = (model, connection.alias, rows, skip_existing, returning)
    if key in _statements:
        return _statements[key]
    quote = connection.ops.quote_name
    columns = _plan(model, connection).columns
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    names = ", ".join(quote(c.field.column) for c in columns)
    # bandit B608: table and column names come from the model, values are parameters.
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES {', '.join([row] * rows)}"  # noqa: S608  # nosec B608
    if skip_existing:
        sql += f" ON CONFLICT ({quote(model._meta.get_field(skip_existing).column)}) DO NOTHING"
    columns_back = ", ".join(quote(model._meta.get_field(name).column) for name in returning)
    sql = f"{sql} RETURNING {columns_back}"
    if rows <= CACHED_ROWS:
        _statements[key] = sql
    return sql


class PreparedInsert:
    """An INSERT whose parameters are adapted now and which `execute` sends later.

    The webhook prepares its rows before it takes the database's write lock, so that only
    the statements themselves run while other writers wait. A value known only once an
    earlier statement ran (the key of the delivery a lead points to) is filled in with
    `set`.
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
        self._plan = _plan(model, connections[using])
        self.params = _params(self._plan, rows, common or {})

    def set(self, name: str, value: Any) -> None:
        """Give column `name` (an attname) this value in every row."""
        i = self._plan.index[name]
        adapted = self._plan.columns[i].adapt(value)
        for row in self.params:
            row[i] = adapted

    def execute(self) -> dict[Any, int]:
        """INSERT the rows in as few statements as the database's parameter limit allows;
        returns {row[key]: pk} of the rows inserted."""
        if not self.params:
            return {}
        connection = connections[self.using]
        # SQLite allows 999 parameters per statement (as Django assumes); PostgreSQL 65535.
        limit = connection.features.max_query_params or 32767
        size = max(1, min(len(self.params), limit // len(self.params[0])))
        pk_name = self.model._meta.pk.attname
        skip = self.key if self.skip_existing else None
        returning = (pk_name,) if self.key == pk_name else (pk_name, self.key)
        inserted: dict[Any, int] = {}
        with connection.cursor() as cursor:
            for start in range(0, len(self.params), size):
                batch = self.params[start : start + size]
                sql = _insert_sql(
                    self.model, connection, len(batch), skip_existing=skip, returning=returning
                )
                cursor.execute(sql, [value for row in batch for value in row])
                inserted.update((row[-1], row[0]) for row in cursor.fetchall())
        return inserted


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

    def execute(self) -> dict[Any, int]:
        inserted = super().execute()
        (self.obj.pk,) = inserted.values()
        self.obj._state.adding = False
        self.obj._state.db = self.using
        return inserted


def insert(obj: Model, *, using: str = "default") -> Model:
    """INSERT one new instance, as `obj.save()` would without signals; sets its key."""
    PreparedInstance(obj, using=using).execute()
    return obj


def pks_by(
    model: type[Model], field: str, values: Collection[str], *, using: str = "default"
) -> dict[str, int]:
    """{value: primary key} of the rows whose `field` (a unique one) has one of `values`."""
    connection = connections[using]
    quote = connection.ops.quote_name
    column = quote(model._meta.get_field(field).column)
    # bandit B608: table and column names come from the model, values are parameters.
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    select = f"SELECT {column}, {pk} FROM {table} WHERE {column} IN "  # noqa: S608  # nosec B608
    wanted = list(values)
    found: dict[str, int] = {}
    with connection.cursor() as cursor:
        # In slices, under SQLite's limit on parameters per statement.
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            cursor.execute(select + "(" + ", ".join(["%s"] * len(chunk)) + ")", chunk)
            found.update(cursor.fetchall())
    return found
