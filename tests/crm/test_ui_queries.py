"""The board, the list and the detail run a fixed number of SQL queries: the same with 10
leads as with 1,000 (no query per card, row, owner, note or stage change)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from crm.models import Assignment, Note, PageAccess
from leads.models import Form, Lead, Page, PipelineStage, StageChange

pytestmark = pytest.mark.django_db

URLS = [
    "/board/",
    "/board/?owner=me&q=a",
    "/board/contacted/more/?offset=25",
    "/leads/",
    "/leads/?stage=new&sort=name&q=example",
    "/leads/?p=2",
]


def populate(count: int, *, owners: list) -> None:
    """`count` complete leads across two pages, every stage, a third with an owner."""
    pages = list(Page.objects.order_by("pk"))
    forms = list(Form.objects.order_by("pk"))
    stages = list(PipelineStage.objects.order_by("position"))
    start = Lead.objects.count()
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    Lead.objects.bulk_create(
        [
            Lead(
                leadgen_id=f"6{start + i:08d}",
                page=pages[i % 2],
                form=forms[i % 2],
                full_name=f"Lead {i}",
                email=f"lead{i}@example.com",
                stage=stages[i % len(stages)],
                fetch_status=Lead.FetchStatus.COMPLETE,
                created_time=base + dt.timedelta(minutes=i),
            )
            for i in range(count)
        ]
    )
    cycle = itertools.cycle(owners)
    Assignment.objects.bulk_create(
        [
            Assignment(lead_id=pk, owner=next(cycle))
            for pk in Lead.objects.order_by("pk").values_list("pk", flat=True)[start::3]
        ]
    )


@pytest.fixture
def team(django_user_model):
    pages = [Page.objects.create(page_id=str(100 + i), name=f"Page {i}") for i in range(2)]
    for i, page in enumerate(pages):
        Form.objects.create(form_id=str(200 + i), page=page, name=f"Form {i}")
    boss = django_user_model.objects.create_superuser("boss", password="pw")
    ana = django_user_model.objects.create_user("ana", password="pw", is_staff=True)
    PageAccess.objects.create(user=ana, page=pages[0])
    return {"boss": boss, "ana": ana}


def count_queries(client: Client, url: str) -> int:
    client.get(url)  # warm: session and per-process caches
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries.captured_queries)


@pytest.mark.parametrize("who", ["boss", "ana"])
def test_board_and_list_cost_the_same_with_10_and_1000_leads(team, who):
    client = Client()
    client.force_login(team[who])
    populate(10, owners=[team["boss"], team["ana"]])
    small = {url: count_queries(client, url) for url in URLS}
    populate(990, owners=[team["boss"], team["ana"]])
    assert Lead.objects.count() == 1000
    large = {url: count_queries(client, url) for url in URLS}
    assert large == small


def test_detail_costs_the_same_with_one_note_and_change_as_with_fifty(team):
    client = Client()
    client.force_login(team["ana"])
    populate(10, owners=[team["ana"]])
    lead = Lead.objects.filter(page__page_id="100").order_by("pk").first()
    stages = list(PipelineStage.objects.order_by("position"))

    def add(n: int) -> None:
        StageChange.objects.bulk_create(
            [
                StageChange(
                    lead=lead,
                    from_stage=stages[i % 6],
                    to_stage=stages[(i + 1) % 6],
                    changed_at=dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
                    changed_by=team["ana"],
                    via="ui",
                )
                for i in range(n)
            ]
        )
        Note.objects.bulk_create([Note(lead=lead, author=team["ana"], body="x") for _ in range(n)])

    add(1)
    few = count_queries(client, f"/leads/{lead.pk}/")
    add(49)
    assert count_queries(client, f"/leads/{lead.pk}/") == few


def test_a_search_scans_the_indexes_for_the_count_and_the_page_only(team):
    """The list's search (a scan of the name and email indexes) runs in the capped count
    and in the page's ids; the page's rows are then read by id, without it."""
    client = Client()
    client.force_login(team["ana"])
    populate(30, owners=[team["ana"]])
    client.get("/leads/?q=lead1")
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/leads/?q=lead1")
    searching = [q["sql"] for q in queries.captured_queries if "%lead1%" in q["sql"]]
    assert [sql.split()[:2] for sql in searching] == [
        ["SELECT", "COUNT(*)"],
        ["SELECT", '"leads_lead"."id"'],
    ]
    # Ana sees page 100 only, the even leads: of those matching, Lead 10, 12, ..., 18.
    names = {lead.full_name for lead in response.context["leads"]}
    assert names == {"Lead 10", "Lead 12", "Lead 14", "Lead 16", "Lead 18"}


def test_the_search_reads_the_email_and_phone_indexes_that_leave_empty_values_out(team):
    """The email and phone indexes hold non-empty values only (a lead waiting for its fetch
    writes none of them); the search still reads them, not the lead rows."""
    from crm.filters import search_leads

    populate(30, owners=[team["ana"]])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # a handful of rows: make the planner show it
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = search_leads(Lead.objects.all(), "+34 612").explain()
    assert "lead_email" in plan
    assert "lead_phone" in plan
