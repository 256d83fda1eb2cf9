"""The Content-Security-Policy in a real browser (hardening issue 16, item 5): the board, the
list, a lead's page, the admin's changelist and change form, and the API docs each arrive
with the policy, work under it (htmx swaps, drag-and-drop's script, the live refresh of
the board, the list and a lead's page, the admin's scripts, Swagger UI rendering the
schema) and cause no violation and no console error.

Violations are collected twice: Chromium's console messages, and the page's own
`securitypolicyviolation` events, recorded by a script Playwright adds before any of the
page's (it is injected by the browser, so the policy does not apply to it)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page, Response, expect

from crm.services import add_note
from leads.models import Form, Lead, PipelineStage, StageChange
from leads.models import Page as FacebookPage
from leads.pipeline import enter_pipeline, enter_pipeline_many, move_stage
from tests.conftest import load_fixture

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct horse battery staple"
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ` +
      `${event.sourceFile}:${event.lineNumber} (${event.sample})`
  );
});
"""


@pytest.fixture
def leads() -> list[Lead]:
    page = FacebookPage.objects.create(page_id="1111", name="Acme Spain")
    form = Form.objects.create(
        form_id="2222",
        page=page,
        name="Winter form",
        questions=[{"key": "full_name", "label": "Your name", "type": "FULL_NAME"}],
    )
    graph = load_fixture("graph_lead.json")
    rows = [
        Lead.objects.create(
            leadgen_id=f"98765432109876{i:02d}",
            page=page,
            form=form,
            field_data=graph["field_data"],
            custom_disclaimer_responses=graph["custom_disclaimer_responses"],
            full_name=name,
            email=f"person{i}@example.com",
            created_time=f"2025-01-0{i + 1}T10:00:00+00:00",
            fetch_status=Lead.FetchStatus.COMPLETE,
        )
        for i, name in enumerate(["Ana García", "Wei Zhang"])
    ]
    enter_pipeline_many([lead.pk for lead in rows])
    get_user_model().objects.create_superuser("boss", password=PASSWORD)
    return rows


class Watch:
    """Everything the policy refused, and every console error, on one tab."""

    def __init__(self, tab: Page) -> None:
        self.tab = tab
        self.console: list[str] = []
        self.violations: list[str] = []
        tab.on("console", self._console)
        tab.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def _console(self, message: Any) -> None:
        # The admin's pages name no icon, so Chromium asks for /favicon.ico (a 404): not
        # the policy's doing.
        if message.location.get("url", "").endswith("/favicon.ico"):
            return
        if message.type in ("error", "warning") or "Content Security Policy" in message.text:
            self.console.append(f"{message.type}: {message.text}")

    def collect(self) -> None:
        """Read the current document's violations (each navigation starts a new list)."""
        self.violations += self.tab.evaluate("window.__cspViolations || []")

    def visit(self, url: str) -> Response:
        self.collect()
        response = self.tab.goto(url)
        assert response is not None
        return response


@pytest.fixture
def watched(browser, stack) -> Any:
    context = browser.new_context(base_url=stack.url, locale="en-US")
    context.add_init_script(RECORD_VIOLATIONS)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    watch = Watch(tab)
    yield watch
    context.close()


def assert_policy(response: Response) -> None:
    header = response.headers.get("content-security-policy", "")
    directives = dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    assert directives["script-src"] == "'self'", response.url
    assert directives["style-src"] == "'self'", response.url
    assert "no-store" in response.headers.get("cache-control", ""), response.url


