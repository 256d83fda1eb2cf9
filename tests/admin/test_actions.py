"""The admin's actions do what they say through the services of `leads` and `capi`, and
are safe to repeat."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from capi.models import ConversionEvent
from leads.models import Lead, PipelineStage, StageChange, WebhookDelivery
from tests.admin.conftest import HOSTILE, PAGE_TOKEN, signed_delivery
from tests.conftest import GRAPH, change_value, graph_lead, leadgen_body, queued_tasks, run_tasks

pytestmark = pytest.mark.django_db


def act(client, label: str, action: str, pks: list, callbacks, **extra):
    with callbacks(execute=True):
        return client.post(
            reverse(f"admin:{label}_changelist"),
            {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], **extra},
            follow=not extra.get("_no_follow"),
        )


def fetch_tasks() -> list[dict]:
    fetches = ("leads.tasks.fetch_leads", "leads.tasks.fetch_leads_by_leadgen_id")
    return [t for t in queued_tasks() if t["func"] in fetches]


# -- Re-fetch -------------------------------------------------------------------------------


def test_refetch_requeues_a_failed_lead_once_and_leaves_complete_leads_alone(
    world, admin_client, django_capture_on_commit_callbacks, mocked_graph
):
    queued_tasks()  # what the fixture's webhook queued is not this test's
    Lead.objects.filter(pk=world.waiting.pk).update(
        fetch_status=Lead.FetchStatus.FAILED, fetch_attempts=5, fetch_error="(#100) bad"
    )
    pks = [world.waiting.pk, world.lead.pk]
    for _ in range(2):  # twice: the second request is absorbed
        response = act(
            admin_client, "leads_lead", "refetch", pks, django_capture_on_commit_callbacks
        )
        assert response.status_code == 200
    assert "1 lead will be fetched from Meta." in response.content.decode()
    waiting = Lead.objects.get(pk=world.waiting.pk)
    assert (waiting.fetch_status, waiting.fetch_attempts, waiting.fetch_error) == (
        "pending",
        0,
        "",
    )
    tasks = fetch_tasks()
    assert [t["args"] for t in tasks] == [([world.waiting.pk],), ([world.waiting.pk],)]
    lookup = mocked_graph.get(f"{GRAPH}/5555", json=graph_lead("5555"))
    run_tasks(tasks)
    assert lookup.call_count == 1  # the duplicate task found the lead complete
    assert Lead.objects.get(pk=world.waiting.pk).fetch_status == "complete"
    # The complete lead was not touched: no fetch of it was queued.
    assert Lead.objects.get(pk=world.lead.pk).fetched_at is None


def test_refetch_including_complete_fetches_a_complete_lead_again(
    world, admin_client, django_capture_on_commit_callbacks, mocked_graph
):
    queued_tasks()
    act(
        admin_client,
        "leads_lead",
        "refetch_complete",
        [world.lead.pk],
        django_capture_on_commit_callbacks,
    )
    lookup = mocked_graph.get(
        f"{GRAPH}/{world.lead.leadgen_id}", json=graph_lead(world.lead.leadgen_id)
    )
    run_tasks(fetch_tasks())
    assert lookup.call_count == 1
    lead = Lead.objects.get(pk=world.lead.pk)
    assert lead.fetch_status == "complete"
    assert lead.email == "Jurgen.Muller@Example.com"  # the fresh Graph answer
    # Already in the pipeline: a refresh is not a stage change.
    assert lead.stage_changes.count() == 1


# -- Move stage -----------------------------------------------------------------------------


def test_move_stage_asks_for_the_stage_then_moves_via_admin_and_sends_a_conversion(
    world, admin_client, admin_user, django_capture_on_commit_callbacks
):
    target = PipelineStage.objects.filter(sends_conversion=True).order_by("-position").first()
    url = reverse("admin:leads_lead_changelist")
    pks = [str(world.lead.pk), str(world.waiting.pk)]
    page = admin_client.post(url, {"action": "move_to_stage", ACTION_CHECKBOX_NAME: pks})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Move leads to a stage" in html
    assert f'value="{target.pk}"' in html
    assert StageChange.objects.filter(via="admin").count() == 0

    events_before = ConversionEvent.objects.filter(lead=world.lead).count()
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            url,
            {
                "action": "move_to_stage",
                "index": "0",
                "select_across": "0",
                ACTION_CHECKBOX_NAME: pks,
                "stage": str(target.pk),
                "apply": "Move",
            },
            follow=True,
        )
    html = response.content.decode()
    assert "1 moved to" in html
    assert "1 not moved: their data has not arrived from Meta yet." in html
    change = StageChange.objects.get(lead=world.lead, via="admin")
    assert (change.to_stage, change.changed_by) == (target, admin_user)
    assert ConversionEvent.objects.filter(lead=world.lead).count() == events_before + 1
    assert ConversionEvent.objects.get(stage_change=change).event_name == target.event_name
    assert not StageChange.objects.filter(lead=world.waiting).exists()
    # Moving again to the same stage records nothing.
    admin_client.post(
        url,
        {
            "action": "move_to_stage",
            "index": "0",
            ACTION_CHECKBOX_NAME: pks[:1],
            "stage": str(target.pk),
            "apply": "Move",
        },
    )
    assert StageChange.objects.filter(lead=world.lead, via="admin").count() == 1


# -- Export CSV -----------------------------------------------------------------------------


def test_export_csv_streams_the_selected_leads(world, admin_client):
    Lead.objects.filter(pk=world.waiting.pk).update(full_name='=HYPERLINK("http://x")')
    response = admin_client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "export_csv", ACTION_CHECKBOX_NAME: [world.lead.pk, world.waiting.pk]},
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="leads-')
    text = b"".join(response.streaming_content).decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    by_id = {row["leadgen_id"]: row for row in rows}
    assert set(by_id) == {"1234567890123456", "5555"}
    ana = by_id["1234567890123456"]
    assert ana["email"] == "ana@example.com"
    assert ana["stage"] == world.lead.stage.slug
    assert f"favourite: {HOSTILE}" in ana["answers"]
    assert ana["disclaimers"] == "marketing_optin=checked; partner_<sharing>=unchecked"
    assert by_id["5555"]["full_name"] == '\'=HYPERLINK("http://x")'


def test_export_csv_defuses_line_feed_and_full_width_formulas(world, admin_client):
    Lead.objects.filter(pk=world.waiting.pk).update(
        full_name="\n=HYPERLINK(1)",
        email="\uff1d1+1",
        field_data=[{"name": "\uff0bq", "values": ["x"]}],
        custom_disclaimer_responses=[{"checkbox_key": "\uff20optin", "is_checked": "1"}],
    )
    response = admin_client.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "export_csv", ACTION_CHECKBOX_NAME: [world.waiting.pk]},
    )
    text = b"".join(response.streaming_content).decode("utf-8")
    (row,) = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert row["full_name"] == "'\n=HYPERLINK(1)"
    assert row["email"] == "'\uff1d1+1"
    assert row["answers"] == "'\uff0bq: x"
    assert row["disclaimers"] == "'\uff20optin=checked"


# -- Reprocess ------------------------------------------------------------------------------


def test_reprocess_twice_makes_one_lead_and_one_fetch(
    world, admin_client, django_capture_on_commit_callbacks, settings
):
    queued_tasks()
    delivery = signed_delivery(
        leadgen_body([[change_value(4242, page_id=1111, form_id=2222)]]),
        secret=settings.META_APP_SECRET,
    )
    # As if processing had failed: the savepoint rolled the lead back.
    Lead.objects.filter(leadgen_id="4242").delete()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, error="RuntimeError: bug", leads_created=0
    )
    queued_tasks()
    for _ in range(2):
        response = act(
            admin_client,
            "leads_webhookdelivery",
            "reprocess",
            [delivery.pk, world.unsigned.pk],
            django_capture_on_commit_callbacks,
        )
    html = response.content.decode()
    assert "1 deliveries reprocessed; 0 new leads." in html
    assert "1 deliveries were not validly signed and were left alone." in html
    assert Lead.objects.filter(leadgen_id="4242").count() == 1
    assert [t["args"] for t in fetch_tasks()] == [(["4242"],)]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.error, delivery.leads_created) == ("processed", "", 1)
    # The unsigned delivery made nothing and stays as it was.
    world.unsigned.refresh_from_db()
    assert world.unsigned.status == "invalid_signature"
    assert not Lead.objects.filter(leadgen_id="8888").exists()


def test_reprocess_of_a_delivery_whose_lead_is_complete_queues_no_fetch(
    world, admin_client, django_capture_on_commit_callbacks
):
    queued_tasks()
    Lead.objects.filter(leadgen_id="7777").update(fetch_status=Lead.FetchStatus.COMPLETE)
    act(
        admin_client,
        "leads_webhookdelivery",
        "reprocess",
        [world.delivery.pk],
        django_capture_on_commit_callbacks,
    )
    assert Lead.objects.filter(leadgen_id="7777").count() == 1
    assert fetch_tasks() == []


def test_a_tampered_stored_body_is_never_reprocessed(
    world, admin_client, django_capture_on_commit_callbacks
):
    body = json.dumps(leadgen_body([[change_value(31337, page_id=1111)]])).encode()
    WebhookDelivery.objects.filter(pk=world.delivery.pk).update(body=body)
    act(
        admin_client,
        "leads_webhookdelivery",
        "reprocess",
        [world.delivery.pk],
        django_capture_on_commit_callbacks,
    )
    assert not Lead.objects.filter(leadgen_id="31337").exists()


# -- Retry conversion events ----------------------------------------------------------------


def test_retry_re_pends_failed_events_only(world, admin_client, django_capture_on_commit_callbacks):
    events = world.events
    response = act(
        admin_client,
        "capi_conversionevent",
        "retry_failed",
        [e.pk for e in events.values()],
        django_capture_on_commit_callbacks,
    )
    html = response.content.decode()
    assert "1 failed event will be sent again." in html
    statuses = {k: ConversionEvent.objects.get(pk=e.pk).status for k, e in events.items()}
    assert statuses == {"sent": "sent", "failed": "pending", "pending": "pending"}


def test_event_page_shows_payload_status_attempts_and_metas_reply(world, admin_client):
    failed = world.events["failed"]
    html = admin_client.get(
        reverse("admin:capi_conversionevent_change", args=[failed.pk])
    ).content.decode()
    for text in (
        "&quot;action_source&quot;: &quot;system_generated&quot;",
        "(#100) Invalid parameter",
        failed.event_id,
        "Failed",
    ):
        assert text in html


# -- Sync now -------------------------------------------------------------------------------


def test_sync_now_on_a_page_reads_its_forms_and_leads_in_the_background(
    world, admin_client, django_capture_on_commit_callbacks, mocked_graph, settings
):
    queued_tasks()
    settings.META_ACCESS_TOKEN = ""  # so a page without its own token has none
    no_token = type(world.page).objects.create(page_id="9999")
    forms = mocked_graph.get(
        f"{GRAPH}/1111/leadgen_forms",
        json={
            "data": [
                {
                    "id": "2222",
                    "name": "Winter form",
                    "status": "ACTIVE",
                    "questions": [{"key": "email", "label": "Email", "type": "EMAIL"}],
                }
            ]
        },
    )
    leads = mocked_graph.get(
        f"{GRAPH}/2222/leads", json={"data": [graph_lead("6161", form_id="2222")]}
    )
    response = act(
        admin_client,
        "leads_page",
        "sync_now",
        [world.page.pk, no_token.pk],
        django_capture_on_commit_callbacks,
    )
    html = response.content.decode()
    assert "Sync queued for 1 pages and 0 forms" in html
    assert "1 selected had no usable token and were skipped" in html
    tasks = [t for t in queued_tasks() if t["func"] == "leads.tasks.sync_now"]
    assert [t["args"] for t in tasks] == [([world.page.pk], [])]
    assert forms.call_count == 0  # nothing was read in the request
    run_tasks(tasks)
    assert forms.call_count == 1
    assert leads.call_count == 1
    assert forms.calls[0].request.headers["Authorization"] == f"Bearer {PAGE_TOKEN}"
    lead = Lead.objects.get(leadgen_id="6161")
    assert (lead.source, lead.fetch_status, lead.form.form_id) == ("bulk", "complete", "2222")
    world.form.refresh_from_db()
    assert world.form.leads_sync_at is not None
    assert world.form.leads_sync_error == ""


def test_sync_now_on_a_form_queues_its_read(
    world, admin_client, django_capture_on_commit_callbacks
):
    queued_tasks()
    act(admin_client, "leads_form", "sync_now", [world.form.pk], django_capture_on_commit_callbacks)
    tasks = [t for t in queued_tasks() if t["func"] == "leads.tasks.sync_now"]
    assert [t["args"] for t in tasks] == [([], [world.form.pk])]


# -- Rendering ------------------------------------------------------------------------------


def test_answers_are_rendered_as_an_escaped_table_with_question_labels(world, admin_client):
    html = admin_client.get(
        reverse("admin:leads_lead_change", args=[world.lead.pk])
    ).content.decode()
    assert "<script>alert" not in html
    assert (
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&#x27;; DROP TABLE leads_lead; --" in html
    )
    assert "Ana &lt;b&gt;García&lt;/b&gt;" in html
    assert "&lt;b&gt;Favourite&lt;/b&gt; colour" in html  # the form's label, escaped
    assert "<code>3456789012345678</code>" in html  # a custom field id shows as it is
    assert "<code>marketing_optin</code>: checked" in html
    assert "<code>partner_&lt;sharing&gt;</code>: unchecked" in html
    assert "<details><summary>Show the raw JSON</summary>" in html
    # Inlines: stage history, notes (crm), conversion events (capi).
    assert "Called &lt;b&gt;twice&lt;/b&gt;" in html
    assert world.events["pending"].event_id in html
    assert "Stage changes" in html or "stage changes" in html


def test_form_questions_and_delivery_are_rendered_escaped(world, admin_client):
    html = admin_client.get(
        reverse("admin:leads_form_change", args=[world.form.pk])
    ).content.decode()
    assert "&lt;b&gt;Favourite&lt;/b&gt; colour" in html
    assert "<td>Red</td>" in html
    html = admin_client.get(
        reverse("admin:leads_webhookdelivery_change", args=[world.delivery.pk])
    ).content.decode()
    assert "HTTP_X_HUB_SIGNATURE_256" in html
    assert "&quot;leadgen_id&quot;: 7777" in html
