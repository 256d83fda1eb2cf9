"""Banners for what needs an admin's attention on the lead side: pages whose token Meta
rejected (their leads are parked), pages with no token at all when no app-wide token is
set, and leads whose fetch failed.

Each app owns its own banners and returns them as `<app>_banners`, a list of `Banner`;
the base template renders them all. The list is lazy, so pages that do not render it (the
admin, the API) run no query for it.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from leads.models import Lead, Page


class Banner(TypedDict):
    level: str  # "error", "warning" or "info"
    text: str
    link: NotRequired[str]  # set only for users who may follow it (the admin)
    link_text: NotRequired[str]


def _n(number: int) -> str:
    """A count in the active language's digit grouping (1,234 / 1.234 / 1 234)."""
    return number_format(number, force_grouping=True)


def _admin_link(name: str, query: str) -> str:
    """An admin changelist, filtered (the admin's own `field__exact=value` parameters)."""
    return f"{reverse(name)}?{query}"


def lead_banners(*, with_links: bool) -> list[Banner]:
    """Two queries: page token states, and failed or parked leads (read through the
    partial index on unfinished fetches, never a scan of complete leads)."""
    pages = Page.objects.aggregate(
        invalid=Count("pk", filter=Q(token_status=Page.TokenStatus.INVALID)),
        missing=Count("pk", filter=Q(token_status=Page.TokenStatus.MISSING)),
    )
    leads = Lead.objects.exclude(fetch_status=Lead.FetchStatus.COMPLETE).aggregate(
        failed=Count("pk", filter=Q(fetch_status=Lead.FetchStatus.FAILED)),
        parked=Count("pk", filter=Q(fetch_status=Lead.FetchStatus.PARKED)),
    )
    banners: list[Banner] = []
    if pages["invalid"]:
        text = ngettext(
            "Meta rejected the access token of %(pages)s page: its leads cannot be fetched "
            "until the token is replaced.",
            "Meta rejected the access tokens of %(pages)s pages: their leads cannot be "
            "fetched until the tokens are replaced.",
            pages["invalid"],
        ) % {"pages": _n(pages["invalid"])}
        if leads["parked"]:
            waiting = ngettext(
                "%(leads)s lead is waiting.", "%(leads)s leads are waiting.", leads["parked"]
            ) % {"leads": _n(leads["parked"])}
            text = f"{text} {waiting}"
        banner: Banner = {"level": "error", "text": text}
        if with_links:
            banner["link"] = _admin_link(
                "admin:leads_page_changelist", "token_status__exact=invalid"
            )
            banner["link_text"] = _("Replace the token")
        banners.append(banner)
    if pages["missing"] and not settings.META_ACCESS_TOKEN:
        banner = {
            "level": "warning",
            "text": ngettext(
                "%(pages)s page has no access token and META_ACCESS_TOKEN is not set: its "
                "leads cannot be fetched.",
                "%(pages)s pages have no access token and META_ACCESS_TOKEN is not set: "
                "their leads cannot be fetched.",
                pages["missing"],
            )
            % {"pages": _n(pages["missing"])},
        }
        if with_links:
            banner["link"] = _admin_link(
                "admin:leads_page_changelist", "token_status__exact=missing"
            )
            banner["link_text"] = _("Connect the pages")
        banners.append(banner)
    if leads["failed"]:
        banner = {
            "level": "warning",
            "text": ngettext(
                "%(leads)s lead could not be fetched from Meta; the next reconciliation tries "
                "again.",
                "%(leads)s leads could not be fetched from Meta; the next reconciliation tries "
                "again.",
                leads["failed"],
            )
            % {"leads": _n(leads["failed"])},
        }
        if with_links:
            banner["link"] = _admin_link(
                "admin:leads_lead_changelist", "fetch_status__exact=failed"
            )
            banner["link_text"] = _("See the errors")
        banners.append(banner)
    return banners


def banners(request: HttpRequest) -> dict[str, Any]:
    """`leads_banners` for staff (the people who can act on them or tell an admin). Links
    go to the admin for users allowed to change pages there."""
    user = getattr(request, "user", None)
    if user is None or not (user.is_authenticated and user.is_active and user.is_staff):
        return {"leads_banners": []}
    return {
        "leads_banners": SimpleLazyObject(
            lambda: lead_banners(with_links=user.has_perm("leads.change_page"))
        )
    }
