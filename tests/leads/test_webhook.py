"""The Meta webhook: handshake, signatures, storage before parsing, and deduplication."""

from __future__ import annotations

import json

import pytest
import responses
from django.conf import settings
from django.db import DatabaseError, transaction

from leads.models import Form, Lead, Page, WebhookDelivery
from tests.conftest import (
    GRAPH,
    change_value,
    graph_lead,
    leadgen_body,
    load_fixture,
    queue_size,
    queued_tasks,
    run_queued_tasks,
)

pytestmark = pytest.mark.django_db


# --- Handshake --------------------------------------------------------------------------


def test_handshake_with_the_right_token_echoes_the_challenge(client):
    response = client.get(
        "/webhooks/meta/",
        {
            "hub.mode": "subscribe",
            "hub.challenge": "1158201444",
            "hub.verify_token": "test-verify-token",
        },
    )
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "wrong"},
        {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "test-verify-token"},
        {"hub.challenge": "1", "hub.verify_token": "test-verify-token"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_is_refused_otherwise(client, params):
    response = client.get("/webhooks/meta/", params)
    assert response.status_code == 403
    assert response.content == b"Forbidden"


def test_handshake_is_refused_when_no_verify_token_is_configured(client, settings):
    settings.META_VERIFY_TOKEN = ""
    response = client.get(
        "/webhooks/meta/", {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": ""}
    )
    assert response.status_code == 403


# --- Signatures -------------------------------------------------------------------------


def test_valid_signature_is_accepted_stored_and_queues_one_fetch(post_webhook):
    body = json.dumps(load_fixture("webhook_leadgen.json")).encode()
    response = post_webhook(body)

    assert response.status_code == 200
    assert response.json() == {"received": 1, "new_leads": 1}
    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == body
    assert delivery.signature_valid is True
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    assert delivery.headers["HTTP_X_HUB_SIGNATURE_256"].startswith("sha256=")
    lead = Lead.objects.get()
    assert lead.leadgen_id == "1234567890123456"
    assert lead.fetch_status == Lead.FetchStatus.PENDING
    assert lead.page.page_id == "1111"
    assert lead.form.form_id == "2222"
    assert lead.ad_id == "120210000000000001"
    assert lead.first_delivery == delivery
    tasks = queued_tasks()
    assert [(t["func"], t["args"]) for t in tasks] == [
        ("leads.tasks.fetch_leads_by_leadgen_id", (["1234567890123456"],))
    ]


@pytest.mark.parametrize(
    ("case", "kwargs", "stored"),
    [
        ("wrong secret", {"secret": "not-the-app-secret"}, True),
        ("missing header", {"signature": None}, False),
        ("non-ASCII header", {"signature": "sha256=ä" + "0" * 63}, True),
        ("not hex", {"signature": "sha256=" + "z" * 64}, True),
        ("sha1 only", {"signature": "sha1=" + "0" * 40}, True),
        ("empty", {"signature": ""}, False),
    ],
)
def test_bad_signatures_are_refused_with_no_lead_and_no_task(post_webhook, case, kwargs, stored):
    response = post_webhook(load_fixture("webhook_leadgen.json"), **kwargs)

    assert response.status_code == 403, case
    assert Lead.objects.count() == 0
    assert Page.objects.count() == 0
    assert queue_size() == 0
    # A present but wrong signature is kept for diagnosis (a wrong app secret shows up in
    # the admin); a missing one is refused before anything is written.
    assert WebhookDelivery.objects.count() == (1 if stored else 0)
    if stored:
        assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.INVALID_SIGNATURE


def test_tampered_body_is_refused(client, settings):
    from leads.webhooks import sign

    original = json.dumps(load_fixture("webhook_leadgen.json")).encode()
    tampered = original.replace(b"1234567890123456", b"1234567890123457")
    response = client.post(
        "/webhooks/meta/",
        tampered,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(original, settings.META_APP_SECRET),
    )
    assert response.status_code == 403
    assert Lead.objects.count() == 0
    assert queue_size() == 0


def test_escaped_unicode_body_verifies_over_the_raw_bytes(post_webhook):
    # Meta escapes non-ASCII and slashes; re-serialising the parsed JSON would change the
    # bytes and break the signature, so the check must use the body as received.
    body = (
        b'{"object":"page","entry":[{"id":"1111","time":1,"changes":[{"field":"leadgen",'
        b'"value":{"leadgen_id":"555","page_id":"1111","form_id":"2222","created_time":1,'
        b'"note":"M\\u00fcller \\u00e4 caf\\u00e9 http:\\/\\/x"}}]}]}'
    )
    assert json.dumps(json.loads(body)).encode() != body
    response = post_webhook(body)
    assert response.status_code == 200
    assert Lead.objects.get().leadgen_id == "555"


def test_post_is_refused_without_an_app_secret(post_webhook, settings):
    body = load_fixture("webhook_leadgen.json")
    settings.META_APP_SECRET = ""
    response = post_webhook(body, secret="anything")
    assert response.status_code == 403
    assert WebhookDelivery.objects.count() == 0
    assert Lead.objects.count() == 0


@pytest.mark.parametrize("debug", [True, False])
def test_unsigned_requests_are_refused_whatever_debug_says(post_webhook, settings, debug):
    settings.DEBUG = debug
    response = post_webhook(load_fixture("webhook_leadgen.json"), signature=None)
    assert response.status_code == 403
    assert Lead.objects.count() == 0


# --- Batching and deduplication ---------------------------------------------------------


def three_by_two() -> dict:
    return leadgen_body(
        [[change_value(1000 + e * 10 + c, page_id=1111) for c in range(2)] for e in range(3)]
    )


def test_three_entries_of_two_changes_give_six_leads_and_duplicates_add_nothing(
    post_webhook, mocked_graph, settings
):
    settings.META_ACCESS_TOKEN = "system-user-token"
    for leadgen_id in ("1000", "1001", "1010", "1011", "1020", "1021"):
        mocked_graph.get(f"{GRAPH}/{leadgen_id}", json=graph_lead(leadgen_id))
    body = json.dumps(three_by_two()).encode()

    first = post_webhook(body)
    assert first.json() == {"received": 6, "new_leads": 6}
    assert run_queued_tasks() == 1  # one task for the six ids

    for _ in range(2):
        again = post_webhook(body)
        assert again.status_code == 200
        assert again.json() == {"received": 6, "new_leads": 0}
    assert queue_size() == 0
    assert run_queued_tasks() == 0

    assert Lead.objects.count() == 6
    assert Lead.objects.filter(fetch_status=Lead.FetchStatus.COMPLETE).count() == 6
    assert WebhookDelivery.objects.count() == 3
    # One Graph call per lead: the duplicates caused no second fetch.
    assert sorted(call.request.url.split("?")[0] for call in mocked_graph.calls) == sorted(
        f"{GRAPH}/{i}" for i in ("1000", "1001", "1010", "1011", "1020", "1021")
    )


def test_duplicate_inside_one_delivery_gives_one_lead(post_webhook):
    body = leadgen_body([[change_value(77), change_value(77)], [change_value("77")]])
    response = post_webhook(body)
    assert response.json() == {"received": 3, "new_leads": 1}
    assert Lead.objects.count() == 1


def test_numeric_and_string_ids_are_stored_as_exact_strings(post_webhook):
    big = 12345678901234567  # > 2**53: a float would round it
    body = leadgen_body(
        [[change_value(big, page_id=987654321012345, form_id="876543210987654", ad_id=big + 2)]],
        page_id=987654321012345,
    )
    post_webhook(body)
    lead = Lead.objects.select_related("page", "form").get()
    assert lead.leadgen_id == "12345678901234567"
    assert lead.page.page_id == "987654321012345"
    assert lead.form.form_id == "876543210987654"
    assert lead.ad_id == "12345678901234569"


def test_organic_lead_without_ad_ids(post_webhook):
    post_webhook(leadgen_body([[change_value(42, ad_id=None)]]))
    assert Lead.objects.get().ad_id == ""


def test_pages_and_forms_are_reused_across_deliveries(post_webhook):
    post_webhook(leadgen_body([[change_value(1)]]))
    post_webhook(leadgen_body([[change_value(2)]]))
    assert Page.objects.count() == 1
    assert Form.objects.count() == 1
    assert Lead.objects.count() == 2


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_known_page_and_form_cost_one_statement_on_postgresql(
    post_webhook, django_assert_num_queries
):
    """Once this process has seen the page and form, a delivery is written with its values
    adapted beforehand: the delivery, the lead and the fetch task's row. On PostgreSQL the
    three INSERTs go as one statement (one round trip, atomic on its own); on SQLite they
    run between BEGIN IMMEDIATE and COMMIT, under the write lock."""
    from django.db import connection

    post_webhook(leadgen_body([[change_value(1)]]))  # the page and form are looked up
    # ...and the process's one-time lookups done (PostgreSQL: the delivery's sequence name).
    post_webhook(leadgen_body([[change_value(3)]]))
    queued_tasks()
    statements = 1 if connection.vendor == "postgresql" else 5
    if settings.REDIS_URL and connection.vendor == "sqlite":  # pushed to Redis, not written
        statements = 4
    with django_assert_num_queries(statements):
        response = post_webhook(leadgen_body([[change_value(2)]]))
    assert response.json() == {"received": 1, "new_leads": 1}
    lead = Lead.objects.get(leadgen_id="2")
    delivery = WebhookDelivery.objects.get(pk=lead.first_delivery_id)
    assert (delivery.leads_created, delivery.changes_count) == (1, 1)
    assert (lead.page.page_id, lead.form.form_id, lead.fetch_status) == ("1111", "2222", "pending")
    tasks = queued_tasks()
    assert [(t["func"], t["args"]) for t in tasks] == [
        ("leads.tasks.fetch_leads_by_leadgen_id", (["2"],))
    ]


def test_a_delivery_mixing_stored_and_new_leads_fetches_each_lead_once(
    post_webhook, mocked_graph, settings
):
    """The known-page path with some leadgen ids stored already: only the new lead is
    counted and created, and running every queued task fetches each lead exactly once."""
    settings.META_ACCESS_TOKEN = "system-user-token"
    for leadgen_id in ("5", "6"):
        mocked_graph.get(f"{GRAPH}/{leadgen_id}", json=graph_lead(leadgen_id))
    post_webhook(leadgen_body([[change_value(5)]]))  # lead 5, still waiting for its fetch

    response = post_webhook(leadgen_body([[change_value(5), change_value(6)]]))

    assert response.json() == {"received": 2, "new_leads": 1}
    assert WebhookDelivery.objects.order_by("pk").last().leads_created == 1
    assert Lead.objects.get(leadgen_id="6").first_delivery_id == (
        WebhookDelivery.objects.order_by("pk").last().pk
    )
    run_queued_tasks()
    assert sorted(call.request.url.split("?")[0] for call in mocked_graph.calls) == [
        f"{GRAPH}/5",
        f"{GRAPH}/6",
    ]
    assert set(Lead.objects.values_list("fetch_status", flat=True)) == {"complete"}


def test_a_known_page_delivery_of_only_stored_leads_queues_nothing(post_webhook):
    post_webhook(leadgen_body([[change_value(8)]]))
    queued_tasks()
    response = post_webhook(leadgen_body([[change_value(8)]]))
    assert response.json() == {"received": 1, "new_leads": 0}
    assert WebhookDelivery.objects.order_by("pk").last().leads_created == 0
    assert queue_size() == 0


# --- Other shapes -----------------------------------------------------------------------


def test_other_fields_are_stored_and_ignored(post_webhook):
    body = {
        "object": "page",
        "entry": [
            {"id": "1111", "time": 1, "changes": [{"field": "feed", "value": {"item": "x"}}]}
        ],
    }
    response = post_webhook(body)
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.IGNORED
    assert Lead.objects.count() == 0
    assert queue_size() == 0


def test_other_objects_are_stored_and_ignored(post_webhook):
    response = post_webhook({"object": "instagram", "entry": []})
    assert response.status_code == 200
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.IGNORED


def test_invalid_changes_are_skipped_and_noted_while_good_ones_go_in(post_webhook):
    body = leadgen_body(
        [[change_value(5), {"leadgen_id": 1.5e16, "page_id": 1111}, {"page_id": 1111}]]
    )
    response = post_webhook(body)
    assert response.status_code == 200
    assert list(Lead.objects.values_list("leadgen_id", flat=True)) == ["5"]
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.PROCESSED
    assert "entry[0].changes[1]" in delivery.error
    assert "entry[0].changes[2]" in delivery.error


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"[" * 100_000 + b"]" * 100_000, b""],
)
def test_malformed_json_with_valid_signature_is_400_and_kept(post_webhook, body):
    response = post_webhook(body)
    assert response.status_code == 400
    assert "error" in response.json()
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.MALFORMED
    assert delivery.signature_valid is True
    assert bytes(delivery.body) == body
    assert Lead.objects.count() == 0
    assert queue_size() == 0


