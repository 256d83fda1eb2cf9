"""The admin follows page access as the sales UI does (crm.access, applied through
leads.visibility): a staff user granted page A, with every permission on leads, notes,
owners, grants and conversion events, finds nothing of page B anywhere in /admin/ (lists,
object pages, history, delete pages, actions, the CSV import and its choices, the
autocomplete answers, list filters, raw id labels, inlines) and changes nothing of it,
while page A's rows work as before. Superusers still see everything.

The cast: `admin` (superuser), `bea` (staff, granted page A only) and `sales` (the
`world` fixture's user, granted page B). Page B is `world`'s page, with its leads, notes,
owner, events and deliveries; page A is built here."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from capi.models import ConversionEvent
from crm import access
from crm.models import Assignment, Note, PageAccess
from leads import visibility
from leads.admin import PageScopedAdmin
from leads.models import Form, Lead, Page, PipelineStage, StageChange
from leads.pipeline import enter_pipeline
from tests.admin.conftest import PAGE_TOKEN, World, make_leads
from tests.conftest import GRAPH, queued_tasks

pytestmark = pytest.mark.django_db


@dataclass
class Side:
    """One page's rows, one of each kind."""

    page: Page
    form: Form
    lead: Lead
    stage_change: StageChange
    event: ConversionEvent
    note: Note
    assignment: Assignment
    grant: PageAccess

    def rows(self) -> dict[str, Model]:
        return {
            "leads_page": self.page,
            "leads_form": self.form,
            "leads_lead": self.lead,
            "leads_stagechange": self.stage_change,
            "capi_conversionevent": self.event,
            "crm_note": self.note,
            "crm_assignment": self.assignment,
            "crm_pageaccess": self.grant,
        }


@dataclass
class Cast:
    a: Side
    b: Side
    bea: Any
    bea_client: Client
    world: World


@pytest.fixture
def cast(world, admin_user) -> Cast:
    page = Page.objects.create(page_id="3333", name="Alpha page")
    form = Form.objects.create(form_id="4444", page=page, name="Alpha form")
    (lead,) = make_leads(1, page=page, form=form, start=500)
    enter_pipeline(lead)
    bea = get_user_model().objects.create_user("bea", password="x", is_staff=True)
    bea.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["leads", "crm", "capi"])
        | Permission.objects.filter(content_type__app_label="auth", codename="view_user")
    )
    grant = PageAccess.objects.create(user=bea, page=page, granted_by=admin_user)
    a = Side(
        page=page,
        form=form,
        lead=lead,
        stage_change=StageChange.objects.get(lead=lead),
        event=ConversionEvent.objects.get(lead=lead),
        note=Note.objects.create(lead=lead, author=bea, body="Alpha note"),
        assignment=Assignment.objects.create(lead=lead, owner=bea, assigned_by=admin_user),
        grant=grant,
    )
    b = Side(
        page=world.page,
        form=world.form,
        lead=world.lead,
        stage_change=StageChange.objects.filter(lead=world.lead).get(),
        event=world.events["failed"],
        note=Note.objects.get(lead=world.lead),
        assignment=Assignment.objects.get(lead=world.lead),
        grant=PageAccess.objects.get(page=world.page),
    )
    client = Client()
    client.force_login(bea)
    return Cast(a=a, b=b, bea=bea, bea_client=client, world=world)


def changelist_pks(client: Client, label: str, query: str = "") -> set[int]:
    response = client.get(reverse(f"admin:{label}_changelist") + query)
    assert response.status_code == 200, label
    return {obj.pk for obj in response.context["cl"].result_list}


def act(client: Client, label: str, action: str, pks: list[int], **extra: Any):
    return client.post(
        reverse(f"admin:{label}_changelist"),
        {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks], **extra},
    )


