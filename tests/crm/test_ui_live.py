"""The live refresh of the board, the list and a lead's page (issue 18, item 2).

Each page is rendered with a cursor (the newest stage change id) and polls an endpoint
that answers "what changed since": 204 when nothing did, else the counts, the cards or
rows of leads changed, and the "n new leads" notice. Every answer runs a fixed number
of queries and holds only what the user may see under the page's filter."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from crm import selectors
from crm.models import Assignment, Note
from crm.services import add_note
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import enter_pipeline, enter_pipeline_many, move_stage
from tests.crm.conftest import make_lead

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
# A logged-in request reads its session and its user before the view runs.
AUTH_QUERIES = 2


def latest() -> int:
    return StageChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def poll_url(html: str, element: str) -> str:
    """The next refresh's address, as the page (or the last answer) carries it."""
    match = re.search(rf'<div id="{element}" class="live-poll" hidden hx-get="([^"]+)"', html)
    assert match, html
    return match.group(1).replace("&amp;", "&")


def live_cards(html: str) -> dict[int, str]:
    """{lead id: stage slug} of the cards a board refresh sends."""
    template = re.search(r'<template class="live-cards">(.*?)</template>', html, re.S)
    if not template:
        return {}
    return {
        int(pk): slug
        for pk, slug in re.findall(r'<li class="card" id="lead-(\d+)" data-lead="\d+" '
                                   r'data-stage="([\w-]+)"', template.group(1))
    }  # fmt: skip


def live_counts(html: str) -> dict[str, int]:
    return {
        slug: int(value)
        for slug, value in re.findall(
            r'<data class="live-count" data-stage="([\w-]+)" value="(\d+)">', html
        )
    }


def notice(html: str) -> str:
    match = re.search(r'<a class="live-notice"[^>]*>(.*?)</a>', html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(1))).strip() if match else ""


def new_lead(cast: dict[str, Any], n: int, *, page: str = "a", **fields: Any) -> Lead:
    lead = make_lead(cast[f"page_{page}"], cast[f"form_{page}"], n, **fields)
    enter_pipeline(lead)
    return lead


def move(lead: Lead, slug: str) -> StageChange | None:
    return move_stage(lead, stage=PipelineStage.objects.get(slug=slug), via=StageChange.Via.API)


# --- The board ------------------------------------------------------------------------


def test_the_board_is_rendered_with_the_newest_change_as_its_cursor(login, cast):
    html = login(cast["boss"]).get("/board/").content.decode()
    assert poll_url(html, "board-live") == f"/board/changes/?since={latest()}&new=0"
    assert 'hx-trigger="every 2s, live-refresh"' in html
    # With a filter, the refresh carries it.
    html = login(cast["boss"]).get("/board/?owner=me&q=ana").content.decode()
    assert poll_url(html, "board-live") == (
        f"/board/changes/?owner=me&q=ana&since={latest()}&new=0"
    )


def test_an_idle_board_refresh_is_204_in_one_query(login, cast, django_assert_num_queries):
    client = login(cast["ana"])
    url = f"/board/changes/?since={latest()}&new=0"
    client.get(url)
    with django_assert_num_queries(AUTH_QUERIES + 1):
        response = client.get(url, **HTMX)
    assert response.status_code == 204
    assert response.content == b""


