"""The lead page: its live refresh, the owner and notes, and the 404 page."""

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
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from crm import selectors, services
from crm.access import users_seeing_page, visible_leads
from crm.forms import MoveForm, NoteForm, OwnerForm
from crm.views.common import (
    LIVE_REFRESH_SECONDS,
    back,
    error_text,
    is_htmx,
    lead_or_404,
    number,
)
from leads.models import Lead

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
    lead = lead_or_404(request, pk, _detail_queryset(request))
    return render(request, "crm/lead_detail.html", _detail_context(lead))


@login_required
@require_GET
def lead_changes(request: HttpRequest, pk: int) -> HttpResponse:
    """A lead's page's live refresh: 204 while its newest stage change and note are the
    ones the page shows (one query); else its stage, history and notes, swapped in place
    (the note being typed is left alone), and a line for screen readers."""
    lead = lead_or_404(request, pk, selectors.with_live_cursors(_detail_queryset(request)))
    if (lead.last_change, lead.last_note) == (  # type: ignore[attr-defined]
        number(request, "change"),
        number(request, "note"),
    ):
        return HttpResponse(status=204)
    return render(request, "crm/_lead_live.html", _live_parts(lead))


@login_required
@require_POST
def assign(request: HttpRequest, pk: int) -> HttpResponseBase:
    lead = lead_or_404(request, pk)
    owners = users_seeing_page(lead.page_id)
    form = OwnerForm(request.POST, owners=owners)
    if not form.is_valid():
        messages.error(request, _("Choose someone who can see this lead."))
    else:
        owner = form.cleaned_data["owner"]
        try:
            services.assign_owner(lead, owner=owner, by=request.user)
        except (PermissionDenied, ValidationError) as exc:
            messages.error(request, error_text(exc))
        else:
            if owner is None:
                messages.success(request, _("%(lead)s has no owner now.") % {"lead": lead})
            else:
                name = owner.get_full_name() or owner.get_username()
                messages.success(
                    request,
                    _("%(lead)s is now owned by %(owner)s.") % {"lead": lead, "owner": name},
                )
    return back(request, reverse("crm:lead", args=[lead.pk]))


@login_required
@require_POST
def add_note(request: HttpRequest, pk: int) -> HttpResponseBase:
    lead = lead_or_404(request, pk)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.add_note(lead, author=request.user, body=form.cleaned_data["body"])
        except (PermissionDenied, ValidationError) as exc:
            form.add_error("body", error_text(exc))
        else:
            form = NoteForm()
            if not is_htmx(request):
                messages.success(request, _("Note added."))
    if is_htmx(request):
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
    return back(request, reverse("crm:lead", args=[lead.pk]) + "#notes")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The site's 404 (`handler404`): the API's JSON error body under /api/, the UI's own
    page elsewhere. A lead of a page not granted to the user lands here too, and the page
    says so without confirming that the lead exists."""
    if request.path.startswith("/api/"):
        body = {"error": {"status": 404, "code": "not_found", "message": "Not found."}}
        return JsonResponse(body, status=404)
    return render(request, "404.html", status=404)
