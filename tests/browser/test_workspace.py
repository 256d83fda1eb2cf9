"""The sales workspace in a real browser against the real stack: log in, work the board
(drag and drop, and the keyboard), search the list, read a lead, add a note, and switch
languages. Screenshots of the board, the list and the detail go to test-artifacts/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, expect

from crm.models import Note
from leads.models import Form, Lead, PipelineStage, StageChange
from leads.models import Page as FacebookPage
from leads.pipeline import enter_pipeline_many
from tests.conftest import load_fixture

pytestmark = [
    pytest.mark.e2e,
    # The server processes share the database, so data must really commit; serialized
    # rollback restores the default pipeline for the tests that follow.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct horse battery staple"
QUESTIONS = [
    {"key": "full_name", "label": "Your name", "type": "FULL_NAME"},
    {"key": "email", "label": "Your email", "type": "EMAIL"},
    {"key": "phone_number", "label": "Mobile phone", "type": "PHONE"},
    {"key": "city", "label": "Which city are you in?", "type": "CITY"},
]


def conversion_events(lead: Lead) -> Any:
    """capi's outbox rows for the lead, if the capi app defines them (read by name: the
    test does not depend on capi's code)."""
    try:
        model = apps.get_model("capi", "ConversionEvent")
    except LookupError:
        return None
    return model.objects.filter(lead=lead)


@pytest.fixture
def workspace() -> dict[str, Any]:
    page = FacebookPage.objects.create(page_id="1111", name="Acme Spain")
    form = Form.objects.create(form_id="2222", page=page, name="Winter form", questions=QUESTIONS)
    graph = load_fixture("graph_lead.json")
    names = ["Jürgen Müller", "Ana García", "Wei Zhang", "Claire Dubois", "Noah Smith"]
    leads = [
        Lead.objects.create(
            leadgen_id=f"12345678901234{i:02d}",
            page=page,
            form=form,
            field_data=[
                {"name": "full_name", "values": [name]},
                *[item for item in graph["field_data"] if item["name"] != "full_name"],
            ],
            custom_disclaimer_responses=graph["custom_disclaimer_responses"],
            full_name=name,
            email=f"person{i}@example.com",
            phone=f"+34 612 345 6{i:02d}",
            created_time=f"2025-01-0{i + 1}T10:00:00+00:00",
            fetch_status=Lead.FetchStatus.COMPLETE,
            ad_name="Winter promo - video",
            ad_id="120210000000000001",
            campaign_name="Winter leads 2025",
            platform="ig",
            is_organic=False,
        )
        for i, name in enumerate(names)
    ]
    enter_pipeline_many([lead.pk for lead in leads])
    boss = get_user_model().objects.create_superuser(
        "boss", password=PASSWORD, first_name="Bea", last_name="Boss"
    )
    return {"leads": {lead.full_name: lead for lead in leads}, "boss": boss}


@pytest.fixture
def page(browser, stack) -> Page:
    context = browser.new_context(
        base_url=stack.url, viewport={"width": 1440, "height": 900}, locale="en-US"
    )
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # Chromium reports what the Content-Security-Policy refuses on the console.
    tab.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors or CSP violations: {errors}\n{stack.output()}"


