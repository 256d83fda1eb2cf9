"""The webhook's cache of page and form keys (`leads.keys.KeyCache`)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.db import transaction

from leads.keys import KEYS, KeyCache
from leads.models import Form, Lead, Page
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body


def test_it_gives_only_what_it_was_told():
    cache = KeyCache()
    cache.remember(Page, {"1111": 7})
    assert cache.get(Page, ["1111", "2222"]) == {"1111": 7}
    assert cache.get(Form, ["1111"]) == {}  # keyed by model too


def test_forget_drops_the_rows_named_or_every_row():
    cache = KeyCache()
    cache.remember(Page, {"1": 1, "2": 2})
    cache.remember(Form, {"1": 3})
    cache.forget(Page, ["1"])
    assert (cache.get(Page, ["1", "2"]), cache.get(Form, ["1"])) == ({"2": 2}, {"1": 3})
    cache.forget()
    assert len(cache) == 0


def test_it_holds_at_most_its_limit_and_then_starts_again():
    cache = KeyCache(limit=3)
    cache.remember(Page, {"1": 1, "2": 2, "3": 3})
    assert len(cache) == 3
    cache.remember(Page, {"4": 4})
    assert (len(cache), cache.get(Page, ["1", "4"])) == (1, {"4": 4})


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_keys_are_remembered_only_when_their_transaction_commits():
    cache = KeyCache()
    with pytest.raises(RuntimeError), transaction.atomic():
        cache.remember_after_commit(Page, {"1": 1})
        raise RuntimeError("rolled back")
    assert cache.get(Page, ["1"]) == {}
    with transaction.atomic():
        cache.remember_after_commit(Page, {"1": 1})
        assert cache.get(Page, ["1"]) == {}  # not before the commit
    assert cache.get(Page, ["1"]) == {"1": 1}


@pytest.mark.django_db
def test_a_deleted_page_or_form_is_forgotten_at_once():
    page = Page.objects.create(page_id="1111")
    form = Form.objects.create(form_id="2222", page=page)
    KEYS.remember(Page, {"1111": page.pk})
    KEYS.remember(Form, {"2222": form.pk})
    Form.objects.all().delete()  # a queryset delete, as the admin's bulk action does
    assert (KEYS.get(Page, ["1111"]), KEYS.get(Form, ["2222"])) == ({"1111": page.pk}, {})
    page.delete()
    assert KEYS.get(Page, ["1111"]) == {}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_webhook_after_a_page_deleted_here_is_stored_at_once(client):
    """Deleted in this process: no failed COMMIT, no 503 (another process's deletion is
    test_webhook.py::test_a_remembered_page_deleted_since_costs_one_retry)."""

    def deliver(lead: int):
        body = json.dumps(leadgen_body([[change_value(lead)]])).encode()
        return client.post(
            "/webhooks/meta/", body, content_type="application/json",
            HTTP_X_HUB_SIGNATURE_256=sign(body, settings.META_APP_SECRET),
        )  # fmt: skip

    assert deliver(1).status_code == 200
    assert len(KEYS) == 2  # the page and the form, remembered after the commit
    Lead.objects.all().delete()
    Form.objects.all().delete()
    Page.objects.all().delete()
    response = deliver(2)
    assert response.status_code == 200
    lead = Lead.objects.get()
    assert (lead.leadgen_id, lead.page.page_id, lead.form.form_id) == ("2", "1111", "2222")
