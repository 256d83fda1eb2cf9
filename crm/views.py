"""Views of the sales UI: the pipeline board, the lead list (and its CSV export) and the
lead detail.

Views parse and delegate. Every lead they read comes from `crm.access.visible_leads`, so a
lead of a page not granted to the user is a 404 (for the page, a partial, an export row
or a POST alike), and every write goes through `crm.services`, which checks access again.
Each view answers htmx requests (`HX-Request`) with a fragment and plain requests with a
page, so the UI works without JavaScript. The board, the list and the lead page each have
a `…/changes/` view that their page polls (the live refresh, see `crm.selectors`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from crm import selectors, services
from crm.access import users_seeing_page, visible_leads
from crm.export import lead_csv
from crm.filters import BoardFilter, LeadListFilter
from crm.forms import MoveForm, NoteForm, OwnerForm
from crm.labels import StageChoices, stage_name
from leads.models import Form, Lead, PipelineStage, StageChange

# "Load more" on a board column never goes further than this (no column is that long).
MAX_OFFSET = 10**9
# How often an open board, list or lead page asks what changed (htmx polling).
LIVE_REFRESH_SECONDS = 2
# Parameters of a live refresh itself, left out of the filter it carries.
LIVE_PARAMS = ("since", "new")


def _is_htmx(request: HttpRequest) -> bool:
    """A fragment is wanted, except when htmx restores history it has not cached: then
    the whole page is."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Where a plain (non-htmx) form post returns: its `next`, if it is ours."""
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = fallback
    return redirect(target)


def _lead_or_404(request: HttpRequest, pk: int, queryset: QuerySet[Lead] | None = None) -> Lead:
    return get_object_or_404(
        queryset if queryset is not None else visible_leads(request.user), pk=pk
    )


def _error_text(exc: ValidationError | PermissionDenied) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or _("You have no access to this lead.")


def _filter_data(request: HttpRequest) -> Any:
    """The filter a live refresh carries (its own parameters are not filters)."""
    data = request.GET.copy()
    for key in LIVE_PARAMS:
        data.pop(key, None)
    return data or None


def _filter_query(request: HttpRequest) -> str:
    """The board's filter as a query string, for its "show more" links."""
    query = request.GET.copy()
    query.pop("offset", None)
    return query.urlencode()


def _number(request: HttpRequest, name: str) -> int:
    """A non-negative integer parameter (a cursor, a count); 0 when absent or malformed."""
    try:
        return min(max(int(request.GET.get(name, 0)), 0), 2**62)
    except ValueError:
        return 0


def _page_query(request: HttpRequest) -> str:
    """The page's own query string (its filter, sort and page), without live parameters."""
    query = request.GET.copy()
    for key in LIVE_PARAMS:
        query.pop(key, None)
    return query.urlencode()


def _live_url(request: HttpRequest, name: str, *, since: int, new: int) -> str:
    """The address of the next live refresh: the page's filter plus the cursor and the
    number of new leads counted so far."""
    query = request.GET.copy()
    query.pop("offset", None)
    query["since"] = str(since)
    query["new"] = str(new)
    return f"{reverse(name)}?{query.urlencode()}"


def _live_context(
    request: HttpRequest, name: str, *, since: int, new: int, reveal: str
) -> dict[str, Any]:
    return {
        "live_url": _live_url(request, name, since=since, new=new),
        "live_seconds": LIVE_REFRESH_SECONDS,
        "new_leads": min(new, selectors.LIVE_NEW_CAP + 1),
        "new_cap": selectors.LIVE_NEW_CAP,
        "reveal_url": reveal,
    }


def _card_context(request: HttpRequest, next_url: str | None = None) -> dict[str, Any]:
    """What every board card shares, computed once: a board renders 150 of them."""
    return {
        "leads_url": reverse("crm:leads"),
        "next_url": next_url or request.get_full_path(),
        "unassigned_label": _("Unassigned"),
        "owner_label": _("Owner"),
        "stage_label_text": _("Stage of"),
        "move_label": _("Move"),
    }


def _all_stage_options() -> StageChoices:
    return StageChoices(list(PipelineStage.objects.order_by("position", "id")))


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("crm:board")


# --- Board -------------------------------------------------------------------------------


@login_required
@require_GET
def board(request: HttpRequest) -> HttpResponse:
    # The cursor is read before the board: a change made in between is then reported
    # twice (harmless) rather than never.
    cursor = selectors.latest_change_id()
    filterset = BoardFilter(request.GET or None, visible_leads(request.user), user=request.user)
    columns = selectors.board_columns(filterset.qs)
    board_url = f"{reverse('crm:board')}?{_page_query(request)}".rstrip("?")
    return render(
        request,
        "crm/board.html",
        {
            "columns": columns,
            "stages": StageChoices([column.stage for column in columns]),
            "filter": filterset,
            "filter_query": _filter_query(request),
            "total": sum(column.count for column in columns),
            **_card_context(request, next_url=board_url),
            **_live_context(request, "crm:board-changes", since=cursor, new=0, reveal=board_url),
        },
    )


