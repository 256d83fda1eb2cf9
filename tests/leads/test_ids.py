"""One rule for a usable Meta id (core.ids), and every path that takes an id agrees on it:
the webhook, the bulk read, the lead fetch, the CSV import, the Conversions API's lead_id
and the sandbox. Found on a fresh clone: the webhook took `18446744073709551616` (2**64)
while the bulk read, whose JSON parser reads it as a float, skipped it, so the lead the
webhook announced was never completed by reconciliation."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from hypothesis import example, given
from hypothesis import strategies as st

from capi.user_data import build_user_data
from core.db import fastjson
from core.ids import MAX_META_ID, meta_id, meta_id_number
from leads import bulk, csv_import
from leads.models import Form, Lead, Page
from leads.webhooks import leadgen_changes, parse_payload
from sandbox import MetaSandbox
from tests.conftest import change_value, graph_lead, leadgen_body

pytestmark = pytest.mark.django_db

BEYOND_64_BITS = 18446744073709551616  # 2**64: the id hypothesis found


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1234567890123456, "1234567890123456"),
        ("1234567890123456", "1234567890123456"),
        (" 1234567890123456 ", "1234567890123456"),
        ("0001234567890123456", "1234567890123456"),  # one id, however it is written
        (1, "1"),
        (2**63 - 1, "9223372036854775807"),  # the largest
        ("9223372036854775807", "9223372036854775807"),
        (2**63, None),
        ("9223372036854775808", None),
        (BEYOND_64_BITS, None),
        (str(BEYOND_64_BITS), None),
        (float(BEYOND_64_BITS), None),  # what orjson makes of it
        (1234567890123456.0, None),  # floats lose digits: never an id
        (0, None),
        ("0", None),
        (-5, None),
        ("-5", None),
        ("+5", None),
        ("1e5", None),
        ("12 34", None),
        ("١٢٣", None),  # non-ASCII digits
        ("0" * 40 + "1", None),
        ("", None),
        (None, None),
        (True, None),
        (["1"], None),
    ],
)
def test_the_rule(value, expected):
    assert meta_id(value) == expected
    assert meta_id_number(value) == (int(expected) if expected else None)


def _webhook_ids(raw_id: str) -> list[str]:
    """The leadgen ids the webhook's parser takes from a delivery whose id is `raw_id`
    (JSON text: a number, or a string in quotes), parsed as the webhook parses it."""
    body = json.dumps(leadgen_body([[change_value(0)]]))
    body = body.replace('"leadgen_id": 0', f'"leadgen_id": {raw_id}')
    changes, _ = leadgen_changes(parse_payload(body.encode()))
    return [change.leadgen_id for change in changes]


def _bulk_ids(raw_id: str) -> list[str]:
    """The leadgen ids the bulk read stores from a page whose row has `raw_id` as its id,
    parsed as the bulk read parses Graph's answer (rolled back)."""
    text = '{"data": [{"id": %s, "form_id": "2222"}]}' % raw_id  # noqa: UP031 - raw JSON
    with transaction.atomic():
        form = Form.objects.create(
            form_id="2222", page=Page.objects.create(page_id="1111", name="Acme")
        )
        bulk.store_page(fastjson.loads_storable(text.encode())["data"], form=form)
        ids = list(Lead.objects.values_list("leadgen_id", flat=True))
        transaction.set_rollback(True)
    return ids


def _csv_ids(text: str) -> list[str]:
    header = ["id", "created_time", "form_id"]
    row = csv_import.parse_row(
        2, [f"l:{text}", "2025-01-01T10:00:00+0000", "f:2222"], header, default_form_id=None
    )
    return [row.leadgen_id] if isinstance(row, csv_import.ParsedRow) else []


IDS = st.one_of(
    st.integers(min_value=-5, max_value=2**70),
    st.integers(min_value=2**63 - 3, max_value=2**63 + 3),
    st.integers(min_value=2**64 - 3, max_value=2**64 + 3),
    st.from_regex(r"\A0{0,3}[0-9]{1,21}\Z"),
    st.text(max_size=6),
)


