"""Admin for the Conversions API: what was sent, what Meta answered, and why events wait.

Read-only: events change only through capi.sending (the one "retry" action re-pends
failed events). Nothing here shows a lead's raw answers: events are identified by their
leadgen id and carry hashed customer information only (Lead's own `__str__` is a name or an
email, so the lead is never rendered through it here).

Page access (leads.visibility): an event is its lead's page's. A send attempt is one POST
whose batch can mix pages (its event ids, Meta's messages), and the sender's state and its
"resume" are every page's: both are for users who see every page.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from capi import sending
from capi.models import ConversionEvent, SendAttempt, SenderState
from capi.outbox import queue_send_on_commit
from capi.user_data import MATCH_KEYS, match_keys
from leads.admin import CappedCountPaginator, LeadAdmin, PageScopedAdmin, PageScopedInline


def _pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


def coverage(events: QuerySet[ConversionEvent]) -> dict[str, Any]:
    """Share of `events` carrying each match key, in one query. Events whose customer
    information is not hashed yet (it is when they are first sent) are counted apart."""
    counts = events.order_by().aggregate(
        total=Count("pk", filter=Q(user_data__isnull=False)),
        pending=Count("pk", filter=Q(user_data__isnull=True)),
        **{key: Count("pk", filter=Q(user_data__has_key=key)) for key in MATCH_KEYS},
    )
    total = counts["total"]
    return {
        "total": total,
        "pending": counts["pending"],
        "dataset": settings.META_DATASET_ID,
        "keys": [
            {
                "key": key,
                "count": counts[key],
                "percent": round(100 * counts[key] / total) if total else 0,
            }
            for key in MATCH_KEYS
        ],
    }


class ReadOnlyAdmin(PageScopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Object pages are view-only (a saved form would write stale values over a row the
        # sender owns); the changelist keeps the permission so its actions can run.
        return obj is None and super().has_change_permission(request, obj)


class ConversionEventInline(PageScopedInline):
    """The lead's conversion events on its admin page (leads never imports capi, so this
    inline joins through `LeadAdmin.extra_inlines`)."""

    model = ConversionEvent
    page_path = "lead__page"
    fk_name = "lead"
    extra = 0
    can_delete = False
    fields = ["event_link", "event_name", "status", "attempts", "sent_at", "last_error"]
    readonly_fields = fields
    ordering = ["-pk"]

    @admin.display(description=_("event id"))
    def event_link(self, obj: ConversionEvent) -> str:
        url = reverse("admin:capi_conversionevent_change", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.event_id)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


LeadAdmin.extra_inlines.append(ConversionEventInline)


@admin.register(ConversionEvent)
class ConversionEventAdmin(ReadOnlyAdmin):
    page_path = "lead__page"
    list_display = [
        "event_id",
        "event_name",
        "leadgen_id",
        "event_time",
        "status",
        "attempts",
        "keys",
        "dataset_id",
        "sent_at",
    ]
    list_filter = ["status", "event_name", "dataset_id"]
    search_fields = ["=event_id", "=lead__leadgen_id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["retry_failed"]
    fields = [
        "event_id",
        "status",
        "event_name",
        "event_time",
        "leadgen_id",
        "stage_change_summary",
        "dataset_id",
        "keys",
        "payload",
        "attempts",
        "failures",
        "next_attempt_at",
        "last_error",
        "sent_at",
        "sent_in_link",
        "created_at",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConversionEvent]:
        # The leadgen id comes along as a column; the lead row (answers, name, email) is
        # never loaded here.
        return super().get_queryset(request).annotate(leadgen=F("lead__leadgen_id"))

    @admin.display(description=_("lead (leadgen id)"), ordering="lead__leadgen_id")
    def leadgen_id(self, obj: ConversionEvent) -> str:
        url = reverse("admin:leads_lead_change", args=[obj.lead_id])
        return format_html('<a href="{}">{}</a>', url, obj.leadgen)  # type: ignore[attr-defined]

    @admin.display(description=_("match keys"))
    def keys(self, obj: ConversionEvent) -> str:
        return " ".join(match_keys(obj.user_data)) or "—"

    @admin.display(description=_("payload (hashed), as sent to Meta"))
    def payload(self, obj: ConversionEvent) -> str:
        return _pretty_json(sending.meta_event(obj))

    @admin.display(description=_("stage change"))
    def stage_change_summary(self, obj: ConversionEvent) -> str:
        change = obj.stage_change
        return format_html(
            "{} → {} ({}, {})",
            change.from_stage or "—",
            change.to_stage,
            change.get_via_display(),
            change.changed_at.isoformat(),
        )

    @admin.display(description=_("sent in"))
    def sent_in_link(self, obj: ConversionEvent) -> str:
        if obj.sent_in_id is None:
            return "—"
        url = reverse("admin:capi_sendattempt_change", args=[obj.sent_in_id])
        return format_html('<a href="{}">#{}</a>', url, obj.sent_in_id)

    @admin.action(description=_("Retry the selected failed events"), permissions=["change"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[ConversionEvent]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        retried = sending.retry_failed(selected)
        if retried:
            queue_send_on_commit()
        skipped = len(selected) - retried
        self.message_user(
            request,
            ngettext(
                "%(n)d failed event will be sent again.",
                "%(n)d failed events will be sent again.",
                retried,
            )
            % {"n": retried},
            messages.SUCCESS if retried else messages.INFO,
        )
        if skipped:
            self.message_user(
                request,
                _("%(n)d selected events were not failed and were left alone.") % {"n": skipped},
                messages.WARNING,
            )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        reason = sending.blocker()
        if reason and request.method == "GET":
            messages.warning(request, reason)
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if context and "cl" in context:
            context["coverage"] = coverage(context["cl"].queryset)
        return response


@admin.register(SendAttempt)
class SendAttemptAdmin(ReadOnlyAdmin):
    page_path = None  # a batch can mix pages (module docstring)
    list_display = [
        "id",
        "started_at",
        "dataset_id",
        "event_count",
        "outcome",
        "http_status",
        "events_received",
        "fbtrace_id",
        "short_error",
    ]
    list_filter = ["outcome", "dataset_id", "http_status"]
    search_fields = ["=fbtrace_id", "=dataset_id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = None
    fields = [
        "started_at",
        "duration_ms",
        "dataset_id",
        "test_event_code",
        "event_count",
        "outcome",
        "http_status",
        "events_received",
        "messages",
        "fbtrace_id",
        "error",
        "error_code",
        "error_subcode",
        "event_ids",
    ]
    readonly_fields = fields

    @admin.display(description=_("error"))
    def short_error(self, obj: SendAttempt) -> str:
        return obj.error[:120]


@admin.register(SenderState)
class SenderStateAdmin(ReadOnlyAdmin):
    page_path = None  # every page's sending (module docstring)
    list_display = ["__str__", "status", "paused_at", "last_run_at", "last_sent_at", "pending"]
    fields = [
        "status",
        "pending",
        "dataset",
        "paused_reason",
        "paused_at",
        "waiting_reason",
        "last_run_at",
        "last_sent_at",
    ]
    readonly_fields = fields
    actions = ["resume_sending"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SenderState]:
        SenderState.current()  # the row exists before the first run, so its page does too
        return super().get_queryset(request)

    @admin.display(description=_("status"))
    def status(self, obj: SenderState) -> str:
        return sending.blocker(obj) or str(_("Sending: nothing is blocking conversion events."))

    @admin.display(description=_("pending events"))
    def pending(self, obj: SenderState) -> int:
        return ConversionEvent.objects.filter(status=ConversionEvent.Status.PENDING).count()

    @admin.display(description=_("dataset"))
    def dataset(self, obj: SenderState) -> str:
        return settings.META_DATASET_ID or "—"

    @admin.action(description=_("Resume sending now"), permissions=["change"])
    def resume_sending(self, request: HttpRequest, queryset: QuerySet[SenderState]) -> None:
        if sending.resume():
            queue_send_on_commit()
            self.message_user(request, _("Sending resumed."), messages.SUCCESS)
        else:
            self.message_user(request, _("Sending was not paused."), messages.INFO)
