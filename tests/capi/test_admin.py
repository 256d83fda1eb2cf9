"""The admin pages of the Conversions API: they load for a superuser, show the hashed
payload, status, attempts, Meta's reply, coverage and why events wait, and never a lead's
raw email, phone or name. Stages are editable there too."""

from __future__ import annotations

import hashlib
from html import escape

import pytest
from django.urls import reverse

from capi import sending
from capi.models import ConversionEvent, SendAttempt, SenderState
from leads.models import PipelineStage, StageChange
from leads.pipeline import enter_pipeline, move_stage
from tests.capi.conftest import ANSWERS, make_lead

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("capi_settings")]

RAW = [
    ANSWERS["email"],
    ANSWERS["email"].lower(),
    ANSWERS["phone_number"],
    "34612345678",
    "Jürgen",
    "jürgen",
    "Müller",
    "müller",
]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def world(fake_meta):
    """A sent event, a failed one (Meta refused it), and a pending one."""
    sent_lead, failed_lead, pending_lead = make_lead(), make_lead(), make_lead()
    enter_pipeline(sent_lead)
    enter_pipeline(failed_lead)
    failed = ConversionEvent.objects.get(lead=failed_lead)
    fake_meta.bad = {failed.event_id}
    sending.send_pending()
    enter_pipeline(pending_lead)
    return {
        "sent": ConversionEvent.objects.get(lead=sent_lead),
        "failed": ConversionEvent.objects.get(lead=failed_lead),
        "pending": ConversionEvent.objects.get(lead=pending_lead),
    }


def assert_no_raw_personal_data(html: str) -> None:
    for value in RAW:
        assert value not in html, value


def test_event_list_loads_with_coverage_and_no_raw_data(admin_client, world):
    response = admin_client.get(reverse("admin:capi_conversionevent_changelist"))
    html = response.content.decode()
    assert response.status_code == 200
    assert_no_raw_personal_data(html)
    # The pending event's customer information is hashed when it is first sent.
    assert "Match-key coverage of the 2 events listed" in html
    assert "1 event is not counted yet" in html
    coverage = response.context["coverage"]
    assert [(row["key"], row["percent"]) for row in coverage["keys"]] == [
        (key, 100) for key in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge")
    ]
    for event in world.values():
        assert event.event_id in html
        assert event.lead.leadgen_id in html


def test_coverage_follows_the_filters(admin_client, world):
    make_lead({"email": "solo@example.com"})
    solo = make_lead({"email": "solo2@example.com", "city": "Lyon"})
    enter_pipeline(solo)
    ConversionEvent.objects.filter(status="pending").update(status="failed")  # not sent
    sending.build_missing_user_data(list(ConversionEvent.objects.filter(status="failed")))
    response = admin_client.get(
        reverse("admin:capi_conversionevent_changelist"), {"status__exact": "failed"}
    )
    coverage = {row["key"]: row["count"] for row in response.context["coverage"]["keys"]}
    assert response.context["coverage"]["total"] == 3  # world's failed one, pending, solo
    assert (coverage["em"], coverage["ct"], coverage["ph"]) == (3, 3, 2)


