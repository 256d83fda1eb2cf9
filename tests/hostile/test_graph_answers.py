"""Hostile Graph answers: what a lead's submitter or a broken source can put in the JSON
Meta returns is stored safely (or refused with a clear error), on every database, by the
webhook's fetch and by the bulk read alike, and shown escaped; it never crashes a worker.

PostgreSQL refuses NUL in text and jsonb, and neither database takes an unpaired UTF-16
surrogate (which JSON can spell as `\\ud800`): both become U+FFFD. Nesting deeper than
`lead_data.MAX_DEPTH` is cut there; deeper than the parsers read is a failed fetch.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from django.core.cache import cache
from django.db import transaction
from django.test import override_settings
from hypothesis import example, given
from hypothesis import strategies as st

from core.db import fastjson
from core.ids import meta_id
from leads import bulk, fetching
from leads.graph import GraphError
from leads.lead_data import MAX_DEPTH, TOO_DEEP, cut_deep
from leads.models import Form, Lead, Page
from leads.pages import sync_forms
from tests.conftest import GRAPH, connected_page, graph_lead

pytestmark = pytest.mark.django_db

TOKEN = "hostile-page-token"
LEAD_ID = "1234567890123456"
NUL, SURROGATE = "\u0000", "\ud800"
SQL_AND_HTML = "<script>alert('x')</script>'; DROP TABLE leads_lead; --"


@pytest.fixture
def page() -> Page:
    return connected_page(token=TOKEN)


@contextlib.contextmanager
def one_example() -> Iterator[responses.RequestsMock]:
    """A hypothesis example's world: its own transaction, rolled back; Graph mocked; no
    throttling pause left in the cache for the next example."""
    cache.clear()
    try:
        with (
            transaction.atomic(),
            override_settings(META_GRAPH_URL=GRAPH.rsplit("/", 1)[0]),
            responses.RequestsMock(assert_all_requests_are_fired=False) as graph,
        ):
            yield graph
            transaction.set_rollback(True)
    finally:
        cache.clear()


def nested(depth: int) -> Any:
    """Lists and objects in turn, `depth` levels of them."""
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def depth_of(value: Any) -> int:
    """Levels of lists and objects (iterative: the values tested nest deep)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            items = node.values() if isinstance(node, dict) else node
            pending.extend((item, level + 1) for item in items)
    return deepest


def fetch(mocked_graph, page: Page, body: str | bytes) -> Lead:
    mocked_graph.get(f"{GRAPH}/{LEAD_ID}", body=body, content_type="application/json")
    lead = Lead.objects.create(leadgen_id=LEAD_ID, page=page)
    fetching.fetch_lead(lead.pk)
    return Lead.objects.get(pk=lead.pk)


def unstorable_lead(leadgen_id: str = LEAD_ID) -> dict[str, Any]:
    """A Lead node with NUL and lone surrogates in answers, keys and ad fields."""
    return graph_lead(
        leadgen_id,
        ad_name=f"Promo{NUL}{SURROGATE}",
        field_data=[
            {"name": "full_name", "values": [f"Ana{NUL} Ruiz{SURROGATE}"]},
            {"name": "email", "values": [f"ana{NUL}@example.com"]},
            {"name": f"q{NUL}{SURROGATE}", "values": [SQL_AND_HTML, f"\udfff{SURROGATE}"]},
        ],
        post_submission_check_result={f"s{NUL}": f"v{SURROGATE}"},
    )


def as_json(value: Any) -> str:
    # The standard library writes lone surrogates and NUL as escapes, as Meta may.
    return json.dumps(value)


# --- The webhook's fetch -------------------------------------------------------------------


def test_nul_and_lone_surrogates_are_stored_as_replacement_characters(page, mocked_graph):
    lead = fetch(mocked_graph, page, as_json(unstorable_lead()))

    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.full_name == "Ana\ufffd Ruiz\ufffd"
    assert lead.email == "ana\ufffd@example.com"
    assert lead.ad_name == "Promo\ufffd\ufffd"
    assert lead.field_data[2] == {
        "name": "q\ufffd\ufffd",
        "values": [SQL_AND_HTML, "\ufffd\ufffd"],
    }
    assert lead.graph_data["post_submission_check_result"] == {"s\ufffd": "v\ufffd"}


def test_an_answer_without_them_is_kept_exactly(page, mocked_graph):
    sent = graph_lead(
        LEAD_ID, field_data=[{"name": "note", "values": ["a\\u0000 \u00e9 \U0001f600"]}]
    )
    lead = fetch(mocked_graph, page, as_json(sent))
    assert lead.field_data == [{"name": "note", "values": ["a\\u0000 \u00e9 \U0001f600"]}]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 900])
