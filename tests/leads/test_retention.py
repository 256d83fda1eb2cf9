"""The scheduled prune of webhook deliveries: verified ones after WEBHOOK_RETENTION_DAYS,
badly signed ones after WEBHOOK_INVALID_RETENTION_DAYS, failed and malformed ones never;
the leads they brought stay."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from leads import retention, schedules, tasks
from leads.models import Lead, Page, WebhookDelivery

pytestmark = pytest.mark.django_db

Status = WebhookDelivery.Status


def delivery(status: str, *, age_days: float, processed_days: float | None = None) -> int:
    """A stored delivery received `age_days` ago (and processed `processed_days` ago, by
    default when it was received, for a status that is processed at all)."""
    now = timezone.now()
    received = now - dt.timedelta(days=age_days)
    if processed_days is None and status != Status.INVALID_SIGNATURE:
        processed_days = age_days
    row = WebhookDelivery.objects.create(body=b"{}", headers={}, status=status)
    WebhookDelivery.objects.filter(pk=row.pk).update(
        received_at=received,
        processed_at=None if processed_days is None else now - dt.timedelta(days=processed_days),
    )
    return row.pk


def remaining() -> set[int]:
    return set(WebhookDelivery.objects.values_list("pk", flat=True))


def test_prune_keeps_what_is_recent_or_unhandled_and_leaves_leads(settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    settings.WEBHOOK_INVALID_RETENTION_DAYS = 7
    old_processed = delivery(Status.PROCESSED, age_days=31)
    old_ignored = delivery(Status.IGNORED, age_days=40)
    old_invalid = delivery(Status.INVALID_SIGNATURE, age_days=8)
    kept = {
        delivery(Status.PROCESSED, age_days=29),
        # Received long ago, reprocessed (after a failure) yesterday.
        delivery(Status.PROCESSED, age_days=60, processed_days=1),
        delivery(Status.FAILED, age_days=400),
        delivery(Status.MALFORMED, age_days=400),
        delivery(Status.RECEIVED, age_days=400),
        delivery(Status.INVALID_SIGNATURE, age_days=6),
    }
    page = Page.objects.create(page_id="1111")
    lead = Lead.objects.create(leadgen_id="42", page=page, first_delivery_id=old_processed)
    other = Lead.objects.create(leadgen_id="43", page=page, first_delivery_id=min(kept))

    assert retention.prune_deliveries() == 3

    assert remaining() == kept
    assert not WebhookDelivery.objects.filter(
        pk__in=[old_processed, old_ignored, old_invalid]
    ).exists()
    lead.refresh_from_db()
    other.refresh_from_db()
    assert (lead.leadgen_id, lead.page_id, lead.first_delivery_id) == ("42", page.pk, None)
    assert other.first_delivery_id == min(kept)
    assert Lead.objects.count() == 2


def test_prune_deletes_in_bounded_batches(settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    old = {delivery(Status.PROCESSED, age_days=31 + n) for n in range(5)}
    recent = delivery(Status.PROCESSED, age_days=1)
    with CaptureQueriesContext(connection) as queries:
        assert retention.prune_deliveries(batch_size=2) == 5
    table = 'DELETE FROM "leads_webhookdelivery"'
    deletes = [q["sql"] for q in queries if q["sql"].startswith(table)]
    assert len(deletes) == 3  # 2 + 2 + 1
    assert remaining() == {recent}
    assert not old & remaining()


def test_prune_stops_at_its_deadline(settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    old = delivery(Status.PROCESSED, age_days=31)
    assert retention.prune_deliveries(deadline=time.monotonic() - 1) == 0
    assert remaining() == {old}


def test_zero_days_keeps_for_ever(settings):
    settings.WEBHOOK_RETENTION_DAYS = 0
    settings.WEBHOOK_INVALID_RETENTION_DAYS = 0
    kept = {
        delivery(Status.PROCESSED, age_days=3000),
        delivery(Status.INVALID_SIGNATURE, age_days=3000),
    }
    assert retention.prune_deliveries() == 0
    assert remaining() == kept


def test_each_retention_is_its_own(settings):
    settings.WEBHOOK_RETENTION_DAYS = 0
    settings.WEBHOOK_INVALID_RETENTION_DAYS = 7
    processed = delivery(Status.PROCESSED, age_days=3000)
    delivery(Status.INVALID_SIGNATURE, age_days=8)
    assert retention.prune_deliveries() == 1
    assert remaining() == {processed}


def test_the_prune_is_scheduled_hourly_and_its_task_prunes(settings):
    schedules.ensure_schedules()
    schedule = Schedule.objects.get(name="leads: prune webhook deliveries")
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "leads.tasks.prune_webhook_deliveries",
        Schedule.HOURLY,
        -1,
    )
    settings.WEBHOOK_RETENTION_DAYS = 30
    delivery(Status.PROCESSED, age_days=31)
    kept = delivery(Status.FAILED, age_days=31)
    assert tasks.prune_webhook_deliveries() == {"pruned": 1}
    assert remaining() == {kept}