def csv_rows(response) -> list[dict[str, str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def not_found(response) -> bool:
    """Django's answer for an object that does not exist: back to the index."""
    return response.status_code == 302 and response["Location"] == reverse("admin:index")


def b_pks(cast: Cast, label: str) -> set[int]:
    """Every row of `label` on page B (the world has several leads, events, changes)."""
    b = cast.b.page
    return {
        "leads_page": {b.pk},
        "leads_form": set(Form.objects.filter(page=b).values_list("pk", flat=True)),
        "leads_lead": set(Lead.objects.filter(page=b).values_list("pk", flat=True)),
        "leads_stagechange": set(
            StageChange.objects.filter(lead__page=b).values_list("pk", flat=True)
        ),
        "capi_conversionevent": set(
            ConversionEvent.objects.filter(lead__page=b).values_list("pk", flat=True)
        ),
        "crm_note": set(Note.objects.filter(lead__page=b).values_list("pk", flat=True)),
        "crm_assignment": set(Assignment.objects.filter(lead__page=b).values_list("pk", flat=True)),
        "crm_pageaccess": set(PageAccess.objects.filter(page=b).values_list("pk", flat=True)),
    }[label]


LABELS = sorted(
    [
        "leads_page",
        "leads_form",
        "leads_lead",
        "leads_stagechange",
        "capi_conversionevent",
        "crm_note",
        "crm_assignment",
        "crm_pageaccess",
    ]
)


# -- Lists ----------------------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_a_list_shows_the_users_pages_only_and_everything_to_a_superuser(cast, admin_client, label):
    a_row = cast.a.rows()[label]
    assert changelist_pks(cast.bea_client, label) == {a_row.pk}
    assert changelist_pks(admin_client, label) == {a_row.pk} | b_pks(cast, label)


def test_the_lead_list_is_the_sales_uis_visible_leads(cast, admin_client):
    # A lead of no page (a CSV import without a known form) is a superuser's only.
    orphan = Lead.objects.create(leadgen_id="777000", fetch_status="complete")
    bea_sees = changelist_pks(cast.bea_client, "leads_lead")
    assert bea_sees == set(access.visible_leads(cast.bea).values_list("pk", flat=True))
    assert bea_sees == {cast.a.lead.pk}
    assert orphan.pk in changelist_pks(admin_client, "leads_lead")


def test_searching_and_filtering_do_not_reach_another_page(cast):
    assert changelist_pks(cast.bea_client, "leads_lead", "?q=ana@example.com") == set()
    assert changelist_pks(cast.bea_client, "leads_lead", f"?page__id__exact={cast.b.page.pk}") == (
        set()
    )
    assert changelist_pks(
        cast.bea_client, "capi_conversionevent", f"?q={cast.b.lead.leadgen_id}"
    ) == (set())


def test_list_filters_name_the_users_pages_and_forms_only(cast, admin_client):
    def choices(client: Client, label: str) -> dict[str, list]:
        response = client.get(reverse(f"admin:{label}_changelist"))
        return {
            spec.field_path: list(spec.lookup_choices)
            for spec in response.context["cl"].filter_specs
            if getattr(spec, "field_path", None) in ("page", "form")
        }

    a, b = cast.a, cast.b
    assert choices(cast.bea_client, "leads_lead") == {
        "page": [(a.page.pk, "Alpha page (3333)")],
        "form": [(a.form.pk, "Alpha form (4444)")],
    }
    assert choices(cast.bea_client, "leads_form") == {"page": [(a.page.pk, "Alpha page (3333)")]}
    # One page to choose from (and no "no page" choice) is no filter at all.
    assert choices(cast.bea_client, "crm_pageaccess") == {}
    assert choices(admin_client, "crm_pageaccess") == {
        "page": [(b.page.pk, str(b.page)), (a.page.pk, "Alpha page (3333)")]
    }
    html = cast.bea_client.get(reverse("admin:leads_lead_changelist")).content.decode()
    assert "Acme" not in html
    assert "Winter form" not in html
    # A superuser's filters list both pages.
    assert choices(admin_client, "leads_lead")["page"] == [
        (b.page.pk, str(b.page)),
        (a.page.pk, "Alpha page (3333)"),
    ]


def test_conversion_coverage_counts_the_users_events_only(cast, admin_client):
    def counted(client: Client) -> int:
        response = client.get(reverse("admin:capi_conversionevent_changelist"))
        coverage = response.context["coverage"]
        return coverage["total"] + coverage["pending"]

    assert counted(cast.bea_client) == 1
    assert counted(admin_client) == ConversionEvent.objects.count() == 4


@pytest.mark.parametrize("rows", [10, 100])
def test_a_page_limited_lead_list_takes_the_same_queries_for_10_and_100_rows(
    cast, django_assert_num_queries, rows
):
    make_leads(rows, page=cast.a.page, form=cast.a.form, start=20_000)
    make_leads(rows, page=cast.b.page, form=cast.b.form, start=30_000)
    ContentType.objects.clear_cache()
    with django_assert_num_queries(9):
        response = cast.bea_client.get(reverse("admin:leads_lead_changelist"))
    # The user's leads only (page A's first lead and the new ones), 100 to a page.
    assert len(response.context["cl"].result_list) == {10: 11, 100: 100}[rows]


# -- Object pages ---------------------------------------------------------------------------

# What Django answers another page's object when the view itself is allowed: "doesn't exist"
# (a redirect to the index). The read-only models refuse a delete outright.
DELETE_REFUSED = {"leads_stagechange", "capi_conversionevent"}


@pytest.mark.parametrize("label", LABELS)
def test_another_pages_object_pages_do_not_exist(cast, label):
    obj = cast.b.rows()[label]
    client = cast.bea_client
    for view in ("change", "history"):
        response = client.get(reverse(f"admin:{label}_{view}", args=[obj.pk]))
        assert not_found(response), (label, view, response.status_code)
    response = client.get(reverse(f"admin:{label}_delete", args=[obj.pk]))
    if label in DELETE_REFUSED:
        assert response.status_code == 403
    else:
        assert not_found(response), (label, response.status_code)
    response = client.post(reverse(f"admin:{label}_delete", args=[obj.pk]), {"post": "yes"})
    assert response.status_code == (403 if label in DELETE_REFUSED else 302)
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize("label", LABELS)
def test_the_users_own_object_pages_still_open(cast, label):
    obj = cast.a.rows()[label]
    for view in ("change", "history"):
        response = cast.bea_client.get(reverse(f"admin:{label}_{view}", args=[obj.pk]))
        assert response.status_code == 200, (label, view)


def test_a_missing_object_message_is_djangos(cast):
    response = cast.bea_client.get(
        reverse("admin:leads_lead_change", args=[cast.b.lead.pk]), follow=True
    )
    assert [str(m) for m in response.context["messages"]] == [
        f"lead with ID “{cast.b.lead.pk}” doesn’t exist. Perhaps it was deleted?"  # noqa: RUF001
    ]


def test_another_pages_objects_cannot_be_edited(cast):
    b, client = cast.b, cast.bea_client
    edits = [
        ("leads_page", b.page, {"name": "Taken"}),
        (
            "leads_form",
            b.form,
            {"form_id": b.form.form_id, "name": "Taken", "page": cast.a.page.pk},
        ),
        ("crm_note", b.note, {"lead": cast.a.lead.pk, "author": cast.bea.pk, "body": "Taken"}),
        ("crm_assignment", b.assignment, {"lead": b.lead.pk, "owner": cast.bea.pk}),
        ("crm_pageaccess", b.grant, {"user": cast.bea.pk, "page": b.page.pk}),
    ]
    for label, obj, data in edits:
        response = client.post(reverse(f"admin:{label}_change", args=[obj.pk]), data)
        assert not_found(response), label
    assert Page.objects.get(pk=b.page.pk).name == b.page.name
    assert Form.objects.get(pk=b.form.pk).name == "Winter form"
    assert Note.objects.get(pk=b.note.pk).body == "Called <b>twice</b>"
    assert Assignment.objects.get(pk=b.assignment.pk).owner == cast.world.user
    assert PageAccess.objects.get(pk=b.grant.pk).user == cast.world.user


def test_a_visible_leads_page_shows_only_its_own_rows_inline(cast):
    response = cast.bea_client.get(reverse("admin:leads_lead_change", args=[cast.a.lead.pk]))
    inlines = {
        formset.opts.model._meta.model_name: [form.instance.pk for form in formset.formset]
        for formset in response.context["inline_admin_formsets"]
    }
    assert inlines == {
        "stagechange": [cast.a.stage_change.pk],
        "note": [cast.a.note.pk],
        "conversionevent": [cast.a.event.pk],
    }


# -- Rows of no single page: deliveries, send attempts, the sender ---------------------------

EVERY_PAGE_ONLY = ["leads_webhookdelivery", "capi_sendattempt", "capi_senderstate"]


@pytest.mark.parametrize("label", EVERY_PAGE_ONLY)
def test_rows_of_no_single_page_are_for_superusers_only(cast, admin_client, label):
    model = {
        "leads_webhookdelivery": cast.world.delivery,
        "capi_sendattempt": cast.world.events["sent"].sent_in,
        "capi_senderstate": None,
    }[label]
    changelist = reverse(f"admin:{label}_changelist")
    assert cast.bea_client.get(changelist).status_code == 403
    assert admin_client.get(changelist).status_code == 200
    if model is not None:
        change = reverse(f"admin:{label}_change", args=[model.pk])
        assert cast.bea_client.get(change).status_code == 403
        assert admin_client.get(change).status_code == 200
    index = cast.bea_client.get(reverse("admin:index"))
    offered = {m["object_name"].lower() for app in index.context["app_list"] for m in app["models"]}
    assert label.split("_", 1)[1] not in offered
    assert "lead" in offered


def test_a_page_limited_user_cannot_reprocess_a_delivery_or_resume_sending(cast):
    delivery = cast.world.unsigned
    response = act(cast.bea_client, "leads_webhookdelivery", "reprocess", [delivery.pk])
    assert response.status_code == 403


def test_stages_are_every_pages_so_only_a_superuser_changes_them(cast, admin_client):
    stage = PipelineStage.objects.order_by("position").first()
    client = cast.bea_client
    assert client.get(reverse("admin:leads_pipelinestage_changelist")).status_code == 200
    response = client.post(
        reverse("admin:leads_pipelinestage_change", args=[stage.pk]),
        {"name": "Renamed", "slug": stage.slug, "position": 0, "event_name": "x"},
    )
    assert response.status_code == 403
    assert client.get(reverse("admin:leads_pipelinestage_delete", args=[stage.pk])).status_code == (
        403
    )
    assert client.get(reverse("admin:leads_pipelinestage_add")).status_code == 403
    assert PipelineStage.objects.get(pk=stage.pk).name == stage.name
    assert (
        admin_client.get(reverse("admin:leads_pipelinestage_change", args=[stage.pk])).status_code
        == 200
    )


# -- Actions --------------------------------------------------------------------------------


def test_moving_another_pages_lead_changes_nothing_and_sends_no_conversion(
    cast, django_capture_on_commit_callbacks
):
    target = PipelineStage.objects.filter(sends_conversion=True).order_by("-position").first()
    a, b = cast.a, cast.b
    before = (StageChange.objects.count(), ConversionEvent.objects.count())
    with django_capture_on_commit_callbacks(execute=True):
        response = act(
            cast.bea_client,
            "leads_lead",
            "move_to_stage",
            [b.lead.pk],
            index="0",
            stage=str(target.pk),
            apply="Move",
        )
    assert response.status_code == 302  # "no items selected": nothing of B was found
    assert Lead.objects.get(pk=b.lead.pk).stage_id == b.lead.stage_id
    assert (StageChange.objects.count(), ConversionEvent.objects.count()) == before

    # The same request on the user's own lead moves it, and its conversion event follows;
    # select_across moves every lead the user sees, and still none of B's.
    with django_capture_on_commit_callbacks(execute=True):
        act(
            cast.bea_client,
            "leads_lead",
            "move_to_stage",
            [a.lead.pk],
            index="0",
            select_across="1",
            stage=str(target.pk),
            apply="Move",
        )
    assert Lead.objects.get(pk=a.lead.pk).stage == target
    assert Lead.objects.get(pk=b.lead.pk).stage_id == b.lead.stage_id
    change = StageChange.objects.get(lead=a.lead, via="admin")
    assert change.changed_by == cast.bea
    assert ConversionEvent.objects.filter(stage_change=change).count() == 1
    assert StageChange.objects.count() == before[0] + 1


def test_the_move_form_counts_the_users_leads_only(cast):
    response = act(cast.bea_client, "leads_lead", "move_to_stage", [cast.a.lead.pk, cast.b.lead.pk])
    assert response.status_code == 200
    assert response.context["count"] == 1


def test_export_holds_the_users_leads_only(cast):
    a, b = cast.a, cast.b
    response = act(cast.bea_client, "leads_lead", "export_csv", [a.lead.pk, b.lead.pk])
    assert [row["leadgen_id"] for row in csv_rows(response)] == [a.lead.leadgen_id]
    response = act(
        cast.bea_client, "leads_lead", "export_csv", [a.lead.pk], select_across="1", index="0"
    )
    assert [row["leadgen_id"] for row in csv_rows(response)] == [a.lead.leadgen_id]


def test_refetching_another_pages_lead_queues_nothing(cast, django_capture_on_commit_callbacks):
    queued_tasks()
    waiting = cast.world.waiting
    Lead.objects.filter(pk=waiting.pk).update(fetch_status="failed", fetch_error="boom")
    for action in ("refetch", "refetch_complete"):
        with django_capture_on_commit_callbacks(execute=True):
            act(cast.bea_client, "leads_lead", action, [waiting.pk, cast.b.lead.pk])
    assert Lead.objects.get(pk=waiting.pk).fetch_status == "failed"
    assert Lead.objects.get(pk=cast.b.lead.pk).fetched_at is None
    assert queued_tasks() == []


def test_syncing_another_pages_page_or_form_queues_nothing(
    cast, django_capture_on_commit_callbacks
):
    queued_tasks()
    with django_capture_on_commit_callbacks(execute=True):
        act(cast.bea_client, "leads_page", "sync_now", [cast.b.page.pk])
        act(cast.bea_client, "leads_form", "sync_now", [cast.b.form.pk])
    assert queued_tasks() == []


def test_retrying_another_pages_failed_event_leaves_it_failed(cast):
    failed = cast.b.event
    act(cast.bea_client, "capi_conversionevent", "retry_failed", [failed.pk])
    assert ConversionEvent.objects.get(pk=failed.pk).status == "failed"


def test_deleting_another_pages_rows_in_bulk_deletes_nothing(cast):
    b = cast.b
    for label, obj in (("crm_note", b.note), ("crm_assignment", b.assignment)):
        act(cast.bea_client, label, "delete_selected", [obj.pk], post="yes")
        assert type(obj).objects.filter(pk=obj.pk).exists(), label
    act(cast.bea_client, "crm_note", "delete_selected", [cast.a.note.pk], post="yes")
    assert not Note.objects.filter(pk=cast.a.note.pk).exists()


# -- Writing: choices, raw ids, grants, pages -------------------------------------------------


def test_a_note_cannot_be_added_to_another_pages_lead_nor_name_it(cast):
    b = cast.b
    response = cast.bea_client.post(
        reverse("admin:crm_note_add"), {"lead": b.lead.pk, "author": cast.bea.pk, "body": "x"}
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["lead"]
    # The raw id input names a lead only when the user sees it.
    assert "García" not in response.content.decode()
    assert Note.objects.filter(lead=b.lead).count() == 1
    response = cast.bea_client.post(
        reverse("admin:crm_note_add"),
        {"lead": cast.a.lead.pk, "author": cast.bea.pk, "body": "Second"},
    )
    assert response.status_code == 302
    assert Note.objects.filter(lead=cast.a.lead).count() == 2
    page = cast.bea_client.get(reverse("admin:crm_note_change", args=[cast.a.note.pk]))
    label = f'<strong><a href="/admin/leads/lead/{cast.a.lead.pk}/change/">Lead 0</a></strong>'
    assert label in page.content.decode()


def test_a_form_cannot_be_moved_to_another_page(cast):
    a, b = cast.a, cast.b
    response = cast.bea_client.post(
        reverse("admin:leads_form_change", args=[a.form.pk]),
        {"form_id": a.form.form_id, "name": "Alpha form", "page": b.page.pk, "status": ""},
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["page"]
    assert Form.objects.get(pk=a.form.pk).page == a.page


def test_nobody_grants_themselves_another_page(cast):
    b, client = cast.b, cast.bea_client
    response = client.post(
        reverse("admin:crm_pageaccess_add"), {"user": cast.bea.pk, "page": b.page.pk}
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["page"]
    response = client.post(
        reverse("admin:crm_pageaccess_change", args=[cast.a.grant.pk]),
        {"user": cast.bea.pk, "page": b.page.pk},
    )
    assert response.status_code == 200
    assert not PageAccess.objects.filter(user=cast.bea, page=b.page).exists()
    assert list(access.visible_pages(cast.bea)) == [cast.a.page]
    # A page the user sees can be granted to someone else.
    response = client.post(
        reverse("admin:crm_pageaccess_add"), {"user": cast.world.user.pk, "page": cast.a.page.pk}
    )
    assert response.status_code == 302
    assert PageAccess.objects.filter(user=cast.world.user, page=cast.a.page).exists()


def test_a_users_page_shows_and_offers_the_viewers_pages_only(cast, admin_client):
    url = reverse("admin:auth_user_change", args=[cast.world.user.pk])

    def grants(client: Client) -> tuple[list[int], list[int]]:
        response = client.get(url)
        (formset,) = [
            f.formset
            for f in response.context["inline_admin_formsets"]
            if f.opts.model is PageAccess
        ]
        offered = formset.empty_form.fields["page"].queryset
        return [form.instance.pk for form in formset], sorted(offered.values_list("pk", flat=True))

    # sales holds a grant to page B only: bea sees none of it and can offer only page A.
    assert grants(cast.bea_client) == ([], [cast.a.page.pk])
    assert grants(admin_client) == ([cast.b.grant.pk], sorted([cast.a.page.pk, cast.b.page.pk]))


def test_autocomplete_answers_with_the_users_pages_only(cast, admin_client):
    def answer(client: Client, field: str, term: str = "") -> list[str]:
        response = client.get(
            reverse("admin:autocomplete"),
            {"app_label": "crm", "model_name": "pageaccess", "field_name": field, "term": term},
        )
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    a, b = cast.a, cast.b
    assert answer(cast.bea_client, "page") == [str(a.page.pk)]
    assert answer(cast.bea_client, "page", "Acme") == []
    assert answer(cast.bea_client, "page", "1111") == []
    assert answer(admin_client, "page") == [str(b.page.pk), str(a.page.pk)]
    # People are not page data: the user field still finds every user.
    assert len(answer(cast.bea_client, "user")) == get_user_model().objects.count()


def test_adding_a_page_that_exists_stores_no_token_on_it(cast, mocked_graph):
    b = cast.b.page
    mocked_graph.get(f"{GRAPH}/{b.page_id}", json={"id": b.page_id, "name": "Acme"})
    mocked_graph.get(f"{GRAPH}/{b.page_id}/leadgen_forms", json={"data": []})
    response = cast.bea_client.post(
        reverse("admin:leads_page_add"),
        {"page_id": b.page_id, "name": "Mine now", "new_token": "EAAStolenLEADLOOPxyz"},
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["page_id"]
    assert len(mocked_graph.calls) == 0
    assert Page.objects.get(pk=b.pk).token == PAGE_TOKEN


# -- CSV import -----------------------------------------------------------------------------


def export(*rows: tuple[str, str]) -> SimpleUploadedFile:
    """An export of (leadgen id, form id) rows."""
    when = (timezone.now() - dt.timedelta(days=1)).isoformat()
    lines = ["id,created_time,form_id,email"]
    lines += [f"l:{leadgen},{when},f:{form},x{leadgen}@example.com" for leadgen, form in rows]
    return SimpleUploadedFile("export.csv", "\n".join(lines).encode(), content_type="text/csv")


def test_the_import_offers_the_users_forms_only(cast, admin_client):
    url = reverse("admin:leads_lead_import_csv")
    offered = cast.bea_client.get(url).context["form"].fields["form_id"].queryset
    assert list(offered) == [cast.a.form]
    # A superuser still types any form id, one not known yet included.
    assert "queryset" not in vars(admin_client.get(url).context["form"].fields["form_id"])
    response = cast.bea_client.post(
        url, {"file": export(("600001", "")), "form_id": cast.b.form.form_id}
    )
    assert list(response.context["form"].errors) == ["form_id"]
    assert response.context["report"] is None
    assert not Lead.objects.filter(leadgen_id="600001").exists()


def test_the_import_changes_nothing_of_another_page(cast):
    a, b = cast.a, cast.b
    forms_before = Form.objects.count()
    response = cast.bea_client.post(
        reverse("admin:leads_lead_import_csv"),
        {
            "file": export(
                ("600001", b.form.form_id),  # another page's form
                ("600002", "987654321"),  # a form not known yet: its page is unknown
                (b.lead.leadgen_id, a.form.form_id),  # another page's lead
                ("600003", a.form.form_id),  # the user's own
            )
        },
    )
    report = response.context["report"]
    assert [(r.row, r.leadgen_id, r.reason) for r in report.rejected] == [
        (2, "600001", f"form_id {b.form.form_id} is not a form of a page you can see"),
        (3, "600002", "form_id 987654321 is not a form of a page you can see"),
        (4, b.lead.leadgen_id, "the lead is on a page you cannot see"),
    ]
    assert (report.created, report.updated, report.unchanged) == (1, 0, 0)
    assert list(
        Lead.objects.filter(leadgen_id__startswith="60000").values_list("leadgen_id", "page")
    ) == [("600003", a.page.pk)]
    kept = Lead.objects.get(pk=b.lead.pk)
    assert (kept.page_id, kept.form_id, kept.email) == (b.page.pk, b.form.pk, "ana@example.com")
    assert Form.objects.count() == forms_before


# -- The hook itself ------------------------------------------------------------------------


def test_without_crms_rule_the_admin_fails_closed(cast, admin_client):
    previous = visibility.register(visibility.FAIL_CLOSED)
    try:
        assert changelist_pks(cast.bea_client, "leads_lead") == set()
        assert changelist_pks(cast.bea_client, "leads_page") == set()
        assert changelist_pks(admin_client, "leads_lead") == set(
            Lead.objects.values_list("pk", flat=True)
        )
    finally:
        visibility.register(previous)
    assert changelist_pks(cast.bea_client, "leads_lead") == {cast.a.lead.pk}


def test_a_scoped_admin_that_does_not_say_where_its_page_is_fails_the_checks():
    class Forgetful(PageScopedAdmin):
        pass

    assert [error.id for error in Forgetful(Note, admin.site).check()] == ["leads.E001"]
