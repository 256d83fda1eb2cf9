"""The database layer's boundary: Django's private database API, raw SQL, SQLite's write
lock and driver cursors live in `core/db` (and in migrations) only.

Every module of the apps, config, core (but core/db), sandbox and scripts, tests and
migrations aside, is parsed (`ast`) and may not:

- call `.cursor()`, `.raw()` or `.extra()`, or use `RawSQL`;
- read a connection's insides: any attribute named `features`, `vendor`,
  `in_atomic_block`, `run_on_commit`, `execute_wrappers`, `queries_logged`, `ops`,
  `_state`, or `.connection` of a connection (`connection.connection`,
  `connections[...].connection`);
- import `connection` or `connections` from `django.db`, or import `sqlite3`, `psycopg`,
  `psycopg2`, `django.db.backends` or `django.db.models.sql`;
- define `as_sql` (or `as_sqlite`, `as_postgresql`): SQL text of a custom expression;
- import django-q2's `async_task`: work is queued through `core.db.tasks`, the one way;
- hold a string (not a docstring) or f-string that starts like SQL: `SELECT `,
  `INSERT INTO`, `UPDATE … SET`, `DELETE FROM`, `WITH `, `PRAGMA`, `BEGIN`, `COMMIT`,
  `ROLLBACK`, `ANALYZE`, `EXPLAIN`, `SAVEPOINT`, `VACUUM`.

Each offence is reported as file:line. (ruff's SLF001 adds: no private member of another
object outside core/db, tests and migrations; pyproject.toml.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["leads", "crm", "capi", "config", "core", "sandbox", "scripts"]
LAYER = ROOT / "core" / "db"

CALLS = {"cursor", "raw", "extra"}
ATTRIBUTES = {
    "features", "vendor", "in_atomic_block", "run_on_commit", "execute_wrappers",
    "queries_logged", "ops", "_state",
}  # fmt: skip
CONNECTION_NAMES = {"connection", "connections"}
MODULES = ("sqlite3", "psycopg", "psycopg2", "django.db.backends", "django.db.models.sql")
SQL_METHODS = {"as_sql", "as_sqlite", "as_postgresql"}
SQL_START = re.compile(
    r"\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\S+\s+SET\s|DELETE\s+FROM\s|WITH\s|PRAGMA\s"
    r"|BEGIN\b|COMMIT\b|ROLLBACK\b|ANALYZE\b|EXPLAIN\s|SAVEPOINT\s|VACUUM\b)"
)


def checked_files() -> list[Path]:
    files = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if LAYER in path.parents or "migrations" in path.parts or "tests" in path.parts:
                continue
            files.append(path)
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that stand alone as statements (docstrings)."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }


def _is_connection(node: ast.AST) -> bool:
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        return name in CONNECTION_NAMES or name == "get_connection"
    if isinstance(node, ast.Subscript):
        return _is_connection(node.value)
    if isinstance(node, ast.Call):
        return _is_connection(node.func)
    return False


def offences(source: str) -> list[tuple[int, str]]:
    """(line, what) of every offence in `source`."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        call = node.func if isinstance(node, ast.Call) else None
        if isinstance(call, ast.Attribute) and call.attr in CALLS:
            found.append((line, f".{call.attr}() call"))
        if isinstance(node, ast.Name) and node.id == "RawSQL":
            found.append((line, "RawSQL"))
        if isinstance(node, ast.Attribute):
            if node.attr in ATTRIBUTES:
                found.append((line, f"attribute .{node.attr}"))
            elif node.attr == "connection" and _is_connection(node.value):
                found.append((line, "the driver's connection"))
            elif node.attr == "RawSQL":
                found.append((line, "RawSQL"))
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(MODULES):
                    found.append((line, f"import {alias.name}"))
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(MODULES):
                found.append((line, f"from {node.module} import"))
            names = {alias.name for alias in node.names}
            if node.module == "django.db" and names & CONNECTION_NAMES:
                found.append((line, "from django.db import connection(s)"))
            if "RawSQL" in names:
                found.append((line, "RawSQL"))
            if "async_task" in names:
                found.append((line, "async_task: queue with core.db.tasks"))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in SQL_METHODS:
            found.append((line, f"def {node.name}"))
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in docstrings and SQL_START.match(text):
            found.append((line, f"SQL text {text[:30]!r}"))
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and SQL_START.match(str(first.value)):
                found.append((line, f"SQL text {str(first.value)[:30]!r}"))
    # An f-string's constant parts are also walked as constants: report each line once.
    return sorted(set(found))


def test_no_module_outside_the_database_layer_builds_sql_or_reaches_into_a_connection():
    report = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in checked_files()
        for line, what in offences(path.read_text())
    ]
    assert report == [], "outside core/db:\n" + "\n".join(report)


def test_the_check_walks_the_apps_and_leaves_the_layer_out():
    files = {str(path.relative_to(ROOT)) for path in checked_files()}
    assert {
        "leads/ingestion.py",
        "capi/lease.py",
        "crm/views/board.py",
        "config/settings.py",
    } <= files
    assert not [f for f in files if f.startswith("core/db/") or "/migrations/" in f]


def test_each_rule_catches_what_it_names():
    """Each kind of offence, written as the code this layer replaced would write it."""
    source = '''
"""A docstring that says SELECT * FROM x is fine."""
import sqlite3
from django.db import connection, transaction
from django.db.backends.sqlite3.base import SQLiteCursorWrapper
from django.db.models.expressions import RawSQL
from django_q.tasks import async_task

def f(qs, obj, connections):
    """SELECT 1 here too is a docstring."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    qs.raw('SELECT * FROM "t" LIMIT 1')
    qs.extra(where=["1 = 1"])
    if connection.vendor == "sqlite" and connection.features.max_query_params:
        pass
    transaction.get_connection().run_on_commit
    transaction.get_connection().in_atomic_block
    obj._state.adding = False
    connections["default"].connection.getlimit(1)
    sql = f"INSERT INTO {obj} VALUES (1)"
    other = "UPDATE t SET a = 1"
    return "WITH x AS (SELECT 1) SELECT 1", "With a capital only, prose", "BEGIN IMMEDIATE"

class Like:
    def as_sql(self, compiler, connection):
        return "a LIKE b", []
'''
    lines = {what.split(" ")[0] + "@" + str(line) for line, what in offences(source)}
    expected = {
        "import@3", "from@4", "from@5", "RawSQL@6", "async_task:@7",
        ".cursor()@11", "SQL@12", ".raw()@13", "SQL@13", ".extra()@14",
        "attribute@15", "attribute@17", "attribute@18", "attribute@19",
        "the@20", "SQL@21", "SQL@22", "SQL@23", "def@26",
    }  # fmt: skip
    assert lines == expected
