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


# --- The django-q2 task format this queue relies on ------------------------------------

# What differs by design between two packages of the same call: a fresh id, the task's
# name (ours says what ran; django-q2's is a random human hash) and the time.
PER_TASK = {"id", "name", "started"}


def test_our_package_has_the_keys_and_values_of_async_tasks_for_the_same_call():
    """Pins the django-q2 package format `prepare` copies: a django-q2 upgrade that adds,
    renames or drops a key fails here rather than in production."""
    from django_q.tasks import async_task

    tasks.prepare("leads.tasks.fetch_leads", [4, 5]).enqueue()
    async_task("leads.tasks.fetch_leads", [4, 5])
    ours, theirs = queued_tasks()

    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if k not in PER_TASK} == {
        k: v for k, v in theirs.items() if k not in PER_TASK
    }
    for package in (ours, theirs):
        assert isinstance(package["id"], str) and len(package["id"]) == 32
        assert type(package["started"]) is type(theirs["started"])
    assert ours["name"] == f"fetch_leads-{ours['id'][:8]}"


def test_a_prepared_package_runs_through_django_q2s_worker():
    """django-q2's own worker (its synchronous path: the worker and the monitor that
    records the result) takes our package as it takes its own."""
    from django_q.models import Task
    from django_q.tasks import _sync

    task = tasks.prepare("math.fsum", [1.5, 2.5])
    task_id = _sync(task.package)

    ran = Task.objects.get(id=task_id)
    assert (ran.func, ran.args, ran.success, ran.result) == ("math.fsum", ([1.5, 2.5],), True, 4.0)


def test_the_orm_brokers_row_is_the_one_django_q2_writes(settings):
    """With the ORM broker, the row `prepare` writes (inside the caller's transaction) has
    django-q2's queue key and a lock time that makes it due at once."""
    if settings.REDIS_URL:
        assert tasks.prepare("leads.tasks.fetch_leads", [1]).row is None  # pushed instead
        return
    from django_q.models import OrmQ
    from django_q.tasks import async_task

    tasks.prepare("leads.tasks.fetch_leads", [1]).enqueue()
    async_task("leads.tasks.fetch_leads", [1])
    ours, theirs = OrmQ.objects.order_by("pk")
    assert ours.key == theirs.key == settings.Q_CLUSTER["name"]
    assert ours.lock <= theirs.lock
    assert ours.task["args"] == theirs.task["args"] == ([1],)
