"""The webhook's one write transaction: the same outcome on every database and broker."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from core.db import tasks
from core.db.inserts import PreparedInsert, PreparedInstance
from core.db.writes import write_transaction
from leads.models import Form, Lead, Page, WebhookDelivery
from tests.conftest import queue_size, queued_tasks

# Outside any transaction, as a webhook writes (each database's own fast path).
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _leads(page: Page, *leadgen_ids: str) -> PreparedInsert:
    return PreparedInsert(
        Lead,
        [{"leadgen_id": leadgen_id, "page_id": page.pk} for leadgen_id in leadgen_ids],
        key="leadgen_id",
        skip_existing=True,
    )


def _write(page: Page, *leadgen_ids: str) -> tuple[WebhookDelivery, dict]:
    delivery = WebhookDelivery(body=b"{}", headers={})
    task = tasks.prepare("leads.tasks.fetch_leads_by_leadgen_id", list(leadgen_ids))
    with write_transaction() as write:
        created = write.write_delivery(
            parent=PreparedInstance(delivery), children=_leads(page, *leadgen_ids),
            link="first_delivery_id", count="leads_created", tasks=[task],
        )  # fmt: skip
    return delivery, created


def test_new_children_are_returned_counted_and_linked_and_their_task_queued_once():
    page = Page.objects.create(page_id="1111")
    Lead.objects.create(leadgen_id="1", page=page)

    delivery, created = _write(page, "1", "2", "3")

    assert set(created) == {"2", "3"}
    assert created == dict(
        Lead.objects.filter(leadgen_id__in=["2", "3"]).values_list("leadgen_id", "pk")
    )
    stored = WebhookDelivery.objects.get()
    assert (delivery.pk, delivery.leads_created, stored.leads_created) == (stored.pk, 2, 2)
    assert set(Lead.objects.filter(pk__in=created.values()).values_list(
        "first_delivery_id", flat=True
    )) == {delivery.pk}  # fmt: skip
    assert Lead.objects.get(leadgen_id="1").first_delivery_id is None
    # The task names every child it was prepared with, whichever were new.
    assert [t["args"] for t in queued_tasks()] == [(["1", "2", "3"],)]


def test_no_task_is_queued_when_no_child_was_new():
    page = Page.objects.create(page_id="1111")
    Lead.objects.create(leadgen_id="1", page=page)

    delivery, created = _write(page, "1")

    assert created == {}
    assert WebhookDelivery.objects.get().leads_created == delivery.leads_created == 0
    assert queue_size() == 0


def test_an_exception_inside_rolls_back_every_row_and_queues_nothing():
    page = Page.objects.create(page_id="1111")
    task = tasks.prepare("leads.tasks.fetch_leads_by_leadgen_id", ["1"])
    ran = []
    with pytest.raises(ZeroDivisionError), write_transaction() as write:
        write.ensure_keys(Form, "form_id", {"2222": {"page_id": page.pk}})
        write.write_delivery(
            parent=PreparedInstance(WebhookDelivery(body=b"{}", headers={})),
            children=_leads(page, "1"), link="first_delivery_id", count="leads_created",
            tasks=[task],
        )  # fmt: skip
        write.on_commit(lambda: ran.append(1))
        1 / 0  # noqa: B018
    assert not Lead.objects.exists() and not WebhookDelivery.objects.exists()
    assert not Form.objects.exists()
    assert queue_size() == 0 and ran == []
    assert not connection.in_atomic_block


def test_ensure_keys_inserts_the_missing_rows_and_reads_the_others():
    known = Page.objects.create(page_id="1111")
    ran = []
    with write_transaction() as write:
        pks = write.ensure_keys(Page, "page_id", {"1111": {}, "2222": {"name": "New"}})
        write.on_commit(lambda: ran.append(pks))
        assert ran == []  # not before the commit
    new = Page.objects.get(page_id="2222")
    assert pks == {"1111": known.pk, "2222": new.pk}
    assert new.name == "New" and new.created_at is not None
    assert ran == [pks]


def test_a_delivery_without_children_is_stored_alone():
    delivery = WebhookDelivery(body=b"{}", headers={}, leads_created=0)
    with write_transaction() as write:
        created = write.write_delivery(
            parent=PreparedInstance(delivery), children=None, link="first_delivery_id",
            count="leads_created", tasks=[tasks.prepare("leads.tasks.fetch_leads", [1])],
        )  # fmt: skip
    assert created == {} and WebhookDelivery.objects.get().pk == delivery.pk
    assert queue_size() == 0


def test_inside_an_outer_transaction_the_write_is_part_of_it():
    page = Page.objects.create(page_id="1111")
    with pytest.raises(RuntimeError), transaction.atomic():
        delivery, created = _write(page, "1")
        assert set(created) == {"1"} and delivery.leads_created == 1
        raise RuntimeError("the caller failed")
    assert not Lead.objects.exists() and not WebhookDelivery.objects.exists()
    assert queue_size() == 0