def test_nesting_deeper_than_the_limit_is_cut_and_the_lead_shown(
    page, mocked_graph, depth, admin_client
):
    lead = fetch(mocked_graph, page, as_json(graph_lead(LEAD_ID, extra=nested(depth))))

    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.full_name == "Jürgen Müller"
    assert depth_of(lead.graph_data) == MAX_DEPTH
    assert TOO_DEEP in json.dumps(lead.graph_data)
    for url in (f"/leads/{lead.pk}/", f"/admin/leads/lead/{lead.pk}/change/"):
        assert admin_client.get(url).status_code == 200


def test_nesting_deeper_than_the_parsers_read_fails_the_fetch_visibly(page, mocked_graph):
    body = as_json(graph_lead(LEAD_ID))[:-1] + ', "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    lead = fetch(mocked_graph, page, body)
    assert lead.fetch_status == Lead.FetchStatus.FAILED
    assert "not a JSON object" in lead.fetch_error


def test_a_huge_field_data_is_stored_whole_and_shown_escaped(page, mocked_graph, admin_client):
    answers = [
        {"name": f"question_{i}", "values": [f"{SQL_AND_HTML} {i} " + "x" * 1000]}
        for i in range(2000)
    ]
    answers.insert(0, {"name": "full_name", "values": [SQL_AND_HTML + "y" * 1000]})
    lead = fetch(mocked_graph, page, as_json(graph_lead(LEAD_ID, field_data=answers)))

    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.field_data == answers  # about 2 MB, as sent
    assert lead.full_name == (SQL_AND_HTML + "y" * 1000)[:255]  # the column's length
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    for url in (f"/leads/{lead.pk}/", "/leads/", "/board/", f"/admin/leads/lead/{lead.pk}/change/"):
        html = admin_client.get(url).content.decode()
        assert escaped in html
        assert SQL_AND_HTML not in html
    assert Lead.objects.count() == 1  # nothing was run as SQL


# --- The bulk read -------------------------------------------------------------------------


def test_a_bulk_page_of_hostile_rows_is_stored_whole(page, mocked_graph, settings):
    settings.META_GRAPH_URL = GRAPH.rsplit("/", 1)[0]
    form = Form.objects.create(form_id="2222", page=page, name="Hostile form")
    # One lead was announced by a webhook and its fetch failed: the read completes it
    # (through the ORM, the other write path).
    Lead.objects.create(leadgen_id="1000000000000002", page=page, fetch_status="failed")
    rows = [
        unstorable_lead("1000000000000001"),
        graph_lead("1000000000000002", extra=nested(300)),
        graph_lead("1000000000000003", extra=nested(300)),
        graph_lead("1000000000000004", field_data=[{"name": "x", "values": [SQL_AND_HTML]}]),
    ]
    mocked_graph.get(f"{GRAPH}/{form.form_id}/leads", body=as_json({"data": rows}))

    result = bulk.read_form(form, token=TOKEN)

    assert result.ok, result.error
    assert (result.created, result.completed) == (3, 1)
    leads = {lead.leadgen_id: lead for lead in Lead.objects.all()}
    assert leads["1000000000000001"].full_name == "Ana\ufffd Ruiz\ufffd"
    for deep in ("1000000000000002", "1000000000000003"):
        assert leads[deep].fetch_status == Lead.FetchStatus.COMPLETE
        assert depth_of(leads[deep].graph_data) == MAX_DEPTH
    assert leads["1000000000000004"].field_data == [{"name": "x", "values": [SQL_AND_HTML]}]


# --- The pieces ----------------------------------------------------------------------------


def test_loads_storable_leaves_clean_json_alone_and_replaces_only_what_cannot_be_stored():
    clean = b'{"a": ["\\u00e9", "\\ud83d\\ude00", 1, null], "\\\\u0000": "\\\\u0000"}'
    assert fastjson.loads_storable(clean) == json.loads(clean)
    assert fastjson.loads_storable(b'{"a\\u0000": ["\\u0000", {"b": "\\udc00x"}]}') == {
        "a\ufffd": ["\ufffd", {"b": "\ufffdx"}]
    }
    # The standard library's path (an integer beyond 64 bits sends it there).
    assert fastjson.loads_storable(b'[1180591620717411303424, "\\ud800"]') == [2**70, "\ufffd"]


