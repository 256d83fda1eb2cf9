"""Every admin page of every registered model loads for a superuser, in an exact number of
queries, and never shows a token."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from capi.models import ConversionEvent
from leads.models import Form, Lead, Page, WebhookDelivery
from leads.pipeline import enter_pipeline_many
from tests.admin.conftest import APP_TOKEN, PAGE_TOKEN, make_leads
from tests.conftest import GRAPH

pytestmark = pytest.mark.django_db

# Queries per page for a logged-in superuser, session and user included. Exact: a change
# here is a change in what the admin does per request, to be looked at, not absorbed.
EXPECTED_QUERIES = {
    "auth_group:changelist": 5,
    "auth_group:change": 6,
    "auth_group:add": 4,
    "auth_user:changelist": 6,
    "auth_user:change": 9,
    "auth_user:add": 3,
    "authtoken_tokenproxy:changelist": 5,
    "authtoken_tokenproxy:change": 6,
    "authtoken_tokenproxy:add": 4,
    "axes_accessattempt:changelist": 8,
    "axes_accessattempt:change": 5,
    "axes_accessfailurelog:changelist": 8,
    "axes_accesslog:changelist": 8,
    "axes_accesslog:change": 4,
    "capi_conversionevent:changelist": 8,
    "capi_conversionevent:change": 6,
    "capi_sendattempt:changelist": 6,
    "capi_sendattempt:change": 4,
    "capi_senderstate:changelist": 7,
    "capi_senderstate:change": 6,
    "crm_assignment:changelist": 4,
    "crm_assignment:change": 8,
    "crm_assignment:add": 4,
    "crm_note:changelist": 4,
    "crm_note:change": 6,
    "crm_note:add": 4,
    "crm_pageaccess:changelist": 6,
    "crm_pageaccess:change": 9,
    "crm_pageaccess:add": 3,
    "django_q_failure:changelist": 7,
    "django_q_failure:change": 4,
    "django_q_ormq:changelist": 6,
    "django_q_ormq:change": 4,
    "django_q_schedule:changelist": 6,
    "django_q_schedule:change": 4,
    "django_q_schedule:add": 3,
    "django_q_success:changelist": 7,
    "django_q_success:change": 4,
    "leads_form:changelist": 6,
    "leads_form:change": 5,
    "leads_form:add": 3,
    "leads_lead:changelist": 7,
    "leads_lead:change": 10,
    "leads_page:changelist": 4,
    "leads_page:change": 4,
    "leads_page:add": 3,
    "leads_pipelinestage:changelist": 5,
    "leads_pipelinestage:change": 4,
    "leads_pipelinestage:add": 3,
    "leads_stagechange:changelist": 5,
    "leads_stagechange:change": 5,
    "leads_webhookdelivery:changelist": 4,
    "leads_webhookdelivery:change": 4,
}


# django-q2 registers its queue admin (OrmQ) only with the ORM broker, not with Redis.
if settings.REDIS_URL:
    for _name in ("django_q_ormq:changelist", "django_q_ormq:change"):
        EXPECTED_QUERIES.pop(_name)


def registered() -> list[tuple[str, str]]:
    return sorted((model._meta.app_label, model._meta.model_name) for model in admin.site._registry)


def admin_urls(request) -> list[tuple[str, str]]:
    """(name, url) of every changelist, change page (first row) and allowed add page."""
    urls = []
    for model, model_admin in sorted(
        admin.site._registry.items(), key=lambda item: item[0]._meta.label
    ):
        label = f"{model._meta.app_label}_{model._meta.model_name}"
        urls.append((f"{label}:changelist", reverse(f"admin:{label}_changelist")))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append((f"{label}:change", reverse(f"admin:{label}_change", args=[first.pk])))
        if model_admin.has_add_permission(request):
            urls.append((f"{label}:add", reverse(f"admin:{label}_add")))
    return urls


def probe(admin_client, admin_user, rf) -> list[tuple[str, str]]:
    request = rf.get("/")
    request.user = admin_user
    return admin_urls(request)


def test_every_admin_page_loads_and_never_shows_a_token(world, admin_client, admin_user, rf):
    pages = probe(admin_client, admin_user, rf)
    names = {name for name, _ in pages}
    for label in (
        "leads_lead",
        "leads_page",
        "leads_form",
        "leads_webhookdelivery",
        "leads_stagechange",
        "leads_pipelinestage",
        "capi_conversionevent",
        "crm_pageaccess",
        "django_q_success",
        "django_q_failure",
        "django_q_schedule",
        *([] if settings.REDIS_URL else ["django_q_ormq"]),
        "auth_user",
        "axes_accessattempt",
        "axes_accesslog",
    ):
        assert f"{label}:changelist" in names
        assert f"{label}:change" in names
    for name, url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, (name, url, response.status_code)
        html = response.content.decode()
        assert PAGE_TOKEN not in html, name
        assert APP_TOKEN not in html, name


def test_every_admin_page_loads_in_an_exact_number_of_queries(
    world, admin_client, admin_user, rf, django_assert_num_queries
):
    pages = probe(admin_client, admin_user, rf)
    assert {name for name, _ in pages} == set(EXPECTED_QUERIES)
    for name, url in pages:
        # Content types are cached per process: start each page from the same (cold) state
        # whatever ran before.
        ContentType.objects.clear_cache()
        with django_assert_num_queries(EXPECTED_QUERIES[name], info=name):
            response = admin_client.get(url)
        assert response.status_code == 200, name


def big_tables(world, n: int) -> None:
    """`n` more rows in each big table: leads (each with a stage change and a conversion
    event), pages, forms and webhook deliveries."""
    leads = make_leads(n, page=world.page, form=world.form, start=10_000)
    enter_pipeline_many([lead.pk for lead in leads])
    Page.objects.bulk_create([Page(page_id=str(50_000 + i), name=f"P{i}") for i in range(n)])
    pages = list(Page.objects.filter(page_id__startswith="5"))
    Form.objects.bulk_create(
        [Form(form_id=str(60_000 + i), page=pages[i % len(pages)]) for i in range(n)]
    )
    WebhookDelivery.objects.bulk_create([WebhookDelivery(body=b"{}", headers={}) for _ in range(n)])


BIG_CHANGELISTS = {
    "leads_lead": 7,
    "leads_page": 4,
    "leads_form": 6,
    "leads_webhookdelivery": 4,
    "leads_stagechange": 5,
    "capi_conversionevent": 8,
}


@pytest.mark.parametrize("rows", [10, 100])
@pytest.mark.parametrize("label", sorted(BIG_CHANGELISTS))
def test_big_changelists_take_the_same_queries_for_10_and_100_rows(
    world, admin_client, django_assert_num_queries, rows, label
):
    big_tables(world, rows)
    assert Lead.objects.count() >= rows
    assert ConversionEvent.objects.count() >= rows
    url = reverse(f"admin:{label}_changelist")
    ContentType.objects.clear_cache()
    with django_assert_num_queries(BIG_CHANGELISTS[label]):
        response = admin_client.get(url)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= min(rows, 100)


def test_a_rejected_token_is_not_shown_back(world, admin_client, mocked_graph, settings):
    """The change form re-rendered with an error must not echo the token typed in."""
    mocked_graph.get(
        f"{settings.META_GRAPH_URL}/{settings.META_API_VERSION}/1111",
        json={
            "error": {
                "message": "Invalid OAuth access token.",
                "type": "OAuthException",
                "code": 190,
            }
        },
        status=400,
    )
    typed = "EAATypedLEADLOOPSECRETxyz"
    url = reverse("admin:leads_page_change", args=[world.page.pk])
    response = admin_client.post(url, {"name": "Acme", "new_token": typed})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Meta rejected the token" in html
    assert typed not in html
    assert PAGE_TOKEN not in html
    world.page.refresh_from_db()
    assert world.page.token == PAGE_TOKEN


def test_a_new_token_is_verified_stored_and_never_shown(world, admin_client, mocked_graph):
    typed = "EAANewLEADLOOPSECRETabc"
    mocked_graph.get(f"{GRAPH}/1111", json={"id": "1111", "name": "Acme"})
    mocked_graph.get(f"{GRAPH}/1111/leadgen_forms", json={"data": []})
    url = reverse("admin:leads_page_change", args=[world.page.pk])
    response = admin_client.post(url, {"name": "Acme", "new_token": typed}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Token verified and stored" in html
    assert typed not in html
    assert typed not in admin_client.get(url).content.decode()
    world.page.refresh_from_db()
    assert world.page.token == typed
    assert world.page.token_status == "valid"
    assert mocked_graph.calls[0].request.headers["Authorization"] == f"Bearer {typed}"
