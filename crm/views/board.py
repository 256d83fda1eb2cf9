"""The pipeline board: its columns, "load more", its live refresh and the move of a lead
(from a card or the lead page)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from crm import selectors, services
from crm.access import visible_leads
from crm.filters import BoardFilter
from crm.forms import MoveForm
from crm.labels import StageChoices, stage_name
from crm.views.common import (
    MAX_OFFSET,
    all_stage_options,
    back,
    card_context,
    error_text,
    filter_data,
    filter_query,
    is_htmx,
    lead_or_404,
    live_context,
    number,
    page_query,
)
from leads.models import PipelineStage, StageChange

# --- Board


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("crm:board")


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    # The cursor is read before the board: a change made in between is then reported
    # twice (harmless) rather than never.
    cursor = selectors.latest_change_id()
    filterset = BoardFilter(request.GET or None, visible_leads(request.user), user=request.user)
    columns = selectors.board_columns(filterset.qs)
    board_url = f"{reverse('crm:board')}?{page_query(request)}".rstrip("?")
    return render(
        request,
        "crm/board.html",
        {
            "columns": columns,
            "stages": StageChoices([column.stage for column in columns]),
            "filter": filterset,
            "filter_query": filter_query(request),
            "total": sum(column.count for column in columns),
            **card_context(request, next_url=board_url),
            **live_context(request, "crm:board-changes", since=cursor, new=0, reveal=board_url),
        },
    )


@login_required
@require_GET
def board_changes(request: HttpRequest) -> HttpResponse:
    """The board's live refresh: 204 when no lead changed since the cursor (one query);
    else every column's count, the cards of leads moved since (the page moves those it
    shows) and the "n new leads" notice. The filter is the board's own."""
    since, new = number(request, "since"), number(request, "new")
    changes = selectors.changes_since(since)
    if not changes:
        return HttpResponse(status=204)
    filterset = BoardFilter(filter_data(request), visible_leads(request.user), user=request.user)
    live = selectors.live_changes(filterset.qs, changes)
    stages = list(PipelineStage.objects.order_by("position", "id"))
    counts = selectors.stage_counts(filterset.qs)
    board_url = f"{reverse('crm:board')}?{page_query(request)}".rstrip("?")
    return render(
        request,
        "crm/_board_live.html",
        {
            "counts": [(stage.slug, counts.get(stage.pk, 0)) for stage in stages],
            "cards": live.changed,
            "stages": StageChoices(stages),
            **card_context(request, next_url=board_url),
            **live_context(
                request,
                "crm:board-changes",
                since=live.cursor,
                new=new + live.entered,
                reveal=board_url,
            ),
        },
    )


@login_required
@require_GET
def board_column(request: HttpRequest, slug: str) -> HttpResponse:
    """The next cards of one column, for "load more" (htmx appends them)."""
    stage = get_object_or_404(PipelineStage, slug=slug)
    filterset = BoardFilter(request.GET or None, visible_leads(request.user), user=request.user)
    try:
        # Bounded: an offset beyond 64 bits would overflow the database's OFFSET.
        offset = min(max(int(request.GET.get("offset", 0)), 0), MAX_OFFSET)
    except ValueError:
        offset = 0
    cards = selectors.column_cards(filterset.qs, stage=stage, offset=offset)
    count = selectors.stage_counts(filterset.qs.filter(stage=stage)).get(stage.pk, 0)
    return render(
        request,
        "crm/_column_more.html",
        {
            "cards": cards,
            "stage": stage,
            "stages": all_stage_options(),
            "offset": offset + len(cards),
            "remaining": max(count - offset - len(cards), 0),
            "filter_query": filter_query(request),
            # "Move" from a card loaded later returns to the board, not to this fragment.
            **card_context(request, next_url=reverse("crm:board")),
        },
    )


@login_required
@require_POST
def move(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Move a lead to another stage: the board's drag-and-drop and its keyboard control,
    and the detail page's stage form, all post here."""
    lead = lead_or_404(request, pk, selectors.card_queryset(visible_leads(request.user)))
    selectors.with_owner([lead])
    form = MoveForm(request.POST)
    error = ""
    change = None
    if form.is_valid():
        target = form.cleaned_data["stage"]
        try:
            change = services.move_lead(lead, stage=target, by=request.user, via=StageChange.Via.UI)
        except (PermissionDenied, ValidationError) as exc:
            error = error_text(exc)
    else:
        error = _("Choose a stage.")
    name = str(lead)
    if error:
        message = error
    elif change is None:
        message = _("%(lead)s is already in %(stage)s.") % {
            "lead": name,
            "stage": stage_name(lead.stage),
        }
    else:
        message = _("%(lead)s moved to %(stage)s.") % {
            "lead": name,
            "stage": stage_name(lead.stage),
        }

    if is_htmx(request):
        # The card as it now is (its stage tells the page which column it belongs in) and
        # the message for screen readers and the toast, swapped out of band.
        return render(
            request,
            "crm/_card_moved.html",
            {
                "lead": lead,
                "stages": all_stage_options(),
                "message": message,
                "error": bool(error),
                **card_context(request, next_url=request.POST.get("next") or reverse("crm:board")),
            },
        )
    if error:
        messages.error(request, message)
    else:
        messages.success(request, message)
    return back(request, reverse("crm:lead", args=[lead.pk]))