def test_oversized_body_is_413_and_stores_nothing(post_webhook, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    body = leadgen_body([[change_value(i) for i in range(1, 40)]])
    response = post_webhook(body)
    assert response.status_code == 413
    assert WebhookDelivery.objects.count() == 0
    assert Lead.objects.count() == 0


def test_webhook_request_makes_no_outbound_http_call(post_webhook):
    # Any HTTP request through `requests` would fail here, and none is recorded.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        response = post_webhook(leadgen_body([[change_value(i) for i in range(1, 4)]]))
        assert response.status_code == 200
        assert len(mock.calls) == 0
    assert Lead.objects.count() == 3
    assert queue_size() == 1


# --- Failure leaves nothing half-written --------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rolled_back_ingestion_leaves_no_lead_and_no_queued_task(client, monkeypatch, settings):
    """The database fails after the leads were inserted and their fetch queued: everything
    rolls back together, the webhook answers 5xx (Meta retries) and no fetch is queued."""
    from core.db.writes import WriteTransaction
    from leads.webhooks import sign

    original_write = WriteTransaction.write_delivery

    def write_then_fail(write, **kwargs):
        original_write(write, **kwargs)
        assert Lead.objects.count() == 2
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(WriteTransaction, "write_delivery", write_then_fail)
    body = json.dumps(leadgen_body([[change_value(1), change_value(2)]])).encode()
    client.raise_request_exception = False
    response = client.post(
        "/webhooks/meta/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(body, settings.META_APP_SECRET),
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "60"
    assert Lead.objects.count() == 0
    assert WebhookDelivery.objects.count() == 0
    assert queue_size() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_outer_rollback_discards_the_queued_fetch(settings):
    from leads.ingestion import receive_delivery
    from leads.webhooks import sign

    body = json.dumps(leadgen_body([[change_value(9)]])).encode()
    with pytest.raises(RuntimeError), transaction.atomic():
        receive_delivery(body=body, headers={}, signature=sign(body, settings.META_APP_SECRET))
        assert Lead.objects.count() == 1
        raise RuntimeError("caller failed after ingestion")
    assert Lead.objects.count() == 0
    assert queue_size() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_committed_ingestion_queues_exactly_one_task(settings):
    from leads.ingestion import receive_delivery
    from leads.webhooks import sign

    body = json.dumps(leadgen_body([[change_value(9)]])).encode()
    receive_delivery(body=body, headers={}, signature=sign(body, settings.META_APP_SECRET))
    assert queue_size() == 1


def test_processing_bug_keeps_the_delivery_with_its_error(post_webhook, monkeypatch):
    def explode(*args, **kwargs):
        raise KeyError("surprise")

    monkeypatch.setattr("leads.ingestion._lead_rows", explode)
    response = post_webhook(leadgen_body([[change_value(1)]]))
    assert response.status_code == 500
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "KeyError" in delivery.error
    assert Lead.objects.count() == 0
    assert queue_size() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_remembered_page_deleted_since_costs_one_retry(client, settings):
    """Page and form keys are remembered per process; when another process deleted the
    rows, the lead's foreign keys fail at COMMIT, the webhook answers 503 and Meta's retry
    stores the lead."""
    from django.db import connection

    from leads.webhooks import sign

    def deliver(lead: int):
        body = json.dumps(leadgen_body([[change_value(lead)]])).encode()
        signature = sign(body, settings.META_APP_SECRET)
        return client.post(
            "/webhooks/meta/", body, content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=signature,
        )  # fmt: skip

    client.raise_request_exception = False
    assert deliver(1).status_code == 200
    Lead.objects.all().delete()
    with connection.cursor() as cursor:  # as another process would: no signal here
        cursor.execute('DELETE FROM "leads_form"')
        cursor.execute('DELETE FROM "leads_page"')

    assert deliver(2).status_code == 503
    assert not Lead.objects.exists() and WebhookDelivery.objects.count() == 1  # the first
    assert deliver(2).status_code == 200
    lead = Lead.objects.get()
    assert (lead.leadgen_id, lead.page.page_id, lead.form.form_id) == ("2", "1111", "2222")


def test_a_pending_lead_enters_only_the_indexes_it_needs():
    """Every index is one more write per webhook lead: a lead waiting for its fetch (no
    stage, email or phone yet) is left out of those indexes, and PostgreSQL has no LIKE
    index on the lead's text columns (no query here matches a prefix)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'leads_lead'"
            )
        else:
            cursor.execute(
                "SELECT name, coalesce(sql, '') FROM sqlite_master"
                " WHERE type = 'index' AND tbl_name = 'leads_lead'"
            )
        indexes = dict(cursor.fetchall())
    partial = {name for name, sql in indexes.items() if " WHERE " in sql}
    assert partial == {"lead_fetch_due", "lead_stage_created", "lead_email", "lead_phone"}
    assert not [name for name in indexes if name.endswith("_like")]
    # The unique leadgen id and six others are written for every lead (and on PostgreSQL
    # the primary key's, which on SQLite is the table itself).
    assert len(indexes) - len(partial) == (8 if connection.vendor == "postgresql" else 7)


# --- SQLite's hot path, outside any test transaction ------------------------------------


def _deliver(client, *leads: int):
    from leads.webhooks import sign

    body = json.dumps(leadgen_body([[change_value(lead) for lead in leads]])).encode()
    return client.post(
        "/webhooks/meta/",
        body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=sign(body, settings.META_APP_SECRET),
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sqlite_writes_a_known_page_delivery_in_one_immediate_transaction(client):
    """The statements a webhook sends while it holds SQLite's write lock: BEGIN IMMEDIATE,
    the delivery, its lead, the fetch task's row (ORM broker), COMMIT; and nothing is
    visible to other connections before that COMMIT."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "sqlite":
        # PostgreSQL sends one statement (test_a_known_page_and_form_cost_one_statement...).
        assert _deliver(client, 1).status_code == 200
        return
    assert _deliver(client, 1).status_code == 200  # the page and form are now known
    queued_tasks()
    with CaptureQueriesContext(connection) as queries:
        response = _deliver(client, 2)
    assert response.json() == {"received": 1, "new_leads": 1}
    sent = [q["sql"].split(" (")[0] for q in queries.captured_queries]
    written = ['INSERT INTO "leads_webhookdelivery"', 'INSERT INTO "leads_lead"']
    if not settings.REDIS_URL:
        written.append('INSERT INTO "django_q_ormq"')
    assert sent == ["BEGIN IMMEDIATE", *written, "COMMIT"]
    # With Redis the task is pushed after that COMMIT; either way exactly one, for lead 2.
    assert [t["args"] for t in queued_tasks()] == [(["2"],)]
    newest = WebhookDelivery.objects.order_by("pk").last()
    assert Lead.objects.get(leadgen_id="2").first_delivery_id == newest.pk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_known_page_delivery_with_a_stored_lead_counts_the_new_one_only(client):
    assert _deliver(client, 1).status_code == 200
    queued_tasks()
    response = _deliver(client, 1, 2)
    assert response.json() == {"received": 2, "new_leads": 1}
    assert WebhookDelivery.objects.order_by("pk").last().leads_created == 1
    assert Lead.objects.count() == 2
    # On every database and broker, the task names the delivery's every lead: it is built
    # before anyone knows which are new, and a fetch claims pending, due leads only, once
    # (core.db.writes). Lead 1's own task was taken above.
    assert [t["args"] for t in queued_tasks()] == [(["1", "2"],)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_bug_midway_rolls_a_known_page_delivery_back(client, monkeypatch):
    from django.db import connection

    assert _deliver(client, 1).status_code == 200
    queued_tasks()

    def explode(*args, **kwargs):
        raise KeyError("surprise")

    if connection.vendor == "postgresql":  # one statement there
        monkeypatch.setattr("core.db.postgres.insert_with_parent", explode)
    else:  # after the delivery's INSERT, under the write lock
        from core.db.inserts import PreparedInsert

        original_set = PreparedInsert.set

        def explode_at_the_link(rows, name, value):
            if name == "first_delivery_id":
                explode()
            original_set(rows, name, value)

        monkeypatch.setattr(PreparedInsert, "set", explode_at_the_link)
    response = _deliver(client, 2)
    assert response.status_code == 500
    failed = WebhookDelivery.objects.order_by("pk").last()
    assert failed.status == WebhookDelivery.Status.FAILED and "KeyError" in failed.error
    assert WebhookDelivery.objects.count() == 2  # the first, and this one stored alone
    assert not Lead.objects.filter(leadgen_id="2").exists()
    assert queue_size() == 0