def log_in(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/board/$"))


def column(page: Page, slug: str):
    return page.locator(f'.column[data-stage="{slug}"]')


def test_work_the_board_by_drag_and_drop_and_keyboard(page: Page, workspace, artifacts):
    log_in(page)
    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
    expect(page.locator("#count-new")).to_have_text("5")
    jurgen = workspace["leads"]["Jürgen Müller"]
    card = page.locator(f"#lead-{jurgen.pk}")
    expect(card).to_contain_text("Winter form")
    expect(card).to_contain_text("Unassigned")

    # Drag and drop: the card lands in Contacted, and the move is stored as a UI move.
    card.drag_to(column(page, "contacted"))
    expect(column(page, "contacted").locator(f"#lead-{jurgen.pk}")).to_have_attribute(
        "data-stage", "contacted"
    )
    expect(page.locator("#count-contacted")).to_have_text("1")
    expect(page.locator("#count-new")).to_have_text("4")
    expect(page.locator("#live")).to_have_text("Jürgen Müller moved to Contacted.")
    change = StageChange.objects.filter(lead=jurgen).latest("id")
    assert (change.from_stage.slug, change.to_stage.slug, change.via) == (
        "new",
        "contacted",
        StageChange.Via.UI,
    )
    assert change.changed_by == workspace["boss"]
    assert Lead.objects.get(pk=jurgen.pk).stage.slug == "contacted"
    events = conversion_events(jurgen)
    if events is not None:
        # Written in the move's transaction, waiting for the sender (no dataset here).
        contacted = PipelineStage.objects.get(slug="contacted")
        assert events.filter(event_name=contacted.event_name).count() == 1

    # The keyboard: choose the stage in the card's control and press Move.
    ana = workspace["leads"]["Ana García"]
    control = page.locator(f"#lead-{ana.pk} select")
    control.focus()
    control.select_option("won")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(column(page, "won").locator(f"#lead-{ana.pk}")).to_be_visible()
    expect(page.locator("#count-won")).to_have_text("1")
    # Focus follows the card, so the next key press acts on the same lead.
    expect(page.locator(f"#lead-{ana.pk} select")).to_be_focused()
    assert StageChange.objects.filter(lead=ana, to_stage__slug="won", via="ui").count() == 1

    # After a reload the board shows what was stored.
    page.reload()
    expect(column(page, "contacted").locator(f"#lead-{jurgen.pk}")).to_be_visible()
    expect(column(page, "won").locator(f"#lead-{ana.pk}")).to_be_visible()
    page.screenshot(path=str(artifacts / "board.png"))


def test_search_the_list_and_read_a_lead(page: Page, workspace, artifacts):
    log_in(page)
    page.get_by_role("link", name="Leads", exact=True).click()
    expect(page.locator(".results-count")).to_contain_text("5 leads")
    page.screenshot(path=str(artifacts / "list.png"))

    page.get_by_role("searchbox", name="Search").fill("müller")
    expect(page.locator(".leads-table tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=m%C3%BCller"))
    page.get_by_role("searchbox", name="Search").fill("612 345 603")
    expect(page.locator(".leads-table tbody tr")).to_have_count(1)
    expect(page.locator(".leads-table tbody")).to_contain_text("Claire Dubois")

    page.get_by_role("link", name="Claire Dubois").click()
    expect(page.get_by_role("heading", name="Claire Dubois", level=1)).to_be_visible()
    answers = page.locator(".answers").first
    # The form's questions, in its order, with its labels.
    expect(answers.locator("dt")).to_have_text(
        ["Your name", "Your email", "Mobile phone", "Which city are you in?"]
    )
    expect(answers.locator("dd").nth(3)).to_have_text("Madrid")
    # Answers the form's questions do not name: a custom field id, a store-locator number.
    others = page.locator(".answers-raw")
    expect(others).to_contain_text("3456789012345678")
    expect(others).to_contain_text("selected_dealer")
    expect(others).to_contain_text("99213450")
    # Disclaimers with their keys.
    expect(page.locator(".checks li.checked")).to_contain_text("marketing_optin")
    expect(page.locator(".checks li.unchecked")).to_contain_text("partner_sharing")
    expect(page.locator(".checks li.unchecked")).to_contain_text("Not checked")
    expect(page.locator(".facts")).to_contain_text("Winter promo - video")
    expect(page.locator(".facts")).to_contain_text("Instagram")

    # A note, added in place.
    page.get_by_role("textbox", name="Note").fill("Called; sending the quote today.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notes .note").first).to_contain_text("Called; sending the quote today.")
    assert Note.objects.get().body == "Called; sending the quote today."
    page.screenshot(path=str(artifacts / "detail.png"), full_page=True)


def test_switch_to_spanish_and_to_chinese(page: Page, workspace, artifacts):
    log_in(page)
    page.locator(".lang-menu summary").click()
    page.get_by_role("button", name="español").click()
    expect(page.get_by_role("heading", name="Embudo")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(column(page, "new").locator("h2")).to_have_text("Nuevo")
    expect(page.locator(".card button").first).to_have_text("Mover")
    page.get_by_role("link", name="Clientes potenciales").click()
    expect(page.locator(".results-count")).to_contain_text("5 clientes potenciales")

    page.locator(".lang-menu summary").click()
    page.get_by_role("button", name="简体中文").click()
    expect(page.get_by_role("heading", name="潜在客户")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("link", name="导出 CSV")).to_be_visible()
    page.get_by_role("link", name="销售管道").click()
    expect(column(page, "new").locator("h2")).to_have_text("新线索")
    page.screenshot(path=str(artifacts / "board-zh-hans.png"))
