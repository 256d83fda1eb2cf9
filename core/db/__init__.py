"""The database layer: every use of Django's private API, raw SQL, SQLite's write lock and
driver cursors in Leadloop lives in this package (and in migrations). Apps call its
functions and otherwise use the ORM as Django's documentation shows; tests/test_boundary.py
fails if any other module builds SQL text or reaches into a connection.

- `inserts`: INSERT ... ON CONFLICT ... RETURNING built from a model's fields, values
  adapted once per model (`PreparedInsert`, `insert_rows`, `pks_by`).
- `writes`: the webhook's one write transaction, the same outcome on every database.
- `tasks`: the one way to queue background work (django-q2), with the commit.
- `sqlite`: the write lock, BEGIN IMMEDIATE, planner statistics, the parameter limit.
- `postgres`: the one-statement delivery, the planner's row estimate.
- `queries`: small reads without the ORM's compiling, the liveness probe, on-commit once.
- `cursors`: the cursors the layer's statements run on. `fastjson`: orjson.

Each speed trick here has one entry in docs/performance.md (what it does, what it gains,
how to remove it); comments link there instead of quoting figures.
"""
