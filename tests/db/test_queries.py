"""The layer's small reads and its on-commit helper."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.db import queries
from core.db.postgres import estimated_count
from leads.models import Page, PipelineStage

pytestmark = pytest.mark.django_db


def test_first_row_follows_the_models_ordering():
    PipelineStage.objects.update(position=50)
    last = PipelineStage.objects.order_by("pk").last()
    PipelineStage.objects.filter(pk=last.pk).update(position=1)
    assert queries.first_row(PipelineStage) == last
    assert PipelineStage.first() == PipelineStage.objects.order_by("position", "id").first()
    PipelineStage.objects.all().delete()
    assert queries.first_row(PipelineStage) is None


def test_set_after_compares_a_rows_time():
    from capi.models import SenderState

    state = SenderState.current()
    now = timezone.now()
    assert not queries.set_after(SenderState, pk=state.pk, field="send_queued_at", time=now)
    SenderState.objects.filter(pk=state.pk).update(send_queued_at=now)
    earlier = now - dt.timedelta(seconds=1)
    assert queries.set_after(SenderState, pk=state.pk, field="send_queued_at", time=earlier)
    assert not queries.set_after(SenderState, pk=state.pk, field="send_queued_at", time=now)


def test_ping_answers():
    queries.ping()


def test_on_commit_once_runs_a_callback_once_per_transaction(django_capture_on_commit_callbacks):
    calls = []

    def callback() -> None:
        calls.append(1)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        queries.on_commit_once(callback)
        queries.on_commit_once(callback)
        with pytest.raises(RuntimeError), transaction.atomic():
            queries.on_commit_once(callback)  # already waiting: nothing added
            raise RuntimeError
    assert (len(callbacks), calls) == (1, [1])


def test_on_commit_once_adds_it_again_after_a_savepoint_rollback_dropped_it(
    django_capture_on_commit_callbacks,
):
    calls = []

    def callback() -> None:
        calls.append(1)

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            queries.on_commit_once(callback)
            raise RuntimeError
        queries.on_commit_once(callback)
    assert calls == [1]


def test_the_row_estimate_is_for_unfiltered_postgresql_tables_only():
    Page.objects.create(page_id="1")
    assert estimated_count(Page.objects.filter(page_id="1")) is None
    if connection.vendor != "postgresql":
        assert estimated_count(Page.objects.all()) is None