def test_cut_deep_keeps_order_and_shallow_values():
    value = {"b": [1, {"c": [2, [3]]}, "s"], "a": None}
    assert cut_deep(value) == value
    assert list(cut_deep(value)) == ["b", "a"]
    assert cut_deep(value, limit=3) == {"b": [1, {"c": TOO_DEEP}, "s"], "a": None}
    assert depth_of(cut_deep(nested(100_000))) == MAX_DEPTH


# --- Any JSON at all ----------------------------------------------------------------------

JSON_TEXT = st.text(st.characters(codec=None, categories=None), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | JSON_TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(JSON_TEXT, children, max_size=4)
    ),
    max_leaves=20,
)
LEAD_KEYS = st.sampled_from(
    ["created_time", "ad_id", "ad_name", "form_id", "is_organic", "platform", "field_data",
     "custom_disclaimer_responses", "partner_name", "campaign_name"]
)  # fmt: skip


@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"id": st.one_of(st.integers(1, 10**16).map(str), JSON_VALUES)},
            optional={"field_data": JSON_VALUES},
        ).flatmap(
            lambda row: st.dictionaries(LEAD_KEYS, JSON_VALUES, max_size=5).map(
                lambda extra: {**extra, **row}
            )
        ),
        max_size=5,
    )
)
# Found by this test: a null answer list (NOT NULL columns) and numbers that are not
# finite beside an integer beyond 64 bits (written back as Infinity, which no JSON takes).
@example(rows=[{"id": "1", "field_data": None, "custom_disclaimer_responses": None}])
@example(rows=[{"id": "1", "ad_id": float("inf"), "created_time": -(2**70)}])
# Found on a fresh clone: an id beyond 64 bits, which the webhook took and the bulk read
# (orjson reads it as a float) skipped; and the bounds of the one id rule (core.ids).
@example(rows=[{"id": 18446744073709551616}])
@example(rows=[{"id": 2**63 - 1}, {"id": 2**63}, {"id": "0" + str(2**63 - 1)}])
def test_any_json_rows_store_or_skip_and_never_raise(rows):
    """Whatever JSON Meta's bulk-read page holds, each row with a usable id is stored."""
    with one_example():
        page = Page.objects.create(page_id="1111", name="Acme")
        form = Form.objects.create(form_id="2222", page=page, name="Any")
        # Which ids are usable is meta_id's rule (tested with the webhook's hostile ids).
        ids = sorted({meta_id(row["id"]) for row in rows} - {None})
        # The first was announced by a webhook and its fetch failed: the page completes it
        # through the ORM, the bulk read's other way of writing a lead.
        if ids:
            Lead.objects.create(leadgen_id=ids[0], page=page, fetch_status="failed")
        parsed = fastjson.loads_storable(json.dumps({"data": rows}).encode())
        counts = bulk.store_page(parsed["data"], form=form)
        assert counts.created + counts.completed == len(ids) == Lead.objects.count()
        assert set(Lead.objects.values_list("fetch_status", flat=True)) <= {"complete"}
        assert counts.rows == len(rows)


@given(data=JSON_VALUES)
@example(data={"id": LEAD_ID, "field_data": None, "graph": [float("nan"), 2**70]})
@example(data={"id": LEAD_ID, "form_id": {"a": "b" * 100}})  # not a form id: no form
def test_any_json_answer_to_a_lead_fetch_is_stored(data):
    """The webhook's fetch: whatever object Graph answers with is stored on the lead."""
    data = data if isinstance(data, dict) else {"id": LEAD_ID, "field_data": data}
    with one_example():
        page = Page.objects.create(page_id="1111", name="Acme")
        lead = Lead.objects.create(leadgen_id=LEAD_ID, page=page)
        claimed = fetching.claim(lead.pk)
        assert claimed is not None
        answer = fastjson.loads_storable(json.dumps(data).encode())
        assert fetching.complete(claimed, answer)
        lead.refresh_from_db()
        assert lead.fetch_status == Lead.FetchStatus.COMPLETE


ANSWER_STATUSES = st.sampled_from([200, 200, 201, 301, 400, 401, 403, 404, 429, 500, 503])
ERROR_ANSWERS = st.fixed_dictionaries(
    {},
    optional={
        "code": st.one_of(st.sampled_from([1, 2, 4, 10, 17, 100, 190, 200, 613]), JSON_VALUES),
        "error_subcode": JSON_VALUES,
        "message": JSON_VALUES,
        "is_transient": JSON_VALUES,
        "fbtrace_id": JSON_VALUES,
    },
).map(lambda error: {"error": error})


