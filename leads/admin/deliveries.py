"""Admin of webhook deliveries: what was received beside what is kept, and reprocessing."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.formats import number_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from core.db import fastjson
from leads import throttle
from leads.admin.display import pretty_json
from leads.admin.paging import CappedCountPaginator
from leads.admin.scoping import PageScopedAdmin
from leads.ingestion import NotReprocessable, reprocess_delivery
from leads.models import WebhookDelivery


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(PageScopedAdmin):
    """Deliveries, with what was received (size, SHA-256) beside what is kept: a delivery
    whose signature failed keeps its first bytes only, and says so. The list also shows
    how many such deliveries the rate limit refused without storing (`leads.throttle`)."""

    # A delivery is one POST from Meta: its body can carry several pages' leads, and an
    # unsigned or malformed one belongs to no page. Only users who see every page see them.
    page_path = None
    list_display = [
        "id",
        "received_at",
        "status",
        "signature_valid",
        "size",
        "body_truncated",
        "changes_count",
        "leads_created",
        "short_error",
    ]
    list_filter = [
        "status",
        "signature_valid",
        "body_truncated",
        ("received_at", admin.DateFieldListFilter),
    ]
    fields = [
        "received_at",
        "status",
        "signature_valid",
        "error",
        "changes_count",
        "leads_created",
        "processed_at",
        "size",
        "body_sha256",
        "body_truncated",
        "headers_table",
        "body_text",
    ]
    readonly_fields = fields
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["reprocess"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "refused": throttle.refused_deliveries()}
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "leads_webhookdelivery_changelist":
            # Bodies can be up to the size limit each; the list shows none of them.
            queryset = queryset.defer("body", "headers")
        return queryset

    @admin.display(description=_("error"))
    def short_error(self, obj: WebhookDelivery) -> str:
        return obj.error[:120]

    @admin.display(description=_("size received"), ordering="body_size")
    def size(self, obj: WebhookDelivery) -> str:
        return _("%(bytes)s bytes (%(size)s)") % {
            "bytes": number_format(obj.body_size, force_grouping=True),
            "size": filesizeformat(obj.body_size),
        }

    @admin.display(description=_("raw body"))
    def body_text(self, obj: WebhookDelivery) -> SafeString:
        kept = bytes(obj.body)
        text = kept.decode("utf-8", errors="replace")
        if obj.body_truncated:
            # A part of a body is rarely JSON: shown as it is, after what it is.
            return format_html(
                '<p class="help">{}</p><pre>{}</pre>',
                _(
                    "Only the first %(kept)s of %(size)s bytes are kept: the signature did "
                    "not verify. The SHA-256 is that of the whole body."
                )
                % {
                    "kept": number_format(len(kept), force_grouping=True),
                    "size": number_format(obj.body_size, force_grouping=True),
                },
                text,
            )
        try:
            pretty = pretty_json(fastjson.loads(text))
        except (ValueError, RecursionError):
            # Not JSON, or nested too deeply to parse or indent (a kept hostile body).
            return format_html("<pre>{}</pre>", text)
        return format_html(
            "<pre>{}</pre><details><summary>{}</summary><pre>{}</pre></details>",
            text,
            _("Indented"),
            pretty,
        )

    @admin.display(description=_("headers"))
    def headers_table(self, obj: WebhookDelivery) -> SafeString | str:
        headers = obj.headers if isinstance(obj.headers, dict) else {}
        if not headers:
            return "—"
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                '<tr><th scope="row">{}</th><td><code>{}</code></td></tr>',
                sorted(headers.items()),
            ),
        )

    @admin.action(description=_("Reprocess (validly signed deliveries only)"))
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        done = refused = created = 0
        for delivery in queryset.only("pk").order_by("pk"):
            try:
                before = WebhookDelivery.objects.values_list("leads_created", flat=True).get(
                    pk=delivery.pk
                )
                result = reprocess_delivery(delivery)
            except NotReprocessable:
                refused += 1
                continue
            done += 1
            created += result.leads_created - before
        self.message_user(
            request,
            _("%(done)d deliveries reprocessed; %(created)d new leads.")
            % {"done": done, "created": created},
            messages.SUCCESS if done else messages.INFO,
        )
        if refused:
            self.message_user(
                request,
                _("%(n)d deliveries were not validly signed and were left alone.") % {"n": refused},
                messages.WARNING,
            )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The changelist keeps the permission (for the action); a stored delivery is
        # evidence and is never edited.
        return obj is None and super().has_change_permission(request, obj)
