"""The database connections' options, for config/settings.py (importable before Django is
set up: no Django import here)."""

from __future__ import annotations

# The web process and the worker write to the same file: wait for the lock instead of
# failing with "database is locked" (though `core.db.sqlite.serialized_writes` is what
# writers wait on first), let readers proceed while one process writes (WAL), and begin
# every transaction as a writer (IMMEDIATE), so that one never fails to upgrade its read.
SQLITE = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}


def postgresql(*, prepared_statements: bool) -> dict[str, object]:
    """The layer's statements (the only ones sent with server-side binding; Django's own
    bind on the client and are never prepared) are prepared once they repeat
    (docs/performance.md#w9). Without `prepared_statements`, for a pooler that cannot keep
    them (PgBouncer in transaction mode before 1.21, or with max_prepared_statements = 0)."""
    return {"prepare_threshold": 5 if prepared_statements else None}
