"""One list of Meta's Lead fields (core.meta) and Leadloop's lead columns named after them
(leads.lead_data): what the fetch, the bulk read and the import write is that list."""

from __future__ import annotations

from core import meta
from leads import bulk, lead_data
from leads.csv_import import storing
from leads.models import Lead
from sandbox.server import graph as sandbox_graph
from tests.conftest import load_fixture


def test_a_graph_answer_with_every_field_writes_exactly_the_lead_columns():
    node = {**load_fixture("graph_lead.json"), "partner_name": "P", "retailer_item_id": "R"}
    assert set(node) <= set(meta.LEAD_FIELDS)
    assert set(lead_data.lead_columns(node)) == set(lead_data.LEAD_COLUMNS)


def test_lead_columns_are_model_fields_named_after_lead_fields_where_meta_has_them():
    model_fields = {field.name for field in Lead._meta.concrete_fields}
    assert set(lead_data.LEAD_COLUMNS) <= model_fields
    extracted = {"graph_data", *lead_data.CONTACT_COLUMNS}
    assert set(lead_data.LEAD_COLUMNS) - extracted <= set(meta.LEAD_FIELDS)


def test_a_bulk_read_completes_and_an_import_writes_every_column_a_graph_answer_does():
    assert set(lead_data.LEAD_COLUMNS) <= set(bulk.COMPLETION_FIELDS)
    # An export has no disclaimers: an import leaves them as they are.
    assert set(lead_data.LEAD_COLUMNS) - set(storing.CSV_FIELDS) == {"custom_disclaimer_responses"}


def test_text_columns_are_cut_at_the_models_lengths():
    assert dict(lead_data.TEXT_COLUMNS) == {
        name: Lead._meta.get_field(name).max_length for name, _ in lead_data.TEXT_COLUMNS
    }
    assert dict(lead_data.TEXT_COLUMNS) == {
        "ad_name": 255,
        "adset_name": 255,
        "campaign_name": 255,
        "platform": 32,
        "partner_name": 255,
        "retailer_item_id": 255,
    }


def test_the_sandbox_knows_the_fields_the_client_asks_for():
    assert frozenset(meta.LEAD_FIELDS) == sandbox_graph.LEAD_FIELDS
