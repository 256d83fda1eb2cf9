"""The hot paths' JSON (orjson) gives the standard library's data, and falls back to it."""

from __future__ import annotations

import json

import pytest

from core.db import fastjson
from leads.models import Lead, Page

pytestmark = pytest.mark.django_db

SAMPLE = {
    "field_data": [{"name": "full_name", "values": ["Jürgen Müller 李"]}],
    "nested": {"n": 1.5, "big": 12345678901234567, "flag": True, "none": None, "e": "\u00e4/"},
}


def test_text_and_back_give_the_same_data_as_the_standard_library():
    assert json.loads(fastjson.dumps(SAMPLE)) == SAMPLE
    assert fastjson.loads(json.dumps(SAMPLE).encode()) == SAMPLE
    assert fastjson.loads(json.dumps(SAMPLE)) == SAMPLE


def test_what_orjson_refuses_goes_to_the_standard_library():
    huge = 2**70  # beyond 64 bits
    assert fastjson.loads(b'{"id": 1180591620717411303424}') == {"id": huge}
    assert json.loads(fastjson.dumps({"id": huge})) == {"id": huge}
    assert fastjson.loads(b"[NaN]")[0] != fastjson.loads(b"[NaN]")[0]  # NaN, as json reads it
    assert json.loads(fastjson.dumps({1: "a"})) == {"1": "a"}  # keys become text, as in json
    with pytest.raises(ValueError):
        fastjson.loads(b"{not json")


def test_json_columns_written_by_the_hot_path_read_back_exactly():
    from core.db import inserts

    page = Page.objects.create(page_id="1111")
    graph = {"id": "7", "vehicle": {"make": "Citroën", "year": 2024}, "post": None}
    inserts.insert_rows(
        Lead,
        [
            {
                "leadgen_id": "7",
                "page_id": page.pk,
                "graph_data": graph,
                "field_data": SAMPLE["field_data"],
            }
        ],
        key="leadgen_id",
    )
    lead = Lead.objects.get(leadgen_id="7")
    assert (lead.graph_data, lead.field_data) == (graph, SAMPLE["field_data"])
    assert Lead.objects.filter(graph_data__vehicle__make="Citroën").exists()
