"""The database fails in the middle of a webhook delivery: the webhook answers non-2xx, so
Meta delivers it again, and nothing of the failed attempt remains (no delivery, no lead, no
page, no queued fetch). Meta's retry then stores the lead once."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.test import Client

from leads.models import Form, Lead, Page, WebhookDelivery
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, queue_size, queued_tasks

pytestmark = [pytest.mark.faults, pytest.mark.django_db]

# (statement prefix, table): the statements of one delivery, in the order they run.
FAILURE_POINTS = {
    "delivery insert": ("INSERT", "leads_webhookdelivery"),
    "page lookup": ("SELECT", "leads_page"),
    "page insert": ("INSERT", "leads_page"),
    "form insert": ("INSERT", "leads_form"),
    "lead insert": ("INSERT", "leads_lead"),
    # The ORM broker's task row is written in the same transaction (core.db.tasks).
    "fetch task insert": ("INSERT", "django_q_ormq"),
}


def failing_at(verb: str, table: str) -> Callable:
    def wrapper(execute, sql, params, many, context):
        statement = sql.lstrip().upper()
        if statement.startswith(verb) and f'"{table.upper()}"' in statement:
            raise OperationalError("database is unavailable (injected)")
        return execute(sql, params, many, context)

    return wrapper


def post(body: bytes, capture) -> object:
    client = Client(raise_request_exception=False)
    with capture(execute=True):
        return client.post(
            "/webhooks/meta/",
            body,
            content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sign(body, settings.META_APP_SECRET),
        )


@pytest.mark.parametrize("point", list(FAILURE_POINTS))
def test_database_failure_during_a_webhook_leaves_nothing_and_the_retry_stores_the_lead(
    point, django_capture_on_commit_callbacks
):
    if point == "fetch task insert" and settings.REDIS_URL:
        pytest.skip("the Redis broker writes no row: see the broker-down test below")
    verb, table = FAILURE_POINTS[point]
    body = json.dumps(leadgen_body([[change_value(9001), change_value(9002)]])).encode()

    with connection.execute_wrapper(failing_at(verb, table)):
        response = post(body, django_capture_on_commit_callbacks)

    assert response.status_code == 503, response.content
    assert WebhookDelivery.objects.count() == 0
    assert Lead.objects.count() == 0
    assert Page.objects.count() == 0 and Form.objects.count() == 0
    assert queue_size() == 0

    retried = post(body, django_capture_on_commit_callbacks)
    assert retried.status_code == 200, retried.content
    assert retried.json() == {"received": 2, "new_leads": 2}
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.PROCESSED
    leads = Lead.objects.order_by("leadgen_id")
    assert [lead.leadgen_id for lead in leads] == ["9001", "9002"]
    assert {lead.fetch_status for lead in leads} == {Lead.FetchStatus.PENDING}
    tasks = queued_tasks()
    assert [task["func"] for task in tasks] == ["leads.tasks.fetch_leads_by_leadgen_id"]
    assert sorted(tasks[0]["args"][0]) == ["9001", "9002"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_failed_commit_leaves_nothing_and_queues_nothing(
    monkeypatch, django_capture_on_commit_callbacks
):
    """The COMMIT itself fails, after every statement of the delivery ran: nothing it did,
    including the queued fetch, survives."""
    body = json.dumps(leadgen_body([[change_value(9003)]])).encode()
    seen: list[str] = []

    def commit_fails():
        raise OperationalError("server closed the connection unexpectedly (injected)")

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    monkeypatch.setattr(connection, "_commit", commit_fails)
    with connection.execute_wrapper(wrapper):
        response = post(body, django_capture_on_commit_callbacks)
    monkeypatch.undo()
    assert response.status_code == 503
    assert any("leads_lead" in sql for sql in seen)  # the lead insert had run
    assert not Lead.objects.exists() and not WebhookDelivery.objects.exists()
    assert queue_size() == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_broker_down_after_commit_leaves_the_leads_to_the_sweep(
    monkeypatch, django_capture_on_commit_callbacks
):
    """With a broker outside the database (Redis), the fetch is pushed after commit; when
    the broker is down just then, the delivery and its leads are stored and the sweep
    queues their fetch. (Forced here whichever broker the run uses.)"""
    from core.db import tasks as queue
    from leads import fetching

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unavailable (injected)")

    monkeypatch.setattr(queue, "_in_transaction_queue", lambda: False)
    monkeypatch.setattr(queue.PreparedTask, "_push", broker_down)
    body = json.dumps(leadgen_body([[change_value(9004)]])).encode()
    response = post(body, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    lead = Lead.objects.get()
    assert lead.leadgen_id == "9004" and lead.fetch_status == Lead.FetchStatus.PENDING
    assert queue_size() == 0
    Lead.objects.update(created_at=lead.created_at - dt.timedelta(minutes=5))
    assert fetching.due_lead_ids() == [lead.pk]
