"""The lead list, its live refresh and its CSV export."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import (
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from crm import selectors
from crm.access import visible_leads
from crm.export import lead_csv
from crm.filters import LeadListFilter
from crm.views.common import (
    filter_data,
    is_htmx,
    live_context,
    number,
    page_query,
)
from leads.models import Form

# --- List and export -------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def lead_list(request: HttpRequest) -> HttpResponse:
    cursor = selectors.latest_change_id()  # before the rows, as on the board
    visible = visible_leads(request.user)
    filterset = LeadListFilter(filter_data(request), visible, user=request.user)
    paginator, page = selectors.paginate_leads(filterset.qs, request.GET.get("p"), visible=visible)
    list_url = f"{reverse('crm:leads')}?{page_query(request)}".rstrip("?")
    context: dict[str, Any] = {
        "filter": filterset,
        "paginator": paginator,
        "page_obj": page,
        "leads": page.object_list,
        "sort": filterset.sort_key,
        **live_context(request, "crm:leads-changes", since=cursor, new=0, reveal=list_url),
    }
    template = "crm/_lead_results.html" if is_htmx(request) else "crm/lead_list.html"
    return render(request, template, context)


@login_required
@require_GET
def lead_list_changes(request: HttpRequest) -> HttpResponse:
    """The list's live refresh: 204 when no lead changed since the cursor; else the rows
    of leads changed since (the page replaces those it shows) and the "n new leads"
    notice, under the list's own filter."""
    since, new = number(request, "since"), number(request, "new")
    changes = selectors.changes_since(since)
    if not changes:
        return HttpResponse(status=204)
    visible = visible_leads(request.user)
    filterset = LeadListFilter(filter_data(request), visible, user=request.user)
    live = selectors.live_changes(filterset.qs, changes, shape=selectors.row_queryset)
    list_url = f"{reverse('crm:leads')}?{page_query(request)}".rstrip("?")
    return render(
        request,
        "crm/_list_live.html",
        {
            "rows": live.changed,
            **live_context(
                request,
                "crm:leads-changes",
                since=live.cursor,
                new=new + live.entered,
                reveal=list_url,
            ),
        },
    )


@login_required
@require_GET
def lead_export(request: HttpRequest) -> StreamingHttpResponse:
    """Every visible lead of the list's filter (not just one page), as CSV."""
    filterset = LeadListFilter(request.GET or None, visible_leads(request.user), user=request.user)
    chosen_form = filterset.form.cleaned_data.get("form") if filterset.form.is_valid() else None
    forms = (
        [chosen_form]
        if chosen_form
        else Form.objects.filter(page__in=filterset.filters["page"].queryset.values("pk"))
        .order_by("name", "form_id")
        .only("id", "questions")
    )
    response = StreamingHttpResponse(
        lead_csv(filterset.qs, forms=forms), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="leads-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response
