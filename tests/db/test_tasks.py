"""Tasks built ahead of time (`core.db.tasks.prepare`) are the packages django-q2 runs."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from core.db import tasks
from tests.conftest import queue_size, queued_tasks

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_prepared_task_is_the_package_async_task_would_queue():
    task = tasks.prepare("leads.tasks.fetch_leads", [4, 5])
    task.enqueue()
    (queued,) = queued_tasks()
    assert (queued["func"], queued["args"], queued["kwargs"]) == (
        "leads.tasks.fetch_leads",
        ([4, 5],),
        {},
    )
    assert len(queued["id"]) == 32 and queued["name"] == f"fetch_leads-{queued['id'][:8]}"
    assert queued["ack_failure"] is True  # Q_CLUSTER's ack_failures
    assert queued["started"] is not None


def test_a_task_queued_on_commit_is_rolled_back_with_the_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.enqueue_on_commit("leads.tasks.fetch_leads", [1])
        raise RuntimeError("the caller failed")
    assert queue_size() == 0
    with transaction.atomic():
        tasks.enqueue_on_commit("leads.tasks.fetch_leads", [1])
    assert [t["args"] for t in queued_tasks()] == [([1],)]


def test_a_broker_failure_on_enqueue_is_logged_not_raised(monkeypatch, caplog):
    def broker_down(self):
        raise ConnectionError("broker unavailable (injected)")

    monkeypatch.setattr(tasks.PreparedTask, "_push", broker_down)
    with caplog.at_level(logging.ERROR, logger="core.db.tasks"):
        tasks.enqueue("leads.tasks.fetch_leads", [1])
    assert "Could not queue leads.tasks.fetch_leads" in caplog.text
    assert queue_size() == 0
