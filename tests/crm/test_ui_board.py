"""The sales UI: login, the pipeline board, load more, and moving cards."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from crm.models import Assignment
from crm.selectors import BOARD_COLUMN_SIZE
from leads.models import Lead, PipelineStage, StageChange
from tests.crm.conftest import make_lead

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def card_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<li class="card" id="lead-(\d+)"', html)]


@pytest.mark.parametrize(
    "url", ["/", "/board/", "/leads/", "/leads/export.csv", "/leads/1/", "/board/new/more/"]
)
def test_anonymous_users_are_sent_to_the_login_page(client: Client, url: str):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_login_page_logs_in_and_lands_on_the_board(client: Client, cast):
    page = client.get("/login/")
    assert page.status_code == 200
    assert b'autocomplete="current-password"' in page.content
    response = client.post("/login/", {"username": "ana", "password": "pw"})
    assert response.status_code == 302
    assert response["Location"] == "/board/"
    assert client.get("/")["Location"] == "/board/"
    # Logged in, the login page sends you on.
    assert client.get("/login/")["Location"] == "/board/"


def test_wrong_password_shows_an_error_and_logs_nobody_in(client: Client, cast):
    response = client.post("/login/", {"username": "ana", "password": "nope"})
    assert response.status_code == 200
    assert b'class="form-errors"' in response.content
    assert client.get("/board/").status_code == 302


def test_logout_is_a_post_and_ends_the_session(login, cast):
    client = login(cast["ana"])
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert client.get("/board/").status_code == 302


def test_board_has_a_column_per_stage_with_counts_and_cards(login, cast):
    response = login(cast["boss"]).get("/board/")
    assert response.status_code == 200
    columns = response.context["columns"]
    assert [column.stage.slug for column in columns] == list(
        PipelineStage.objects.order_by("position").values_list("slug", flat=True)
    )
    counts = {column.stage.slug: column.count for column in columns}
    # The pending lead has no stage yet: it is not on the board.
    assert counts == {
        "new": 3,
        "contacted": 0,
        "qualified": 0,
        "opportunity": 0,
        "won": 0,
        "lost": 0,
    }
    assert set(card_ids(response.content.decode())) == {
        cast["a1"].pk,
        cast["a2"].pk,
        cast["b1"].pk,
    }
    html = response.content.decode()
    assert 'id="count-new" data-count="3"' in html
    assert "Jürgen Müller" in html and "Winter form" in html


def test_a_salesperson_sees_only_the_leads_of_granted_pages(login, cast):
    response = login(cast["ana"]).get("/board/")
    assert set(card_ids(response.content.decode())) == {cast["a1"].pk, cast["a2"].pk}
    assert response.context["total"] == 2
    assert card_ids(login(cast["bob"]).get("/board/").content.decode()) == []


def test_cards_show_the_owner(login, cast):
    Assignment.objects.create(lead=cast["a1"], owner=cast["ana"])
    html = login(cast["boss"]).get("/board/").content.decode()
    card = html[html.index(f'id="lead-{cast["a1"].pk}"') :]
    card = card[: card.index("</li>")]
    assert "Ana" in card and "AN" in card


def test_board_filters_narrow_counts_and_cards(login, cast):
    Assignment.objects.create(lead=cast["a2"], owner=cast["boss"])
    client = login(cast["boss"])
    mine = client.get("/board/", {"owner": "me"})
    assert card_ids(mine.content.decode()) == [cast["a2"].pk]
    assert mine.context["total"] == 1
    organic = client.get("/board/", {"source": "organic"})
    assert card_ids(organic.content.decode()) == [cast["a2"].pk]
    search = client.get("/board/", {"q": "dubois"})
    assert card_ids(search.content.decode()) == [cast["b1"].pk]


def test_big_columns_show_the_first_cards_and_load_more(login, cast):
    page, form = cast["page_a"], cast["form_a"]
    new = cast["new"]
    extra = Lead.objects.bulk_create(
        [
            Lead(
                leadgen_id=f"5{i:05d}",
                page=page,
                form=form,
                full_name=f"Bulk {i}",
                stage=new,
                fetch_status="complete",
                created_time=cast["a1"].created_time.replace(year=2024),
            )
            for i in range(BOARD_COLUMN_SIZE + 5)
        ]
    )
    client = login(cast["boss"])
    html = client.get("/board/").content.decode()
    first = card_ids(html)
    assert len(first) == BOARD_COLUMN_SIZE
    # Newest first: the three 2025 leads lead the column.
    assert set(first[:3]) == {cast["a1"].pk, cast["a2"].pk, cast["b1"].pk}
    assert "/board/new/more/?offset=25" in html
    more = client.get("/board/new/more/", {"offset": 25}, **HTMX)
    assert more.status_code == 200
    rest = card_ids(more.content.decode())
    assert len(rest) == 8
    assert set(first) | set(rest) == {lead.pk for lead in extra} | {
        cast["a1"].pk,
        cast["a2"].pk,
        cast["b1"].pk,
    }
    assert "/more/" not in more.content.decode()  # nothing left to load
    # The fragment respects access like the board.
    ana_more = login(cast["ana"]).get("/board/new/more/", {"offset": 0}, **HTMX)
    assert cast["b1"].pk not in card_ids(ana_more.content.decode())


def test_moving_a_card_with_htmx_returns_the_card_in_its_new_stage(login, cast):
    client = login(cast["ana"])
    response = client.post(
        f"/leads/{cast['a1'].pk}/move/", {"stage": "won", "next": "/board/"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="lead-{cast["a1"].pk}" data-lead="{cast["a1"].pk}" data-stage="won"' in html
    assert 'id="live" hx-swap-oob="innerHTML"' in html
    assert "Jürgen Müller moved to Won." in html
    change = StageChange.objects.filter(lead=cast["a1"]).latest("id")
    assert (change.from_stage.slug, change.to_stage.slug, change.via, change.changed_by) == (
        "new",
        "won",
        StageChange.Via.UI,
        cast["ana"],
    )
    assert Lead.objects.get(pk=cast["a1"].pk).stage.slug == "won"


def test_moving_without_javascript_redirects_back_with_a_message(login, cast):
    client = login(cast["ana"])
    response = client.post(
        f"/leads/{cast['a1'].pk}/move/", {"stage": "contacted", "next": "/board/?owner=me"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/board/?owner=me"
    page = client.get("/board/")
    assert "Jürgen Müller moved to Contacted." in page.content.decode()
    assert Lead.objects.get(pk=cast["a1"].pk).stage.slug == "contacted"


def test_next_must_stay_on_this_site(login, cast):
    response = login(cast["ana"]).post(
        f"/leads/{cast['a1'].pk}/move/", {"stage": "won", "next": "https://evil.example/"}
    )
    assert response["Location"] == f"/leads/{cast['a1'].pk}/"


def test_moving_to_the_same_stage_records_nothing(login, cast):
    before = StageChange.objects.count()
    response = login(cast["ana"]).post(f"/leads/{cast['a1'].pk}/move/", {"stage": "new"}, **HTMX)
    assert "is already in New" in response.content.decode()
    assert StageChange.objects.count() == before


def test_an_unknown_stage_is_refused_and_changes_nothing(login, cast):
    before = StageChange.objects.count()
    response = login(cast["ana"]).post(f"/leads/{cast['a1'].pk}/move/", {"stage": "nope"}, **HTMX)
    assert response.status_code == 200
    assert 'data-level="error"' in response.content.decode()
    assert StageChange.objects.count() == before
    assert Lead.objects.get(pk=cast["a1"].pk).stage.slug == "new"


def test_a_lead_whose_data_has_not_arrived_cannot_be_moved(login, cast):
    response = login(cast["ana"]).post(
        f"/leads/{cast['pending'].pk}/move/", {"stage": "won"}, **HTMX
    )
    assert 'data-level="error"' in response.content.decode()
    assert "has not arrived from Meta yet" in response.content.decode()
    assert Lead.objects.get(pk=cast["pending"].pk).stage is None


def test_get_is_not_allowed_on_writes(login, cast):
    client = login(cast["boss"])
    pk = cast["a1"].pk
    for url in (f"/leads/{pk}/move/", f"/leads/{pk}/owner/", f"/leads/{pk}/notes/"):
        assert client.get(url).status_code == 405


def test_a_move_updates_the_column_counts(login, cast):
    """A moved card leaves its column's count and joins the other's."""
    client = login(cast["boss"])
    client.post(f"/leads/{cast['b1'].pk}/move/", {"stage": "lost"}, **HTMX)
    counts = {c.stage.slug: c.count for c in client.get("/board/").context["columns"]}
    assert (counts["new"], counts["lost"]) == (2, 1)


def test_leads_without_a_page_are_for_superusers_only(login, cast):
    orphan = make_lead(None, None, 9)
    from leads.pipeline import enter_pipeline

    enter_pipeline(orphan)
    assert orphan.pk in card_ids(login(cast["boss"]).get("/board/").content.decode())
    assert orphan.pk not in card_ids(login(cast["ana"]).get("/board/").content.decode())
