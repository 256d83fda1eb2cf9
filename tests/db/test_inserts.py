"""The hot path's hand-sent statements behave as the ORM's would."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.db import inserts
from leads.models import Lead, Page, WebhookDelivery

pytestmark = pytest.mark.django_db


def test_insert_rows_skips_stored_keys_and_returns_only_the_new_rows():
    page = Page.objects.create(page_id="1111")
    Lead.objects.create(leadgen_id="1", page=page)
    rows = [{"leadgen_id": str(i), "page_id": page.pk} for i in (1, 2, 3)]

    inserted = inserts.insert_rows(Lead, rows, key="leadgen_id", skip_existing=True)

    assert set(inserted) == {"2", "3"}
    assert inserted == dict(
        Lead.objects.filter(leadgen_id__in=["2", "3"]).values_list("leadgen_id", "pk")
    )
    assert Lead.objects.count() == 3


def test_insert_rows_fills_defaults_common_values_and_auto_now_like_the_orm():
    page = Page.objects.create(page_id="1111")
    inserts.insert_rows(
        Lead,
        [{"leadgen_id": "7", "page_id": page.pk}],
        key="leadgen_id",
        common={"source": Lead.Source.BULK, "field_data": [{"name": "email", "values": ["a@b.c"]}]},
    )
    lead = Lead.objects.get()
    assert lead.source == Lead.Source.BULK
    assert lead.field_data == [{"name": "email", "values": ["a@b.c"]}]
    assert lead.graph_data == {} and lead.fetch_attempts == 0 and lead.email == ""
    assert lead.created_at is not None and lead.updated_at == lead.created_at


def test_insert_rows_without_skipping_raises_on_a_stored_key():
    page = Page.objects.create(page_id="1111")
    Lead.objects.create(leadgen_id="1", page=page)
    with pytest.raises(IntegrityError), transaction.atomic():
        inserts.insert_rows(Lead, [{"leadgen_id": "1", "page_id": page.pk}], key="leadgen_id")


def test_insert_rows_splits_statements_under_the_parameter_limit(monkeypatch):
    page = Page.objects.create(page_id="1111")
    width = len([f for f in Lead._meta.concrete_fields if not f.primary_key])
    monkeypatch.setattr(connection.features, "max_query_params", width * 3)
    rows = [{"leadgen_id": str(i), "page_id": page.pk} for i in range(10)]
    inserted = inserts.insert_rows(Lead, rows, key="leadgen_id", skip_existing=True)
    assert len(inserted) == 10 == Lead.objects.count()


def test_insert_sets_the_key_and_auto_now_add_of_the_instance():
    delivery = inserts.insert(WebhookDelivery(body=b"\x00raw", headers={"A": "b"}))
    assert delivery.pk is not None and not delivery._state.adding
    stored = WebhookDelivery.objects.get()
    assert stored.pk == delivery.pk
    assert bytes(stored.body) == b"\x00raw" and stored.headers == {"A": "b"}
    assert stored.received_at == delivery.received_at


def test_pks_by_finds_stored_values_only():
    page = Page.objects.create(page_id="1111")
    assert inserts.pks_by(Page, "page_id", ["1111", "2222"]) == {"1111": page.pk}
    assert inserts.pks_by(Page, "page_id", []) == {}


def test_a_prepared_insert_takes_a_late_value_in_every_row():
    page = Page.objects.create(page_id="1111")
    delivery = WebhookDelivery.objects.create(body=b"{}", headers={})
    insert = inserts.PreparedInsert(
        Lead,
        [{"leadgen_id": str(i), "page_id": page.pk} for i in (1, 2)],
        key="leadgen_id",
        skip_existing=True,
    )
    insert.set("first_delivery_id", delivery.pk)
    assert set(insert.execute()) == {"1", "2"}
    assert set(Lead.objects.values_list("first_delivery_id", flat=True)) == {delivery.pk}


@pytest.mark.parametrize(("condition", "rows"), [("1 = 0", 0), ("1 = 1", 1)])
def test_a_conditional_statement_inserts_its_row_only_when_the_condition_holds(condition, rows):
    from django_q.models import OrmQ

    insert = inserts.PreparedInsert(
        OrmQ, [{"key": "q", "payload": "p", "lock": timezone.now()}], key="id"
    )
    statement, params = insert.statement(where=condition)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    assert OrmQ.objects.filter(key="q").count() == rows


def test_a_statement_can_give_a_column_as_sql_instead_of_a_parameter():
    page = Page.objects.create(page_id="1111")
    insert = inserts.PreparedInsert(Lead, [{"leadgen_id": "9", "page_id": 0}], key="leadgen_id")
    statement, params = insert.statement(expressions=(("page_id", str(page.pk)),))
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
    assert Lead.objects.get(leadgen_id="9").page_id == page.pk


def test_date_times_are_adapted_as_djangos_own_adapter_does():
    """The SQLite shortcut for UTC times gives Django's text; other values go through
    Django's adapter."""
    adapt = inserts._datetime_adapter(connection)
    values = [
        timezone.now(),
        dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC),
        dt.datetime.fromisoformat("2015-02-28T08:49:14+0000"),
        dt.datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        None,
    ]
    assert [adapt(v) for v in values] == [
        connection.ops.adapt_datetimefield_value(v) for v in values
    ]


