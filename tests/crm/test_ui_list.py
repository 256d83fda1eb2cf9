"""The lead list: search, filters, sort, pagination, and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.test import Client

from crm.models import Assignment
from crm.selectors import LIST_PAGE_SIZE
from leads.models import Lead
from tests.crm.conftest import make_lead

pytestmark = pytest.mark.django_db


def listed(client: Client, **params: str) -> list[int]:
    response = client.get("/leads/", params)
    assert response.status_code == 200
    return [lead.pk for lead in response.context["leads"]]


def exported(client: Client, **params: str) -> list[dict[str, str]]:
    response = client.get("/leads/export.csv", params)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(body[1:])))


def test_the_list_shows_every_visible_lead_newest_first(login, cast):
    client = login(cast["boss"])
    assert listed(client) == [
        cast["pending"].pk,
        cast["b1"].pk,
        cast["a2"].pk,
        cast["a1"].pk,
    ]
    html = client.get("/leads/").content.decode()
    assert "4 leads" in html
    assert "Waiting for fetch" in html  # the pending lead's state instead of a stage


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("müller", ["a1"]),
        ("JURGEN@example", ["a1"]),
        ("612 34 0003", ["b1"]),  # spaces as typed
        ("+34612340003", ["b1"]),  # digits only, with the country code
        ("7700000000000002", ["a2"]),  # the leadgen id
        ("l:7700000000000002", ["a2"]),  # as Meta's export writes it
        ("nobody", []),
    ],
)
def test_search_by_name_email_phone_or_leadgen_id(login, cast, query, expected):
    assert listed(login(cast["boss"]), q=query) == [cast[name].pk for name in expected]


def test_filters(login, cast):
    client = login(cast["boss"])
    Assignment.objects.create(lead=cast["a2"], owner=cast["boss"])
    Assignment.objects.create(lead=cast["b1"], owner=cast["ana"])
    Lead.objects.filter(pk=cast["a1"].pk).update(
        created_time=dt.datetime(2024, 6, 15, 23, 30, tzinfo=dt.UTC)
    )
    a1, a2, b1, pending = (cast[k].pk for k in ("a1", "a2", "b1", "pending"))
    assert listed(client, stage="new") == [b1, a2, a1]
    assert listed(client, form="2002") == [b1]
    assert listed(client, page="101") == [pending, a2, a1]
    assert listed(client, owner="me") == [a2]
    assert listed(client, owner=str(cast["ana"].pk)) == [b1]
    assert listed(client, owner="none") == [pending, a1]
    assert listed(client, source="organic") == [a2]
    assert listed(client, source="paid") == [pending, b1, a1]
    assert listed(client, platform="fb") == [a2]
    assert listed(client, status="pending") == [pending]
    assert listed(client, created_from="2024-06-15", created_to="2024-06-15") == [a1]
    assert listed(client, created_to="2024-12-31") == [a1]
    assert listed(client, created_from="2025-01-01") == [pending, b1, a2]
    assert listed(client, stage="new", page="101", platform="ig") == [a1]


def test_filter_choices_offer_only_what_the_user_may_see(login, cast):
    form = login(cast["ana"]).get("/leads/").context["filter"].form
    assert [page.page_id for page in form.fields["page"].queryset] == ["101"]
    assert [f.form_id for f in form.fields["form"].queryset] == ["1001"]
    owners = dict(form.fields["owner"].choices)
    assert set(owners) == {"", "me", "none", str(cast["ana"].pk), str(cast["boss"].pk)}
    # Asking for another page's leads by its id is not a way in.
    response = login(cast["ana"]).get("/leads/", {"page": "202"})
    assert list(response.context["leads"]) == []


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-created", ["pending", "b1", "a2", "a1"]),
        ("created", ["a1", "a2", "b1", "pending"]),
        ("name", ["pending", "b1", "a1", "a2"]),  # "" < Claire < Jürgen < Person 2
        ("-name", ["a2", "a1", "b1", "pending"]),
    ],
)
def test_sort(login, cast, sort, expected):
    assert listed(login(cast["boss"]), sort=sort) == [cast[name].pk for name in expected]


def test_sort_headers_toggle_direction(login, cast):
    html = login(cast["boss"]).get("/leads/", {"sort": "name"}).content.decode()
    assert 'aria-sort="ascending"' in html
    assert 'href="?sort=-name"' in html


def test_pagination_and_the_capped_count(login, cast, settings):
    Lead.objects.bulk_create(
        [
            Lead(leadgen_id=f"8{i:05d}", page=cast["page_a"], full_name=f"Many {i:03d}")
            for i in range(LIST_PAGE_SIZE + 10)
        ]
    )
    client = login(cast["boss"])
    first = client.get("/leads/", {"sort": "name"})
    assert len(first.context["leads"]) == LIST_PAGE_SIZE
    assert first.context["paginator"].count == LIST_PAGE_SIZE + 14
    second = client.get("/leads/", {"sort": "name", "p": 2})
    assert len(second.context["leads"]) == 14
    assert not set(first.context["leads"]) & set(second.context["leads"])
    # Beyond the cap the list says "more than" instead of counting every lead.
    from crm import selectors

    original = selectors.LIST_COUNT_CAP
    selectors.LIST_COUNT_CAP = 20
    try:
        capped = client.get("/leads/")
    finally:
        selectors.LIST_COUNT_CAP = original
    assert capped.context["paginator"].capped
    assert "More than 20 leads" in capped.content.decode()


def test_htmx_requests_get_the_results_fragment(login, cast):
    client = login(cast["boss"])
    fragment = client.get("/leads/", {"q": "dubois"}, HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<html" not in html
    assert fragment["Vary"] and "HX-Request" in fragment["Vary"]
    # History restore after a cache miss needs the whole page.
    restore = client.get("/leads/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in restore.content.decode()


def test_export_holds_every_lead_of_the_filter_not_just_one_page(login, cast):
    Lead.objects.bulk_create(
        [
            Lead(leadgen_id=f"8{i:05d}", page=cast["page_a"], full_name=f"Many {i}")
            for i in range(LIST_PAGE_SIZE + 10)
        ]
    )
    rows = exported(login(cast["boss"]))
    assert len(rows) == LIST_PAGE_SIZE + 14
    only_b = exported(login(cast["boss"]), page="202")
    assert [row["leadgen_id"] for row in only_b] == [cast["b1"].leadgen_id]


def test_export_columns_answers_and_disclaimers(login, cast):
    Assignment.objects.create(lead=cast["a1"], owner=cast["ana"])
    rows = exported(login(cast["boss"]), q="jurgen")
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == str(cast["a1"].pk)
    assert row["leadgen_id"] == cast["a1"].leadgen_id
    assert row["full_name"] == "Jürgen Müller"
    assert row["stage"] == "new"
    assert row["owner"] == "ana"
    assert (row["page"], row["page_name"], row["form"], row["form_name"]) == (
        "101",
        "Acme Spain",
        "1001",
        "Winter form",
    )
    assert (row["platform"], row["is_organic"], row["fetch_status"]) == ("ig", "false", "complete")
    assert row["created_time"] == "2025-01-01T01:00:00+00:00"
    # One column per question of the forms involved, then what no question names.
    assert row["city"] == "Madrid"
    assert row["email"] == "jurgen@example.com"  # the searchable column
    assert row["answer_email"] == "Jurgen.Muller@Example.com"  # the answer as sent
    assert row["phone_number"] == "+34 612 345 678"
    assert row["zip_code"] == ""
    assert "selected_dealer: 99213450" in row["other_answers"]
    assert "which_services_interest_you?: Installation, Maintenance" in row["other_answers"]
    assert row["disclaimers"] == "marketing_optin=checked; partner_sharing=unchecked"


def test_export_defuses_spreadsheet_formulas_but_keeps_phone_numbers(login, cast):
    make_lead(cast["page_a"], cast["form_a"], 20, full_name='=HYPERLINK("x")', phone="+1 650")
    rows = exported(login(cast["boss"]), q="HYPERLINK")
    assert rows[0]["full_name"] == '\'=HYPERLINK("x")'
    assert rows[0]["phone"] == "+1 650"


def test_export_defuses_question_keys_in_the_header_and_look_alike_cells(login, cast):
    # Question keys come from Meta's form definitions, which the page's editors write.
    hostile_key = '=HYPERLINK("http://x.test","open")'
    cast["form_a"].questions = [
        *cast["form_a"].questions,
        {"key": hostile_key, "label": "Trap", "type": "CUSTOM"},
        {"key": "\uff20note", "label": "Full-width at", "type": "CUSTOM"},
    ]
    cast["form_a"].save()
    make_lead(
        cast["page_a"],
        cast["form_a"],
        21,
        full_name="\n=HYPERLINK(1)",
        field_data=[
            {"name": hostile_key, "values": ["\uff1d1+1"]},
            {"name": "\uff20note", "values": ["\uff0d2+3"]},
        ],
    )
    response = login(cast["boss"]).get("/leads/export.csv", {"q": "HYPERLINK"})
    body = b"".join(response.streaming_content).decode("utf-8")
    header = next(csv.reader(io.StringIO(body[1:])))
    assert header[-4:] == ["'" + hostile_key, "'\uff20note", "other_answers", "disclaimers"]
    (row,) = exported(login(cast["boss"]), q="HYPERLINK")
    assert row["full_name"] == "'\n=HYPERLINK(1)"
    assert row["'" + hostile_key] == "'\uff1d1+1"
    assert row["'\uff20note"] == "'\uff0d2+3"
