"""Every stage change is recorded (from, to, when, who, via) by the one stage-change service,
the first entry into the pipeline included."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from capi.models import ConversionEvent
from leads.models import PipelineStage, StageChange
from leads.pipeline import enter_pipeline, enter_pipeline_many, move_stage
from tests.capi.conftest import make_lead

pytestmark = pytest.mark.django_db


def stage(slug: str) -> PipelineStage:
    return PipelineStage.objects.get(slug=slug)


def test_the_default_pipeline_starts_with_a_stage_that_sends_lead():
    first = PipelineStage.first()
    assert (first.slug, first.event_name, first.sends_conversion) == ("new", "Lead", True)


def test_every_change_is_recorded_from_to_when_who_via():
    ana = get_user_model().objects.create_user("ana")
    lead = make_lead()
    entered = enter_pipeline(lead)
    at = dt.datetime(2030, 5, 1, 12, 0, tzinfo=dt.UTC)
    moved = move_stage(lead, stage=stage("contacted"), via=StageChange.Via.UI, by=ana, at=at)
    again = move_stage(lead, stage=stage("won"), via=StageChange.Via.API, by=ana)
    by_admin = move_stage(lead, stage=stage("lost"), via=StageChange.Via.ADMIN, by=ana)

    rows = list(
        StageChange.objects.filter(lead=lead)
        .order_by("pk")
        .values_list("from_stage__slug", "to_stage__slug", "changed_by__username", "via")
    )
    assert rows == [
        (None, "new", None, "system"),
        ("new", "contacted", "ana", "ui"),
        ("contacted", "won", "ana", "api"),
        ("won", "lost", "ana", "admin"),
    ]
    assert moved.changed_at == at
    assert entered.changed_at <= again.changed_at <= by_admin.changed_at
    lead.refresh_from_db()
    assert (lead.stage.slug, lead.stage_changed_at) == ("lost", by_admin.changed_at)


def test_an_anonymous_user_is_not_recorded_as_who():
    lead = make_lead()
    enter_pipeline(lead)
    change = move_stage(lead, stage=stage("contacted"), via=StageChange.Via.API, by=AnonymousUser())
    assert change.changed_by is None


def test_moving_to_the_current_stage_records_nothing_and_sends_nothing():
    lead = make_lead()
    enter_pipeline(lead)
    assert move_stage(lead, stage=stage("new"), via=StageChange.Via.UI) is None
    assert StageChange.objects.filter(lead=lead).count() == 1
    assert ConversionEvent.objects.filter(lead=lead).count() == 1


def test_entering_twice_records_one_entry():
    lead = make_lead()
    assert enter_pipeline_many([lead.pk]) != []
    assert enter_pipeline_many([lead.pk]) == []
    assert StageChange.objects.filter(lead=lead).count() == 1
    assert ConversionEvent.objects.filter(lead=lead).count() == 1