@given(value=IDS)
@example(value=BEYOND_64_BITS)
@example(value=str(BEYOND_64_BITS))
@example(value=2**64 - 1)  # orjson's largest exact integer, beyond our bound
@example(value=MAX_META_ID)
@example(value="007")
def test_webhook_bulk_read_and_csv_import_take_the_same_ids(value):
    """Whatever the id, as a JSON number or a JSON string: the webhook takes it if and only
    if the bulk read and the CSV import do, and all three store it the same way."""
    expected = [meta_id(value)] if meta_id(value) else []
    raw = json.dumps(value)
    assert _webhook_ids(raw) == expected
    assert _bulk_ids(raw) == expected
    if isinstance(value, int) or value.isascii():
        assert _csv_ids(str(value).strip()) == expected


@pytest.mark.parametrize(
    "leadgen_id", [1234567890123456, "1234567890123456", MAX_META_ID, "00" + str(MAX_META_ID)]
)
def test_a_lead_announced_by_webhook_is_completed_by_the_bulk_read(post_webhook, leadgen_id):
    """The regression: reconciliation completes what the webhook announced (its fetch
    failed), whichever way each of them wrote the id."""
    post_webhook(leadgen_body([[change_value(leadgen_id, form_id=2222)]]))
    announced = Lead.objects.get()
    Lead.objects.filter(pk=announced.pk).update(fetch_status=Lead.FetchStatus.FAILED)
    canonical = str(int(leadgen_id))
    row = json.dumps({"data": [graph_lead(canonical, form_id="2222")]})
    row = row.replace(f'"id": "{canonical}"', f'"id": {int(leadgen_id)}')  # a JSON number

    counts = bulk.store_page(fastjson.loads_storable(row.encode())["data"], form=announced.form)

    assert (counts.created, counts.completed, counts.skipped) == (0, 1, 0)
    lead = Lead.objects.get()
    assert (lead.pk, lead.leadgen_id) == (announced.pk, canonical)
    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert build_user_data(lead)["lead_id"] == int(leadgen_id)


@pytest.mark.parametrize("leadgen_id", [BEYOND_64_BITS, str(BEYOND_64_BITS), 2**63])
def test_an_id_beyond_the_rule_is_refused_by_webhook_and_bulk_read(post_webhook, leadgen_id):
    response = post_webhook(leadgen_body([[change_value(leadgen_id)]]))
    assert response.status_code == 200
    assert Lead.objects.count() == 0  # nothing announced that reconciliation cannot find

    row = '{"data": [{"id": %s, "form_id": "2222"}]}' % json.dumps(leadgen_id)  # noqa: UP031
    page = Page.objects.create(page_id="1111", name="Acme")
    form = Form.objects.create(form_id="2222", page=page, name="Spring")
    counts = bulk.store_page(fastjson.loads_storable(row.encode())["data"], form=form)
    assert (counts.rows, counts.skipped, Lead.objects.count()) == (1, 1, 0)


def test_ad_ids_from_graph_follow_the_rule_too():
    page = Page.objects.create(page_id="1111", name="Acme")
    form = Form.objects.create(form_id="2222", page=page, name="Spring")
    rows = [
        graph_lead("1001", ad_id=3333, adset_id="0044", campaign_id="not an id"),
        graph_lead("1002", ad_id=BEYOND_64_BITS, adset_id=None, campaign_id=5.0),
    ]
    bulk.store_page(fastjson.loads_storable(json.dumps({"data": rows}).encode())["data"], form=form)
    leads = {lead.leadgen_id: lead for lead in Lead.objects.all()}
    first, second = leads["1001"], leads["1002"]
    assert (first.ad_id, first.adset_id, first.campaign_id) == ("3333", "44", "")
    assert (second.ad_id, second.adset_id, second.campaign_id) == ("", "", "")
    assert second.graph_data["campaign_id"] == 5.0  # as Meta sent it, for inspection


def test_the_sandbox_mints_and_takes_only_ids_leadloop_takes():
    sandbox = MetaSandbox()
    sandbox.add_page("0111", name="Acme")
    form = sandbox.add_form("222", page_id="111")
    assert form["page_id"] == "111"
    lead = sandbox.add_lead({"form_id": "222", "id": "0077", "ad_id": 5})
    assert (lead["id"], lead["ad_id"]) == ("77", "5")
    for bad in (str(BEYOND_64_BITS), "page-1", "-1"):
        with pytest.raises(ValueError, match="must be a Meta id"):
            sandbox.add_page(bad)
    with pytest.raises(ValueError, match="must be a Meta id"):
        sandbox.add_lead({"form_id": "222", "id": BEYOND_64_BITS})
