"""The lead detail: answers in the form's order, disclaimers, source, history, conversion
events, notes, owner and stage."""

from __future__ import annotations

import re

import pytest
from django.apps import apps

from crm.models import Assignment, Note
from crm.selectors import lead_answers, lead_disclaimers
from leads.models import Lead, StageChange

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def text(html: str) -> str:
    """The page's text with tags and runs of whitespace collapsed, for reading order."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_answers_follow_the_form_questions_then_the_rest_as_sent(cast):
    in_form, others = lead_answers(cast["a1"])
    assert [(a.key, a.label, a.values) for a in in_form] == [
        ("email", "Your email", ("Jurgen.Muller@Example.com",)),
        ("full_name", "Your name", ("Jürgen Müller",)),
        ("city", "Which city?", ("Madrid",)),
        ("phone_number", "Phone", ("+34 612 345 678",)),
        ("zip_code", "ZIP", ()),  # asked, not answered
    ]
    assert [(a.key, a.values) for a in others] == [
        ("3456789012345678", ("Mañana por la tarde",)),
        ("which_services_interest_you?", ("Installation", "Maintenance")),
        ("selected_dealer", ("99213450",)),
    ]


def test_without_form_questions_every_answer_is_shown_with_standard_labels(cast):
    in_form, others = lead_answers(cast["b1"])
    assert in_form == []
    assert [(a.key, str(a.label)) for a in others][:3] == [
        ("full_name", "Full name"),
        ("email", "Email"),
        ("phone_number", "Phone number"),
    ]


def test_odd_shapes_in_field_data_do_not_break_the_page(login, cast):
    lead = cast["a1"]
    Lead.objects.filter(pk=lead.pk).update(
        field_data=[{"name": "city"}, "junk", {"values": ["x"]}, {"name": "n", "values": "one"}],
        custom_disclaimer_responses={"not": "a list"},
    )
    response = login(cast["boss"]).get(f"/leads/{lead.pk}/")
    assert response.status_code == 200
    lead.refresh_from_db()
    assert lead_disclaimers(lead) == []
    _, others = lead_answers(lead)
    assert [(a.key, a.values) for a in others] == [("n", ("one",))]


def test_detail_page_shows_everything_meta_sent(login, cast):
    lead = cast["a1"]
    html = login(cast["ana"]).get(f"/leads/{lead.pk}/").content.decode()
    page = text(html)
    # Questions in the form's order with the form's labels, then the other answers.
    order = [
        "Your email",
        "Your name",
        "Which city?",
        "Phone",
        "ZIP",
        "3456789012345678",
        "Mañana por la tarde",
        "which_services_interest_you?",
        "Installation",
        "Maintenance",
        "selected_dealer",
        "99213450",
    ]
    positions = [page.index(label) for label in order]
    assert positions == sorted(positions)
    # Disclaimers with their keys, checked and unchecked.
    assert re.search(r'class="checked".*?marketing_optin.*?Checked', html, re.S)
    assert re.search(r'class="unchecked".*?partner_sharing.*?Not checked', html, re.S)
    # Source: ad, campaign (names and ids), platform, paid or organic.
    for value in ("Winter promo - video", "120210000000000001", "Winter leads 2025"):
        assert value in page
    assert "Instagram" in page and "Paid" in page
    assert lead.leadgen_id in page


def test_detail_shows_fetch_failures(login, cast):
    lead = cast["pending"]
    Lead.objects.filter(pk=lead.pk).update(
        fetch_status=Lead.FetchStatus.FAILED, fetch_attempts=8, fetch_error="Graph 500: boom"
    )
    html = login(cast["ana"]).get(f"/leads/{lead.pk}/").content.decode()
    assert "Fetch failed" in html
    assert "after 8 attempts" in html
    assert "Graph 500: boom" in html


def test_stage_history_and_conversion_events(login, cast):
    client = login(cast["ana"])
    lead = cast["a1"]
    response = client.post(f"/leads/{lead.pk}/move/", {"stage": "won"})
    assert response.status_code == 302
    page = text(client.get(f"/leads/{lead.pk}/").content.decode())
    assert "New → Won" in page
    assert "Ana · Web UI" in page
    assert "Entered New" in page
    assert "Leadloop · System" in page
    if apps.is_installed("capi") and any(
        m._meta.model_name == "conversionevent" for m in apps.get_app_config("capi").get_models()
    ):
        events = apps.get_model("capi", "ConversionEvent").objects.filter(lead=lead)
        assert events.count() == 2  # the entry into New and the move to Won
        assert "Conversion events" in page
        for event in events:
            assert event.event_name in page


def test_notes_are_added_with_htmx_and_without(login, cast):
    client = login(cast["ana"])
    lead = cast["a1"]
    fragment = client.post(f"/leads/{lead.pk}/notes/", {"body": "Called, back Friday"}, **HTMX)
    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert html.lstrip().startswith('<section class="panel" id="notes"')
    assert "Called, back Friday" in html
    plain = client.post(f"/leads/{lead.pk}/notes/", {"body": "Sent the quote"})
    assert plain["Location"] == f"/leads/{lead.pk}/#notes"
    assert list(Note.objects.filter(lead=lead).values_list("body", "author__username")) == [
        ("Sent the quote", "ana"),
        ("Called, back Friday", "ana"),
    ]


def test_an_empty_note_is_refused(login, cast):
    response = login(cast["ana"]).post(f"/leads/{cast['a1'].pk}/notes/", {"body": "  "}, **HTMX)
    assert 'class="field-error"' in response.content.decode()
    assert Note.objects.count() == 0


def test_owner_choices_are_the_people_who_can_see_the_lead(login, cast):
    response = login(cast["ana"]).get(f"/leads/{cast['a1'].pk}/")
    owners = {user.username for user in response.context["owner_form"].fields["owner"].queryset}
    assert owners == {"ana", "boss"}  # not bob: page A is not granted to him


def test_assigning_and_unassigning_an_owner(login, cast):
    client = login(cast["ana"])
    lead = cast["a1"]
    client.post(f"/leads/{lead.pk}/owner/", {"owner": cast["ana"].pk})
    assignment = Assignment.objects.get(lead=lead)
    assert (assignment.owner, assignment.assigned_by) == (cast["ana"], cast["ana"])
    page = client.get(f"/leads/{lead.pk}/").content.decode()
    assert "is now owned by Ana" in page
    client.post(f"/leads/{lead.pk}/owner/", {"owner": ""})
    assert not Assignment.objects.filter(lead=lead).exists()


def test_an_owner_who_cannot_see_the_lead_is_refused(login, cast):
    response = login(cast["boss"]).post(f"/leads/{cast['a1'].pk}/owner/", {"owner": cast["bob"].pk})
    assert response.status_code == 302
    assert not Assignment.objects.exists()


def test_stage_form_on_the_detail_page(login, cast):
    client = login(cast["ana"])
    lead = cast["a1"]
    response = client.post(
        f"/leads/{lead.pk}/move/", {"stage": "qualified", "next": f"/leads/{lead.pk}/"}
    )
    assert response["Location"] == f"/leads/{lead.pk}/"
    assert StageChange.objects.filter(lead=lead, to_stage__slug="qualified", via="ui").exists()