def test_event_detail_shows_hashed_payload_status_attempts_and_reply(admin_client, world):
    sent = world["sent"]
    response = admin_client.get(reverse("admin:capi_conversionevent_change", args=[sent.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert_no_raw_personal_data(html)
    assert sha("jurgen.muller@example.com") in html
    assert escape('"action_source": "system_generated"') in html
    assert "Sent" in html
    assert reverse("admin:capi_sendattempt_change", args=[sent.sent_in_id]) in html
    # View only: no form to overwrite a row the sender owns.
    assert 'name="_save"' not in html


def test_failed_event_detail_shows_metas_message(admin_client, world):
    failed = world["failed"]
    html = admin_client.get(
        reverse("admin:capi_conversionevent_change", args=[failed.pk])
    ).content.decode()
    assert "must contain at least one customer information parameter" in html
    assert_no_raw_personal_data(html)


def test_send_attempt_pages_load(admin_client, world):
    response = admin_client.get(reverse("admin:capi_sendattempt_changelist"))
    assert response.status_code == 200
    assert_no_raw_personal_data(response.content.decode())
    for attempt in SendAttempt.objects.all():
        detail = admin_client.get(reverse("admin:capi_sendattempt_change", args=[attempt.pk]))
        assert detail.status_code == 200
        assert_no_raw_personal_data(detail.content.decode())
    accepted = SendAttempt.objects.filter(outcome=SendAttempt.Outcome.ACCEPTED).first()
    detail = admin_client.get(reverse("admin:capi_sendattempt_change", args=[accepted.pk]))
    assert accepted.fbtrace_id in detail.content.decode()


def test_retry_action_re_pends_failed_events_only(admin_client, world):
    selected = [event.pk for event in world.values()]
    response = admin_client.post(
        reverse("admin:capi_conversionevent_changelist"),
        {"action": "retry_failed", "_selected_action": selected},
        follow=True,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "1 failed event will be sent again." in html
    assert "2 selected events were not failed and were left alone." in html
    statuses = dict(ConversionEvent.objects.values_list("pk", "status"))
    assert statuses == {
        world["sent"].pk: "sent",
        world["failed"].pk: "pending",
        world["pending"].pk: "pending",
    }


def test_events_cannot_be_added_edited_or_deleted_in_the_admin(admin_client, world):
    sent = world["sent"]
    assert admin_client.get(reverse("admin:capi_conversionevent_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:capi_conversionevent_delete", args=[sent.pk])).status_code
        == 403
    )
    response = admin_client.post(
        reverse("admin:capi_conversionevent_change", args=[sent.pk]), {"status": "pending"}
    )
    assert response.status_code == 403
    assert ConversionEvent.objects.get(pk=sent.pk).status == "sent"


def test_missing_dataset_is_shown_on_the_event_list_and_the_sender_state(
    admin_client, world, settings
):
    settings.META_DATASET_ID = ""
    sending.send_pending()
    response = admin_client.get(reverse("admin:capi_conversionevent_changelist"))
    assert "META_DATASET_ID is not set" in response.content.decode()
    state_list = admin_client.get(reverse("admin:capi_senderstate_changelist")).content.decode()
    assert "META_DATASET_ID is not set" in state_list
    detail = admin_client.get(
        reverse("admin:capi_senderstate_change", args=[SenderState.SINGLETON_ID])
    )
    assert detail.status_code == 200
    assert "META_DATASET_ID is not set" in detail.content.decode()


def test_a_paused_sender_shows_why_and_can_be_resumed(admin_client, world, fake_meta):
    fake_meta.fail_next((403, {"error": {"message": "(#200) Permissions error", "code": 200}}))
    sending.send_pending()
    html = admin_client.get(reverse("admin:capi_senderstate_changelist")).content.decode()
    assert "Meta refused access to dataset" in html
    response = admin_client.post(
        reverse("admin:capi_senderstate_changelist"),
        {"action": "resume_sending", "_selected_action": [SenderState.SINGLETON_ID]},
        follow=True,
    )
    assert "Sending resumed." in response.content.decode()
    assert sending.blocker() == ""


# --- Pipeline stages (leads admin) ---------------------------------------------------------------


def test_stages_are_editable_in_the_admin_and_the_next_event_uses_the_new_name(admin_client):
    contacted = PipelineStage.objects.get(slug="contacted")
    response = admin_client.post(
        reverse("admin:leads_pipelinestage_change", args=[contacted.pk]),
        {
            "name": "Called",
            "slug": "contacted",
            "position": 7,
            "event_name": "Called Lead",
            "sends_conversion": "on",
        },
    )
    assert response.status_code == 302
    contacted.refresh_from_db()
    assert (contacted.name, contacted.position, contacted.event_name) == (
        "Called",
        7,
        "Called Lead",
    )
    lead = make_lead()
    enter_pipeline(lead)
    change = move_stage(lead, stage=contacted, via=StageChange.Via.ADMIN)
    assert ConversionEvent.objects.get(stage_change=change).event_name == "Called Lead"


def test_turning_off_sends_conversion_in_the_stage_list_stops_its_events(admin_client):
    stages = list(PipelineStage.objects.order_by("position", "id"))
    data = {
        "form-TOTAL_FORMS": str(len(stages)),
        "form-INITIAL_FORMS": str(len(stages)),
        "_save": "Save",
    }
    for i, stage in enumerate(stages):
        data[f"form-{i}-id"] = str(stage.pk)
        data[f"form-{i}-position"] = str(stage.position)
        data[f"form-{i}-event_name"] = stage.event_name
        if stage.slug != "lost":
            data[f"form-{i}-sends_conversion"] = "on"
    response = admin_client.post(reverse("admin:leads_pipelinestage_changelist"), data)
    assert response.status_code == 302
    lost = PipelineStage.objects.get(slug="lost")
    assert lost.sends_conversion is False
    lead = make_lead()
    enter_pipeline(lead)
    move_stage(lead, stage=lost, via=StageChange.Via.ADMIN)
    assert list(ConversionEvent.objects.filter(lead=lead).values_list("event_name", flat=True)) == [
        "Lead"
    ]
