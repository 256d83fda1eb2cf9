"""What the sales UI's views share: htmx detection, safe redirects, the live refresh's
parameters and the context every board card needs."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from crm import selectors
from crm.access import visible_leads
from crm.labels import StageChoices
from leads.models import Lead, PipelineStage

# "Load more" on a board column never goes further than this (no column is that long).
MAX_OFFSET = 10**9
# How often an open board, list or lead page asks what changed (htmx polling).
LIVE_REFRESH_SECONDS = 2
# Parameters of a live refresh itself, left out of the filter it carries.
LIVE_PARAMS = ("since", "new")


def is_htmx(request: HttpRequest) -> bool:
    """A fragment is wanted, except when htmx restores history it has not cached: then
    the whole page is."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Where a plain (non-htmx) form post returns: its `next`, if it is ours."""
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback
    return redirect(target)


def lead_or_404(request: HttpRequest, pk: int, queryset: QuerySet[Lead] | None = None) -> Lead:
    return get_object_or_404(
        queryset if queryset is not None else visible_leads(request.user), pk=pk
    )


def error_text(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or _("You have no access to this lead.")


def filter_data(request: HttpRequest) -> Any:
    """The filter a live refresh carries (its own parameters are not filters)."""
    data = request.GET.copy()
    for key in LIVE_PARAMS:
        data.pop(key, None)
    return data or None


def filter_query(request: HttpRequest) -> str:
    """The board's filter as a query string, for its "show more" links."""
    query = request.GET.copy()
    query.pop("offset", None)
    return query.urlencode()


def number(request: HttpRequest, name: str) -> int:
    """A non-negative integer parameter (a cursor, a count); 0 when absent or malformed."""
    try:
        return min(max(int(request.GET.get(name, 0)), 0), 2**62)
    except ValueError:
        return 0


def page_query(request: HttpRequest) -> str:
    """The page's own query string (its filter, sort and page), without live parameters."""
    query = request.GET.copy()
    for key in LIVE_PARAMS:
        query.pop(key, None)
    return query.urlencode()


def live_url(request: HttpRequest, name: str, *, since: int, new: int) -> str:
    """The address of the next live refresh: the page's filter plus the cursor and the
    number of new leads counted so far."""
    query = request.GET.copy()
    query.pop("offset", None)
    query["since"] = str(since)
    query["new"] = str(new)
    return f"{reverse(name)}?{query.urlencode()}"


def live_context(
    request: HttpRequest, name: str, *, since: int, new: int, reveal: str
) -> dict[str, Any]:
    return {
        "live_url": live_url(request, name, since=since, new=new),
        "live_seconds": LIVE_REFRESH_SECONDS,
        "new_leads": min(new, selectors.LIVE_NEW_CAP + 1),
        "new_cap": selectors.LIVE_NEW_CAP,
        "reveal_url": reveal,
    }


def card_context(request: HttpRequest, next_url: str | None = None) -> dict[str, Any]:
    """What every board card shares, computed once: a board renders 150 of them."""
    return {
        "leads_url": reverse("crm:leads"),
        "next_url": next_url or request.get_full_path(),
        "unassigned_label": _("Unassigned"),
        "owner_label": _("Owner"),
        "stage_label_text": _("Stage of"),
        "move_label": _("Move"),
    }


def all_stage_options() -> StageChoices:
    return StageChoices(list(PipelineStage.objects.order_by("position", "id")))
