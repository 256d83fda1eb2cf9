"""Per-page access and the crm write services."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError

from crm.access import can_access_lead, visible_leads, visible_pages
from crm.models import Assignment, Note, PageAccess
from crm.services import add_note, assign_owner, move_lead
from leads.models import Lead, Page, PipelineStage, StageChange

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def cast():
    """The named cast: a superuser, a salesperson granted page A, one granted nothing."""
    page_a = Page.objects.create(page_id="1", name="A")
    page_b = Page.objects.create(page_id="2", name="B")
    boss = User.objects.create_superuser("boss", password="x")
    ana = User.objects.create_user("ana", password="x", is_staff=True)
    bob = User.objects.create_user("bob", password="x", is_staff=True)
    PageAccess.objects.create(user=ana, page=page_a)
    lead_a = Lead.objects.create(leadgen_id="10", page=page_a, fetch_status="complete")
    lead_b = Lead.objects.create(leadgen_id="20", page=page_b, fetch_status="complete")
    orphan = Lead.objects.create(leadgen_id="30", page=None, fetch_status="complete")
    return {"boss": boss, "ana": ana, "bob": bob, "a": lead_a, "b": lead_b, "orphan": orphan}


def test_superuser_sees_all_staff_only_granted_pages(cast):
    assert set(visible_leads(cast["boss"])) == {cast["a"], cast["b"], cast["orphan"]}
    assert list(visible_leads(cast["ana"])) == [cast["a"]]
    assert list(visible_leads(cast["bob"])) == []
    assert [p.name for p in visible_pages(cast["ana"])] == ["A"]


def test_inactive_and_anonymous_users_see_nothing(cast):
    from django.contrib.auth.models import AnonymousUser

    cast["ana"].is_active = False
    assert list(visible_leads(cast["ana"])) == []
    assert list(visible_leads(AnonymousUser())) == []


def test_moving_a_lead_of_another_page_is_denied_and_changes_nothing(cast):
    won = PipelineStage.objects.get(slug="won")
    with pytest.raises(PermissionDenied):
        move_lead(cast["b"], stage=won, by=cast["ana"], via=StageChange.Via.UI)
    assert Lead.objects.get(pk=cast["b"].pk).stage is None
    assert StageChange.objects.count() == 0


def test_granted_user_moves_and_the_change_records_who_and_via(cast):
    won = PipelineStage.objects.get(slug="won")
    change = move_lead(cast["a"], stage=won, by=cast["ana"], via=StageChange.Via.UI)
    assert (change.from_stage, change.to_stage, change.changed_by, change.via) == (
        None,
        won,
        cast["ana"],
        "ui",
    )
    assert move_lead(cast["a"], stage=won, by=cast["ana"], via=StageChange.Via.UI) is None


def test_a_lead_without_data_cannot_be_moved(cast):
    pending = Lead.objects.create(leadgen_id="40", page=cast["a"].page)
    with pytest.raises(ValidationError):
        move_lead(pending, stage=PipelineStage.first(), by=cast["boss"], via="ui")


def test_owner_must_see_the_lead(cast):
    with pytest.raises(ValidationError):
        assign_owner(cast["b"], owner=cast["ana"], by=cast["boss"])
    assignment = assign_owner(cast["a"], owner=cast["ana"], by=cast["boss"])
    assert (assignment.owner, assignment.assigned_by) == (cast["ana"], cast["boss"])
    assign_owner(cast["a"], owner=None, by=cast["ana"])
    assert Assignment.objects.count() == 0


def test_notes_need_access_and_text(cast):
    with pytest.raises(PermissionDenied):
        add_note(cast["b"], author=cast["ana"], body="hi")
    with pytest.raises(ValidationError):
        add_note(cast["a"], author=cast["ana"], body="   ")
    note = add_note(cast["a"], author=cast["ana"], body="  Called, call back Friday ")
    assert note.body == "Called, call back Friday"
    assert Note.objects.count() == 1
    assert can_access_lead(cast["ana"], cast["a"]) is True
