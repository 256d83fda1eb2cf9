"""Banners: what needs attention, with admin links for those who can follow them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from leads.context_processors import banners, lead_banners
from leads.models import Lead, Page

pytestmark = pytest.mark.django_db


def banners_of(client) -> list[dict]:
    response = client.get("/board/")
    return list(response.context["leads_banners"])


def test_nothing_to_say_means_no_banner(login, cast, settings):
    settings.META_ACCESS_TOKEN = "app-token"  # pages without their own token can be read
    settings.META_DATASET_ID = "1261294122522559"  # and conversions can be sent
    assert banners_of(login(cast["boss"])) == []
    assert 'class="banners"' not in login(cast["boss"]).get("/board/").content.decode()


def test_invalid_tokens_missing_tokens_and_failed_fetches(login, cast, settings):
    settings.META_ACCESS_TOKEN = ""
    Page.objects.filter(pk=cast["page_a"].pk).update(token_status=Page.TokenStatus.INVALID)
    Lead.objects.filter(pk=cast["pending"].pk).update(fetch_status=Lead.FetchStatus.PARKED)
    Lead.objects.filter(pk=cast["a2"].pk).update(fetch_status=Lead.FetchStatus.FAILED)
    banners = banners_of(login(cast["boss"]))
    assert [(b["level"], b["text"]) for b in banners] == [
        (
            "error",
            "Meta rejected the access token of 1 page: its leads cannot be fetched until the "
            "token is replaced. 1 lead is waiting.",
        ),
        (
            "warning",
            "1 page has no access token and META_ACCESS_TOKEN is not set: its leads cannot be "
            "fetched.",
        ),
        (
            "warning",
            "1 lead could not be fetched from Meta; the next reconciliation tries again.",
        ),
    ]
    assert [b["link"] for b in banners] == [
        "/admin/leads/page/?token_status__exact=invalid",
        "/admin/leads/page/?token_status__exact=missing",
        "/admin/leads/lead/?fetch_status__exact=failed",
    ]
    html = login(cast["boss"]).get("/leads/").content.decode()
    assert 'href="/admin/leads/lead/?fetch_status__exact=failed"' in html


def test_staff_without_admin_rights_see_the_text_without_links(login, cast):
    Lead.objects.filter(pk=cast["a2"].pk).update(fetch_status=Lead.FetchStatus.FAILED)
    banners = banners_of(login(cast["ana"]))
    assert banners and all("link" not in banner for banner in banners)
    cast["ana"].user_permissions.add(Permission.objects.get(codename="change_page"))
    from django.contrib.auth import get_user_model

    ana = get_user_model().objects.get(pk=cast["ana"].pk)  # fresh permission cache
    assert all("link" in banner for banner in banners_of(login(ana)))


def test_non_staff_users_get_no_banners(login, cast, django_user_model):
    Lead.objects.filter(pk=cast["a2"].pk).update(fetch_status=Lead.FetchStatus.FAILED)
    seller = django_user_model.objects.create_user("seller", password="pw")
    assert banners_of(login(seller)) == []


def test_counts_are_localised(cast, settings):
    from django.utils import translation

    settings.META_ACCESS_TOKEN = "x"
    Lead.objects.bulk_create(
        [Lead(leadgen_id=f"3{i:05d}", fetch_status=Lead.FetchStatus.FAILED) for i in range(1234)]
    )
    with translation.override("es"):
        (banner,) = lead_banners(with_links=False)
    assert banner["text"] == (
        "No se pudieron obtener 1\xa0234 clientes potenciales de Meta; la próxima conciliación "
        "lo volverá a intentar."
    )


def test_banners_are_lazy(rf, cast, django_assert_num_queries):
    """The admin and the API render templates too; they must not pay for the banners."""
    request = rf.get("/")
    request.user = cast["boss"]
    with django_assert_num_queries(0):
        context = banners(request)
    with django_assert_num_queries(2):
        assert list(context["leads_banners"]) is not None


def test_conversions_not_configured_and_sandbox_banners(login, cast, settings):
    from django.urls import reverse

    settings.META_ACCESS_TOKEN = "app-token"
    settings.META_DATASET_ID = ""
    settings.SANDBOX_MODE = True
    page = login(cast["boss"]).get("/board/").content.decode()
    assert "Sandbox mode: leads come from Leadloop&#x27;s built-in Meta sandbox" in page
    assert reverse("sandbox:events") in page
    assert "Conversion events are not sent to Meta: META_DATASET_ID and META_ACCESS_TOKEN" in page
    assert reverse("admin:capi_senderstate_changelist") in page
    # Staff who are not superusers see the warning without the admin link.
    staff = login(cast["ana"]).get("/board/").content.decode()
    assert "Conversion events are not sent to Meta" in staff
    assert reverse("admin:capi_senderstate_changelist") not in staff