def test_a_repeated_hot_statement_is_prepared_on_postgresql_and_djangos_are_not():
    """PostgreSQL parses and plans the webhook's statement once per connection (it took as
    long as running it); Django's own queries, bound on the client, are never prepared."""
    if connection.vendor != "postgresql":
        # SQLite keeps no server-side statements; nothing to prepare.
        assert "prepare_threshold" not in connection.settings_dict["OPTIONS"]
        return
    for i in range(8):
        inserts.insert_rows(Page, [{"page_id": f"prep-{i}", "name": "P"}], key="page_id")
        list(Page.objects.filter(page_id=f"prep-{i}"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [statement for (statement,) in cursor.fetchall()]
    # (Other tests' statements may be prepared on this connection too.)
    assert [s for s in prepared if s.startswith('INSERT INTO "leads_page"')]
    assert not [s for s in prepared if s.startswith("SELECT") and '"leads_page"' in s]


@pytest.mark.parametrize(("value", "threshold"), [(None, 5), ("false", None), ("true", 5)])
def test_prepared_statements_can_be_turned_off_for_a_pooler(value, threshold):
    """DATABASE_PREPARED_STATEMENTS=false: for PgBouncer in transaction mode before 1.21."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "true",
        "DATABASE_URL": "postgres://leadloop@db.invalid:5432/leadloop",
        "LEADLOOP_ENV_FILE": os.devnull,
    }
    env.pop("DATABASE_PREPARED_STATEMENTS", None)
    if value is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = value
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS'].get('prepare_threshold'))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(threshold)


def test_one_row_is_inserted_without_returning_on_sqlite_and_keyed_all_the_same():
    """SQLite reads one row's key from the cursor (one step of the sqlite3 module instead
    of two); the result is the same as RETURNING's, conflicts included."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        first = inserts.insert_rows(Page, [{"page_id": "7", "name": "P"}], key="page_id")
        again = inserts.insert_rows(
            Page, [{"page_id": "7", "name": "Q"}], key="page_id", skip_existing=True
        )
        delivery = inserts.insert(WebhookDelivery(body=b"{}", headers={}))
    page = Page.objects.get(page_id="7")
    assert first == {"7": page.pk}
    assert again == {}
    assert delivery.pk == WebhookDelivery.objects.get().pk
    returning = ["RETURNING" in q["sql"] for q in queries.captured_queries]
    assert returning == [connection.vendor != "sqlite"] * 3
