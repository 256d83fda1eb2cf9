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


_columns_cache: dict[tuple[type[Model], str], tuple[_Column, ...]] = {}


def _columns(model: type[Model], connection: BaseDatabaseWrapper) -> tuple[_Column, ...]:
    """Every column an INSERT writes (all but the auto-incremented key), with its adapter:
    what `field.get_db_prep_save` does, taken directly for the common field types and
    through the field otherwise."""
    key = (model, connection.alias)
    if key in _columns_cache:
        return _columns_cache[key]
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
    _columns_cache[key] = tuple(columns)
    return _columns_cache[key]


def _params(
    model: type[Model],
    rows: Sequence[Mapping[str, Any]],
    common: Mapping[str, Any],
    connection: BaseDatabaseWrapper,
) -> list[list[Any]]:
    """One parameter list per row: the row's value, else `common`'s, else the field's
    default (or the current time for auto_now fields), each adapted for the database.

    The values that are the same for every row are adapted once, into a template that
    each row copies; only a row's own values are adapted per row (a lead has about 40
    columns, and a bulk-read page 100 leads).
    """
    now = timezone.now()
    template: list[Any] = []
    own_names: dict[str, int] = {}
    for index, column in enumerate(_columns(model, connection)):
        name = column.field.attname
        own_names[name] = index
        if name in common:
            template.append(column.adapt(common[name]))
        elif column.fixed_default is not None:
            template.append(column.fixed_default[0])
        elif column.now:
            template.append(column.adapt(now))
        else:
            template.append(column.adapt(column.field.get_default()))
    columns = _columns(model, connection)
    # Rows usually share their keys: the slots to fill are worked out once per key set.
    slots: dict[tuple[str, ...], list[tuple[int, Callable[[Any], Any], str]]] = {}
    params = []
    for row in rows:
        keys = tuple(row)
        fill = slots.get(keys)
        if fill is None:
            fill = slots[keys] = [
                (own_names[name], columns[own_names[name]].adapt, name)
                for name in keys
                if name in own_names
            ]
        values = template.copy()
        for index, adapt, name in fill:
            values[index] = adapt(row[name])
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
    columns = _columns(model, connection)
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
    if not rows:
        return {}
    connection = connections[using]
    params = _params(model, rows, common or {}, connection)
    width = len(params[0])
    # SQLite allows 999 parameters per statement (as Django assumes); PostgreSQL 65535.
    limit = connection.features.max_query_params or 32767
    size = max(1, min(len(params), limit // width))
    pk_name = model._meta.pk.attname
    inserted: dict[Any, int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(params), size):
            batch = params[start : start + size]
            sql = _insert_sql(
                model,
                connection,
                len(batch),
                skip_existing=key if skip_existing else None,
                returning=(pk_name, key),
            )
            cursor.execute(sql, [value for row in batch for value in row])
            inserted.update((value, pk) for pk, value in cursor.fetchall())
    return inserted


def insert(obj: Model, *, using: str = "default") -> Model:
    """INSERT one new instance, as `obj.save()` would without signals; sets its key."""
    model = type(obj)
    connection = connections[using]
    row = {}
    for column in _columns(model, connection):
        if column.now:
            setattr(obj, column.field.attname, timezone.now())
        row[column.field.attname] = getattr(obj, column.field.attname)
    (params,) = _params(model, [row], {}, connection)
    pk_name = model._meta.pk.attname
    sql = _insert_sql(model, connection, 1, skip_existing=None, returning=(pk_name,))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (obj.pk,) = cursor.fetchone()
    obj._state.adding = False
    obj._state.db = using
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