def test_every_page_works_under_the_policy_without_a_violation(watched: Watch, leads, stack):
    tab = watched.tab
    ana, wei = leads

    # Log in (the login page is under the policy too).
    assert_policy(watched.visit("/login/"))
    tab.get_by_label("Username").fill("boss")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    expect(tab).to_have_url(re.compile(r"/board/$"))

    # The board: app.js and htmx run; a move by drag and drop, one with the keyboard form.
    assert_policy(watched.visit("/board/"))
    card = tab.locator(f"#lead-{ana.pk}")
    card.drag_to(tab.locator('.column[data-stage="contacted"]'))
    expect(tab.locator(f'.column[data-stage="contacted"] #lead-{ana.pk}')).to_be_visible()
    expect(tab.locator("#live")).to_have_text("Ana García moved to Contacted.")
    # The card's move control opens when the pointer is over the card.
    tab.locator(f"#lead-{wei.pk}").hover()
    tab.locator(f"#lead-{wei.pk} select").select_option("won")
    tab.locator(f"#lead-{wei.pk} button").click()
    expect(tab.locator(f'.column[data-stage="won"] #lead-{wei.pk}')).to_be_visible()

    # The live refresh: a lead entering the pipeline elsewhere shows as a notice, which
    # brings it in; a move made elsewhere moves its card.
    def arrive(leadgen_id: str, name: str) -> Lead:
        lead = Lead.objects.create(
            leadgen_id=leadgen_id,
            page=ana.page,
            form=ana.form,
            full_name=name,
            created_time=dt.datetime(2025, 1, 5, 10, tzinfo=dt.UTC),
            fetch_status=Lead.FetchStatus.COMPLETE,
        )
        enter_pipeline(lead)
        return lead

    zoe = arrive("9876543210987690", "Zoé Live")
    tab.locator("#board-notice .live-notice").click()
    expect(tab.locator(f"#lead-{zoe.pk}")).to_be_visible()
    move_stage(zoe, stage=PipelineStage.objects.get(slug="lost"), via=StageChange.Via.API)
    expect(tab.locator(f'.column[data-stage="lost"] #lead-{zoe.pk}')).to_be_visible()

    # The list, searched in place (an htmx swap).
    assert_policy(watched.visit("/leads/"))
    tab.get_by_role("searchbox", name="Search").fill("wei")
    expect(tab.locator(".leads-table tbody tr")).to_have_count(1)
    expect(tab).to_have_url(re.compile(r"q=wei"))
    # The page pushed to history is not kept in the tab's storage (htmx's history cache is
    # off, templates/base.html): going back asks the server, whose answer is no-store.
    assert tab.evaluate("sessionStorage.getItem('htmx-history-cache')") is None
    tab.go_back()
    expect(tab.locator(".leads-table tbody tr")).to_have_count(3)
    # New leads wait behind the list's notice; a move made elsewhere updates its row.
    arrive("9876543210987691", "Yann Live")
    move_stage(
        Lead.objects.get(pk=ana.pk),
        stage=PipelineStage.objects.get(slug="won"),
        via=StageChange.Via.API,
    )
    expect(tab.locator(f"#row-{ana.pk} .badge-stage")).to_have_text("Won")
    tab.locator("#list-notice .live-notice").click()
    expect(tab.locator(".leads-table tbody tr")).to_have_count(4)

    # A lead's page, and a note added in place.
    assert_policy(watched.visit(f"/leads/{ana.pk}/"))
    tab.get_by_role("textbox", name="Note").fill("Called under a strict policy.")
    tab.get_by_role("button", name="Add note").click()
    expect(tab.locator(".notes .note").first).to_contain_text("Called under a strict policy.")
    # A note added elsewhere comes in place.
    add_note(ana, author=get_user_model().objects.get(username="boss"), body="From elsewhere.")
    expect(tab.locator(".notes .note").first).to_contain_text("From elsewhere.")

    # The admin: the changelist (actions, filters, search) and a change form.
    assert_policy(watched.visit("/admin/"))
    assert_policy(watched.visit("/admin/leads/lead/"))
    expect(tab.locator("#result_list")).to_contain_text("Ana García")
    tab.locator("#action-toggle").check()  # the admin's actions.js selects every row
    expect(tab.locator(".action-counter")).to_contain_text("4 of 4 selected")
    assert_policy(watched.visit(f"/admin/leads/lead/{ana.pk}/change/"))
    expect(tab.locator("#content h1")).to_be_visible()
    assert_policy(watched.visit("/admin/leads/pipelinestage/add/"))
    expect(tab.locator("#pipelinestage_form")).to_be_visible()

    # The API docs: Swagger UI's bundles and start-up script load, and it renders the
    # schema it fetched.
    assert_policy(watched.visit("/api/v1/docs/"))
    expect(tab.locator(".swagger-ui .info .title")).to_contain_text("Leadloop API")
    expect(tab.locator(".opblock-tag-section").first).to_be_visible()
    tab.locator(".opblock-summary").first.click()
    expect(tab.locator(".opblock-body").first).to_be_visible()

    watched.collect()
    assert watched.violations == [], f"CSP violations: {watched.violations}"
    assert watched.console == [], f"Console errors: {watched.console}\n{stack.output()}"

    # The watch sees what the policy refuses: an injected style attribute and handler.
    tab.evaluate(
        """document.body.insertAdjacentHTML(
            "beforeend", '<p style="color: red">x</p><img src="/none" onerror="alert(1)">'
        )"""
    )
    expect(tab.locator("img[src='/none']")).to_have_count(1)
    tab.wait_for_function(
        """["script-src-attr", "style-src-attr"].every(
            (directive) => window.__cspViolations.some((v) => v.startsWith(directive + " "))
        )"""
    )
    watched.collect()
    # (Chromium may report the style attribute more than once.)
    assert {v.split(" ", 1)[0] for v in watched.violations} == {
        "script-src-attr",
        "style-src-attr",
    }