@login_required
@require_GET
def board_changes(request: HttpRequest) -> HttpResponse:
    """The board's live refresh: 204 when no lead changed since the cursor (one query);
    else every column's count, the cards of leads moved since (the page moves those it
    shows) and the "n new leads" notice. The filter is the board's own."""
    since, new = _number(request, "since"), _number(request, "new")
    changes = selectors.changes_since(since)
    if not changes:
        return HttpResponse(status=204)
    filterset = BoardFilter(_filter_data(request), visible_leads(request.user), user=request.user)
    live = selectors.live_changes(filterset.qs, changes)
    stages = list(PipelineStage.objects.order_by("position", "id"))
    counts = selectors.stage_counts(filterset.qs)
    board_url = f"{reverse('crm:board')}?{_page_query(request)}".rstrip("?")
    return render(
        request,
        "crm/_board_live.html",
        {
            "counts": [(stage.slug, counts.get(stage.pk, 0)) for stage in stages],
            "cards": live.changed,
            "stages": StageChoices(stages),
            **_card_context(request, next_url=board_url),
            **_live_context(
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
            "stages": _all_stage_options(),
            "offset": offset + len(cards),
            "remaining": max(count - offset - len(cards), 0),
            "filter_query": _filter_query(request),
            # "Move" from a card loaded later returns to the board, not to this fragment.
            **_card_context(request, next_url=reverse("crm:board")),
        },
    )


@login_required
@require_POST
def move(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Move a lead to another stage: the board's drag-and-drop and its keyboard control,
    and the detail page's stage form, all post here."""
    lead = _lead_or_404(request, pk, selectors.card_queryset(visible_leads(request.user)))
    selectors.with_owner([lead])
    form = MoveForm(request.POST)
    error = ""
    change = None
    if form.is_valid():
        target = form.cleaned_data["stage"]
        try:
            change = services.move_lead(lead, stage=target, by=request.user, via=StageChange.Via.UI)
        except (PermissionDenied, ValidationError) as exc:
            error = _error_text(exc)
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

    if _is_htmx(request):
        # The card as it now is (its stage tells the page which column it belongs in) and
        # the message for screen readers and the toast, swapped out of band.
        return render(
            request,
            "crm/_card_moved.html",
            {
                "lead": lead,
                "stages": _all_stage_options(),
                "message": message,
                "error": bool(error),
                **_card_context(request, next_url=request.POST.get("next") or reverse("crm:board")),
            },
        )
    if error:
        messages.error(request, message)
    else:
        messages.success(request, message)
    return _back(request, reverse("crm:lead", args=[lead.pk]))


# --- List and export -------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def lead_list(request: HttpRequest) -> HttpResponse:
    cursor = selectors.latest_change_id()  # before the rows, as on the board
    visible = visible_leads(request.user)
    filterset = LeadListFilter(_filter_data(request), visible, user=request.user)
    paginator, page = selectors.paginate_leads(filterset.qs, request.GET.get("p"), visible=visible)
    list_url = f"{reverse('crm:leads')}?{_page_query(request)}".rstrip("?")
    context: dict[str, Any] = {
        "filter": filterset,
        "paginator": paginator,
        "page_obj": page,
        "leads": page.object_list,
        "sort": filterset.sort_key,
        **_live_context(request, "crm:leads-changes", since=cursor, new=0, reveal=list_url),
    }
    template = "crm/_lead_results.html" if _is_htmx(request) else "crm/lead_list.html"
    return render(request, template, context)


@login_required
@require_GET
def lead_list_changes(request: HttpRequest) -> HttpResponse:
    """The list's live refresh: 204 when no lead changed since the cursor; else the rows
    of leads changed since (the page replaces those it shows) and the "n new leads"
    notice, under the list's own filter."""
    since, new = _number(request, "since"), _number(request, "new")
    changes = selectors.changes_since(since)
    if not changes:
        return HttpResponse(status=204)
    visible = visible_leads(request.user)
    filterset = LeadListFilter(_filter_data(request), visible, user=request.user)
    live = selectors.live_changes(filterset.qs, changes, shape=selectors.row_queryset)
    list_url = f"{reverse('crm:leads')}?{_page_query(request)}".rstrip("?")
    return render(
        request,
        "crm/_list_live.html",
        {
            "rows": live.changed,
            **_live_context(
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


# --- Detail ----------------------------------------------------------------------------


def _live_parts(lead: Lead) -> dict[str, Any]:
    """What a lead's page refreshes live: its stage, history and notes, with the cursors
    (newest stage change and note ids) the next refresh compares."""
    history = list(selectors.stage_history(lead))
    notes = list(lead.notes.select_related("author"))
    return {
        "lead": lead,
        "history": history,
        "notes": notes,
        "move_form": MoveForm(initial={"stage": lead.stage.slug if lead.stage else None}),
        "last_change": max((change.pk for change in history), default=0),
        "last_note": max((note.pk for note in notes), default=0),
    }


def _detail_context(lead: Lead) -> dict[str, Any]:
    in_form, others = selectors.lead_answers(lead)
    owners = users_seeing_page(lead.page_id).order_by("first_name", "last_name", "username")
    assignment = getattr(lead, "assignment", None)
    return {
        "lead": lead,
        "answers": in_form,
        "other_answers": others,
        "disclaimers": selectors.lead_disclaimers(lead),
        "events": selectors.conversion_events(lead),
        "note_form": NoteForm(),
        **_live_parts(lead),
        "live_seconds": LIVE_REFRESH_SECONDS,
        "owner_form": OwnerForm(
            owners=owners, initial={"owner": assignment.owner_id if assignment else None}
        ),
        "assignment": assignment,
    }


def _detail_queryset(request: HttpRequest) -> QuerySet[Lead]:
    return visible_leads(request.user).select_related(
        "page", "form", "stage", "assignment__owner", "assignment__assigned_by"
    )


@login_required
@require_GET
def lead_detail(request: HttpRequest, pk: int) -> HttpResponse:
    lead = _lead_or_404(request, pk, _detail_queryset(request))
    return render(request, "crm/lead_detail.html", _detail_context(lead))


@login_required
@require_GET
def lead_changes(request: HttpRequest, pk: int) -> HttpResponse:
    """A lead's page's live refresh: 204 while its newest stage change and note are the
    ones the page shows (one query); else its stage, history and notes, swapped in place
    (the note being typed is left alone), and a line for screen readers."""
    lead = _lead_or_404(request, pk, selectors.with_live_cursors(_detail_queryset(request)))
    if (lead.last_change, lead.last_note) == (  # type: ignore[attr-defined]
        _number(request, "change"),
        _number(request, "note"),
    ):
        return HttpResponse(status=204)
    return render(request, "crm/_lead_live.html", _live_parts(lead))


@login_required
@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponseBase:
    lead = _lead_or_404(request, pk)
    owners = users_seeing_page(lead.page_id)
    form = OwnerForm(request.POST, owners=owners)
    if not form.is_valid():
        messages.error(request, _("Choose someone who can see this lead."))
    else:
        owner = form.cleaned_data["owner"]
        try:
            services.assign_owner(lead, owner=owner, by=request.user)
        except (PermissionDenied, ValidationError) as exc:
            messages.error(request, _error_text(exc))
        else:
            if owner is None:
                messages.success(request, _("%(lead)s has no owner now.") % {"lead": lead})
            else:
                name = owner.get_full_name() or owner.get_username()
                messages.success(
                    request,
                    _("%(lead)s is now owned by %(owner)s.") % {"lead": lead, "owner": name},
                )
    return _back(request, reverse("crm:lead", args=[lead.pk]))


@login_required
@require_POST
def add_note(request: HttpRequest, pk: int) -> HttpResponseBase:
    lead = _lead_or_404(request, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.add_note(lead, author=request.user, body=form.cleaned_data["body"])
        except (PermissionDenied, ValidationError) as exc:
            form.add_error("body", _error_text(exc))
        else:
            form = NoteForm()
            if not _is_htmx(request):
                messages.success(request, _("Note added."))
    if _is_htmx(request):
        notes = list(lead.notes.select_related("author"))
        return render(
            request,
            "crm/_notes.html",
            {
                "lead": lead,
                "notes": notes,
                "note_form": form,
                "last_note": max((note.pk for note in notes), default=0),
            },
        )
    if form.errors:
        messages.error(request, " ".join(form.errors.get("body", [])))
    return _back(request, reverse("crm:lead", args=[lead.pk]) + "#notes")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 404 (`handler404`): the API's JSON error body under /api/, the UI's own
    page elsewhere. A lead of a page not granted to the user lands here too, and the page
    says so without confirming that the lead exists."""
    if request.path.startswith("/api/"):
        body = {"error": {"status": 404, "code": "not_found", "message": "Not found."}}
        return JsonResponse(body, status=404)
    return render(request, "404.html", status=404)