@given(status=ANSWER_STATUSES, body=st.one_of(ERROR_ANSWERS, JSON_VALUES, st.binary(max_size=40)))
def test_any_answer_to_a_lead_fetch_leaves_the_lead_in_a_known_state(status, body):
    """Whatever status and body Graph (or a proxy before it) answers with, the fetch ends
    and the lead says what happens next; it is never left claimed."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with one_example() as graph:
        graph.get(f"{GRAPH}/{LEAD_ID}", body=raw, status=status)
        lead = Lead.objects.create(leadgen_id=LEAD_ID, page=connected_page(token=TOKEN))
        fetching.fetch_lead(lead.pk, sleep=lambda seconds: None)
        lead.refresh_from_db()
        Status = Lead.FetchStatus
        assert lead.fetch_status in (Status.COMPLETE, Status.PENDING, Status.FAILED, Status.PARKED)
        if lead.fetch_status == Status.PENDING:
            assert lead.fetch_after is not None and lead.fetch_error
        elif lead.fetch_status != Status.COMPLETE:
            assert lead.fetch_error


NEXT_LINKS = st.one_of(
    JSON_VALUES,
    st.sampled_from(
        [
            f"{GRAPH}/2222/leads?after=x",
            f"{GRAPH}/2222/leads?after=y&access_token=leaked",
            "https://evil.test/v24.0/2222/leads",
            "http://[::1",
            "//graph.test/x",
            "",
        ]
    ),
    st.text(max_size=30),
)
PAGES = st.fixed_dictionaries(
    {},
    optional={
        "data": st.one_of(
            JSON_VALUES, st.lists(st.builds(graph_lead, st.just("1000000000000009")))
        ),
        "paging": st.one_of(JSON_VALUES, st.fixed_dictionaries({"next": NEXT_LINKS})),
    },
)


@given(first=st.one_of(PAGES, JSON_VALUES), then=st.one_of(PAGES, JSON_VALUES))
@example(first={"data": [], "paging": {"next": 5}}, then={})
@example(first={"data": [], "paging": {"next": "http://[::1"}}, then={})
def test_any_bulk_read_answer_ends_the_run_with_a_status(first, then):
    """Whatever pages Graph answers a bulk read with, the run ends with a status and the
    leads it could read stored; a next link is followed only within the Graph API."""
    with one_example() as graph:
        graph.get(re.compile(rf"{re.escape(GRAPH)}/2222/leads\?(?!after)"), json=first)
        graph.get(re.compile(rf"{re.escape(GRAPH)}/2222/leads\?after="), json=then)
        page = Page.objects.create(page_id="1111", name="Acme")
        form = Form.objects.create(form_id="2222", page=page, name="Any")
        result = bulk.read_form(form, token=TOKEN, sleep=lambda seconds: None)
        assert result.status in bulk.RunStatus
        assert result.ok or result.error
        assert all("evil.test" not in call.request.url for call in graph.calls)
        assert all("leaked" not in call.request.url for call in graph.calls)


FORM_ROWS = st.fixed_dictionaries(
    {"id": st.one_of(st.just("3333"), JSON_VALUES)},
    optional=dict.fromkeys(("name", "status", "locale", "questions", "created_time"), JSON_VALUES),
)


@given(
    answer=st.one_of(
        st.fixed_dictionaries({"data": st.one_of(st.lists(FORM_ROWS), JSON_VALUES)}), JSON_VALUES
    )
)
@example(answer={"data": "forms"})
@example(answer={"data": [{"id": {"a": "b" * 100}, "name": ["x"]}, 7]})
def test_any_answer_to_a_form_list_stores_the_forms_it_names_or_fails_clearly(answer):
    """Loading a page's forms: each object with a usable id is a form; the rest is skipped."""
    with one_example() as graph:
        graph.get(re.compile(rf"{re.escape(GRAPH)}/1111/leadgen_forms"), json=answer)
        page = Page.objects.create(page_id="1111", name="Acme")
        try:
            sync_forms(page, token=TOKEN)
        except GraphError:
            assert not isinstance(answer, dict)  # only an answer that is not an object
        else:
            rows = answer.get("data") if isinstance(answer, dict) else None
            ids = (
                {meta_id(row.get("id")) for row in rows if isinstance(row, dict)}
                if isinstance(rows, list)
                else set()
            )
            assert set(Form.objects.values_list("form_id", flat=True)) == ids - {None}
