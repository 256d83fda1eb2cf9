"""SQLite's write transactions (the webhook's, under the write lock) and planner statistics
(kept fresh, so a salesperson's newest leads are read in order instead of sorting every
lead of their pages)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django_q.models import Schedule

from core.db import inserts, sqlite
from leads import tasks
from leads.models import Lead, Page

pytestmark = pytest.mark.django_db


def plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " / ".join(str(row[-1]) for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL's autovacuum analyzes")
def test_refreshed_statistics_let_sqlite_walk_the_newest_leads_of_some_pages():
    pages = Page.objects.bulk_create([Page(page_id=str(i)) for i in range(1, 5)])
    Lead.objects.bulk_create(
        [Lead(leadgen_id=str(i), page=pages[i % 4]) for i in range(2000)], batch_size=500
    )
    query = Lead.objects.filter(page__in=pages[:2]).order_by("-id")[:51]
    sql, params = query.query.sql_with_params()
    assert "TEMP B-TREE" in plan(sql, params)  # no statistics: sorts both pages' leads

    tasks.refresh_statistics()  # what the hourly schedule runs

    assert "TEMP B-TREE" not in plan(sql, params)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'leads_lead'")
        assert cursor.fetchone()[0] > 0


def test_the_refresh_is_scheduled_hourly():
    schedule = Schedule.objects.get(name="leads: refresh database statistics")
    assert (schedule.func, schedule.schedule_type) == (
        "leads.tasks.refresh_statistics",
        Schedule.HOURLY,
    )


def test_a_large_bulk_read_refreshes_the_statistics(monkeypatch):
    from leads import bulk

    calls = []
    monkeypatch.setattr(sqlite, "refresh_statistics", lambda: calls.append(1))
    monkeypatch.setattr(
        bulk, "_read_pages", lambda result, *a, **k: setattr(result, "created", 5000)
    )
    result = bulk.ReadResult(label="form")
    bulk._read(
        result, path="/1/leads", token="t", after=None, before=None, form=None, page=None,
        client=None, sleep=lambda s: None, progress=None, deadline=None,
    )  # fmt: skip
    assert calls == [1]
    result = bulk.ReadResult(label="form")
    monkeypatch.setattr(bulk, "_read_pages", lambda result, *a, **k: setattr(result, "created", 10))
    bulk._read(
        result, path="/1/leads", token="t", after=None, before=None, form=None, page=None,
        client=None, sleep=lambda s: None, progress=None, deadline=None,
    )  # fmt: skip
    assert calls == [1]


def _page_insert(page_id: str) -> inserts.PreparedInsert:
    return inserts.PreparedInsert(Page, [{"page_id": page_id, "name": "P"}], key="page_id")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_immediate_transaction_commits_or_rolls_back_whole():
    if connection.vendor != "sqlite":
        with pytest.raises(RuntimeError), sqlite.immediate_transaction():
            pass
        return
    with sqlite.immediate_transaction() as cursor:
        _page_insert("1").execute(cursor)
        _page_insert("2").execute(cursor)
    assert set(Page.objects.values_list("page_id", flat=True)) == {"1", "2"}

    with pytest.raises(ZeroDivisionError), sqlite.immediate_transaction() as cursor:
        _page_insert("3").execute(cursor)
        1 / 0  # noqa: B018
    # A database error comes out as Django's, and also rolls back what came before it.
    with pytest.raises(IntegrityError), sqlite.immediate_transaction() as cursor:
        _page_insert("4").execute(cursor)
        _page_insert("1").execute(cursor)
    assert set(Page.objects.values_list("page_id", flat=True)) == {"1", "2"}
    assert not connection.in_atomic_block and connection.get_autocommit()
    # Django's own transactions work as before on the same connection.
    with transaction.atomic():
        Page.objects.create(page_id="5")
    assert Page.objects.count() == 3


def test_an_immediate_transaction_refuses_to_nest_in_another():
    # pytest-django runs this test inside a transaction (atomic).
    with pytest.raises(RuntimeError), sqlite.immediate_transaction():
        pass