def test_a_new_lead_shows_as_a_notice_and_in_its_column_count(login, cast):
    client = login(cast["boss"])
    since = latest()
    lead = new_lead(cast, 10)
    response = client.get(f"/board/changes/?since={since}&new=0", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert notice(html) == "↑ 1 new lead · Show"
    assert live_counts(html) == {
        "new": 4,
        "contacted": 0,
        "qualified": 0,
        "opportunity": 0,
        "won": 0,
        "lost": 0,
    }
    # The new lead's card is not pushed in (no jumping cards): the notice shows it.
    assert live_cards(html) == {lead.pk: "new"}
    assert poll_url(html, "board-live") == f"/board/changes/?since={latest()}&new=1"
    assert 'href="/board/" hx-get="/board/" hx-target="#board-area" hx-select="#board-area"' in html
    # The next refresh adds to the count the page carries.
    new_lead(cast, 11)
    new_lead(cast, 12)
    html = client.get(poll_url(html, "board-live"), **HTMX).content.decode()
    assert notice(html) == "↑ 3 new leads · Show"
    assert poll_url(html, "board-live") == f"/board/changes/?since={latest()}&new=3"


def test_past_99_the_notice_says_99_plus(login, cast):
    since = latest()
    new_lead(cast, 10)
    html = login(cast["boss"]).get(f"/board/changes/?since={since}&new=99", **HTMX).content
    assert notice(html.decode()) == "↑ 99+ new leads · Show"


def test_a_move_made_elsewhere_sends_the_card_in_its_new_stage(login, cast):
    client = login(cast["boss"])
    since = latest()
    move(cast["a1"], "won")
    move(cast["b1"], "contacted")
    move(cast["b1"], "qualified")
    html = client.get(f"/board/changes/?since={since}&new=0", **HTMX).content.decode()
    # Most recently moved first; each lead once, as it now is; no new lead.
    assert list(live_cards(html).items()) == [(cast["b1"].pk, "qualified"), (cast["a1"].pk, "won")]
    assert live_counts(html)["new"] == 1
    assert live_counts(html)["won"] == 1
    assert live_counts(html)["qualified"] == 1
    assert notice(html) == ""
    assert poll_url(html, "board-live") == f"/board/changes/?since={latest()}&new=0"


def test_a_board_refresh_shows_nothing_of_a_page_not_granted(login, cast):
    """Ana sees page A only: page B's new lead and move change neither her counts, nor
    her notice, nor her cards; the cursor still moves past them."""
    client = login(cast["ana"])
    since = latest()
    new_lead(cast, 10, page="b")
    move(cast["b1"], "won")
    html = client.get(f"/board/changes/?since={since}&new=0", **HTMX).content.decode()
    assert notice(html) == ""
    assert live_cards(html) == {}
    assert live_counts(html) == {
        "new": 2,
        "contacted": 0,
        "qualified": 0,
        "opportunity": 0,
        "won": 0,
        "lost": 0,
    }
    assert poll_url(html, "board-live") == f"/board/changes/?since={latest()}&new=0"
    # Bob is granted nothing.
    html = login(cast["bob"]).get(f"/board/changes/?since={since}&new=0", **HTMX).content
    assert notice(html.decode()) == ""
    assert set(live_counts(html.decode()).values()) == {0}


def test_a_board_refresh_keeps_the_boards_filter(login, cast):
    client = login(cast["boss"])
    since = latest()
    mine = new_lead(cast, 10)
    Assignment.objects.create(lead=mine, owner=cast["boss"])
    new_lead(cast, 11)
    move(cast["a1"], "won")
    html = client.get(f"/board/changes/?owner=me&since={since}&new=0", **HTMX).content.decode()
    assert notice(html) == "↑ 1 new lead · Show"
    assert live_cards(html) == {mine.pk: "new"}
    assert live_counts(html)["new"] == 1
    assert live_counts(html)["won"] == 0
    assert 'href="/board/?owner=me"' in html


def test_a_board_refresh_costs_the_same_for_one_change_as_for_forty(
    login, cast, django_assert_num_queries
):
    """Changes, which of their leads the user sees, the stages and the counts: four
    queries after the session and user, plus the owner choices the board's filter lists."""
    client = login(cast["ana"])
    since = latest()
    new_lead(cast, 10)
    with django_assert_num_queries(AUTH_QUERIES + 5):
        client.get(f"/board/changes/?since={since}&new=0", **HTMX)
    since = latest()
    leads = [make_lead(cast["page_a"], cast["form_a"], 20 + i) for i in range(20)]
    enter_pipeline_many([lead.pk for lead in leads])
    for lead in leads:
        move(lead, "contacted")
    with django_assert_num_queries(AUTH_QUERIES + 5):
        response = client.get(f"/board/changes/?since={since}&new=0", **HTMX)
    html = response.content.decode()
    assert notice(html) == "↑ 20 new leads · Show"
    assert len(live_cards(html)) == 20


def test_a_large_step_is_taken_in_batches(login, cast, monkeypatch):
    monkeypatch.setattr(selectors, "LIVE_BATCH", 2)
    client = login(cast["boss"])
    since = latest()
    leads = [new_lead(cast, 10 + i) for i in range(3)]
    first = client.get(f"/board/changes/?since={since}&new=0", **HTMX).content.decode()
    assert notice(first) == "↑ 2 new leads · Show"
    entries = StageChange.objects.filter(lead__in=leads).order_by("pk")
    assert poll_url(first, "board-live") == f"/board/changes/?since={entries[1].pk}&new=2"
    second = client.get(poll_url(first, "board-live"), **HTMX).content.decode()
    assert notice(second) == "↑ 3 new leads · Show"
    assert client.get(poll_url(second, "board-live"), **HTMX).status_code == 204


@pytest.mark.parametrize("query", ["since=abc&new=-4", "since=99999999999999999999999", ""])
def test_a_malformed_cursor_counts_as_the_start(login, cast, query):
    response = login(cast["boss"]).get(f"/board/changes/?{query}", **HTMX)
    assert response.status_code in (200, 204)
    if query.startswith("since=9"):
        assert response.status_code == 204
    else:
        html = response.content.decode()
        # From the start: the cast's three leads entering the pipeline.
        assert poll_url(html, "board-live").endswith(f"since={latest()}&new=3")


def test_live_endpoints_need_a_login(client: Client, cast):
    for url in ["/board/changes/", "/leads/changes/", f"/leads/{cast['a1'].pk}/changes/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


# --- The list -------------------------------------------------------------------------


def rows(html: str) -> list[int]:
    template = re.search(r'<template class="live-rows">(.*?)</template>', html, re.S)
    if not template:
        return []
    return [int(pk) for pk in re.findall(r'<tr id="row-(\d+)"', template.group(1))]


def test_the_list_polls_with_its_filter_and_shows_new_leads_as_a_notice(login, cast):
    client = login(cast["ana"])
    page = client.get("/leads/?stage=new&sort=name").content.decode()
    url = poll_url(page, "list-live")
    assert url == f"/leads/changes/?stage=new&sort=name&since={latest()}&new=0"
    # The fragment an htmx search swaps in carries the refresh too.
    fragment = client.get("/leads/?q=person", **HTMX).content.decode()
    assert poll_url(fragment, "list-live") == f"/leads/changes/?q=person&since={latest()}&new=0"

    fresh = new_lead(cast, 10)
    new_lead(cast, 11, page="b")  # not Ana's
    move(cast["a2"], "won")  # leaves the list's filter (stage "new")
    move(cast["a1"], "contacted")
    move(cast["a1"], "new")
    html = client.get(url, **HTMX).content.decode()
    assert notice(html) == "↑ 1 new lead · Show"
    assert rows(html) == [cast["a1"].pk, fresh.pk]
    assert (
        'href="/leads/?stage=new&amp;sort=name" hx-get="/leads/?stage=new&amp;sort=name" '
        'hx-target="#results" hx-swap="outerHTML"'
    ) in html
    assert poll_url(html, "list-live") == (
        f"/leads/changes/?stage=new&sort=name&since={latest()}&new=1"
    )


def test_list_rows_carry_an_id_the_refresh_replaces(login, cast):
    html = login(cast["boss"]).get("/leads/").content.decode()
    assert f'<tr id="row-{cast["a1"].pk}" data-lead="{cast["a1"].pk}">' in html


def test_a_list_refresh_is_204_when_idle_and_fixed_in_cost(login, cast, django_assert_num_queries):
    client = login(cast["ana"])
    url = f"/leads/changes/?since={latest()}&new=0"
    client.get(url)
    with django_assert_num_queries(AUTH_QUERIES + 1):
        assert client.get(url, **HTMX).status_code == 204
    new_lead(cast, 10)
    # The changes, the owner choices of the filter, and the changed rows.
    with django_assert_num_queries(AUTH_QUERIES + 3):
        client.get(url, **HTMX)
    for i in range(20):
        new_lead(cast, 20 + i)
    with django_assert_num_queries(AUTH_QUERIES + 3):
        response = client.get(url, **HTMX)
    assert notice(response.content.decode()) == "↑ 21 new leads · Show"


# --- A lead's page --------------------------------------------------------------------


def cursors(html: str) -> dict[str, int]:
    return {
        name: int(value)
        for name, value in re.findall(
            r'<input type="hidden" class="live-cursor" name="(\w+)" value="(\d+)">', html
        )
    }


def test_a_lead_page_carries_its_cursors_and_polls(login, cast):
    lead = cast["a1"]
    add_note(lead, author=cast["ana"], body="First call.")
    html = login(cast["ana"]).get(f"/leads/{lead.pk}/").content.decode()
    assert cursors(html) == {
        "change": StageChange.objects.get(lead=lead).pk,
        "note": Note.objects.get(lead=lead).pk,
    }
    assert (
        f'hx-get="/leads/{lead.pk}/changes/" hx-trigger="every 2s, live-refresh" '
        'hx-include=".live-cursor" hx-swap="none"'
    ) in html


def test_an_unchanged_lead_page_refresh_is_204_in_one_query(login, cast, django_assert_num_queries):
    lead = cast["a1"]
    client = login(cast["ana"])
    change = StageChange.objects.get(lead=lead).pk
    url = f"/leads/{lead.pk}/changes/?change={change}&note=0"
    client.get(url)
    with django_assert_num_queries(AUTH_QUERIES + 1):
        response = client.get(url, **HTMX)
    assert response.status_code == 204


def test_a_note_and_a_move_made_elsewhere_come_in_place(login, cast, django_assert_num_queries):
    lead = cast["a1"]
    client = login(cast["ana"])
    change = StageChange.objects.get(lead=lead).pk
    add_note(lead, author=cast["boss"], body="Bea called back: interested.")
    move(lead, "won")
    # The lead and its cursors, its history, its notes, and the stages of its move control
    # (twice: Django's required <select> reads its first choice apart from its options).
    with django_assert_num_queries(AUTH_QUERIES + 5):
        response = client.get(f"/leads/{lead.pk}/changes/?change={change}&note=0", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    for part in ("lead-tags", "stage-panel", "history-panel", "notes-list"):
        assert re.search(rf'id="{part}"[^>]* hx-swap-oob="true"', html), part
    assert "Bea called back: interested." in html
    assert '<span class="badge badge-stage">Won</span>' in html
    assert '<option value="won" selected>' in html
    assert cursors(html) == {"change": latest(), "note": Note.objects.get(lead=lead).pk}
    assert "This lead was updated elsewhere." in html
    # The note form (and what is typed in it) is not part of the answer.
    assert 'name="body"' not in html
    # The move control still posts back to the lead's page, not to the refresh.
    assert f'<input type="hidden" name="next" value="/leads/{lead.pk}/">' in html


def test_a_lead_page_refresh_of_a_lead_not_granted_is_404(login, cast):
    assert login(cast["ana"]).get(f"/leads/{cast['b1'].pk}/changes/", **HTMX).status_code == 404
    assert login(cast["bob"]).get(f"/leads/{cast['a1'].pk}/changes/", **HTMX).status_code == 404


def test_adding_a_note_in_place_moves_the_note_cursor_on(login, cast):
    """The notes panel that an htmx note post swaps in carries the new note's id, so the
    next refresh does not report the user's own note as a change."""
    lead = cast["a1"]
    client = login(cast["ana"])
    html = client.post(f"/leads/{lead.pk}/notes/", {"body": "Mine."}, **HTMX).content.decode()
    assert cursors(html) == {"note": Note.objects.get(lead=lead).pk}
    change = StageChange.objects.get(lead=lead).pk
    url = f"/leads/{lead.pk}/changes/?change={change}&note={Note.objects.get(lead=lead).pk}"
    assert client.get(url, **HTMX).status_code == 204


def test_cards_have_a_place_for_the_next_task(login, cast, monkeypatch):
    """Tasks do not exist yet: `with_owner` sets `next_task` to None and the card shows
    no line; once something sets it, the card shows it."""
    html = login(cast["boss"]).get("/board/").content.decode()
    assert 'class="card-task"' not in html
    original = selectors.with_owner

    def with_task(leads):
        result = original(leads)
        for lead in result:
            lead.next_task = "Call back at 10:00"
        return result

    monkeypatch.setattr(selectors, "with_owner", with_task)
    html = login(cast["boss"]).get("/board/").content.decode()
    assert html.count('<p class="card-task">Call back at 10:00</p>') == 3


def test_cards_show_phone_to_tap_and_the_form(login, cast):
    html = login(cast["boss"]).get("/board/").content.decode()
    card = html[html.index(f'id="lead-{cast["a1"].pk}"') :]
    card = card[: card.index("</li>")]
    assert '<a class="card-phone" href="tel:+3461234000' in card
    assert ">Winter form</span>" in card
    assert 'title="Winter form · Winter leads 2025"' in card


def test_superusers_and_deleted_users_do_not_break_a_refresh(login, cast):
    """A change by a user since deleted (changed_by NULL) still refreshes."""
    since = latest()
    gone = get_user_model().objects.create_superuser("gone", password="pw")
    move_stage(cast["a1"], stage=cast["won"], via=StageChange.Via.UI, by=gone)
    gone.delete()
    html = login(cast["boss"]).get(f"/board/changes/?since={since}&new=0", **HTMX).content
    assert live_cards(html.decode()) == {cast["a1"].pk: "won"}
