"""Admin of leads: their state, answers and raw data, and the actions on them (re-fetch,
move to a stage, export CSV), each delegating to a service of `leads`."""

from __future__ import annotations

from typing import ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from leads import fetching
from leads.admin.display import pretty_json
from leads.admin.lead_import import LeadImportMixin
from leads.admin.paging import CappedCountPaginator
from leads.admin.scoping import PageScopedAdmin
from leads.admin.stages import StageChangeInline
from leads.export import answer_pairs, disclaimer_pairs, lead_csv_lines
from leads.lead_data import AD_COLUMNS, CONTACT_COLUMNS
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import move_stage


class PlatformFilter(admin.SimpleListFilter):
    """Fixed choices: `SELECT DISTINCT platform` would scan every lead on each page load."""

    title = _("platform")
    parameter_name = "platform"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return [("fb", "Facebook"), ("ig", "Instagram")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Lead]) -> QuerySet[Lead]:
        return queryset.filter(platform=self.value()) if self.value() else queryset


class MoveStageForm(forms.Form):
    stage = forms.ModelChoiceField(
        label=_("Move to stage"), queryset=PipelineStage.objects.all(), empty_label=None
    )


@admin.register(Lead)
class LeadAdmin(LeadImportMixin, PageScopedAdmin):
    page_path = "page"
    list_display = [
        "leadgen_id",
        "full_name",
        "email",
        "page",
        "form",
        "stage",
        "fetch_status",
        "source",
        "created_time",
    ]
    list_filter = [
        "page",
        "form",
        "stage",
        "is_organic",
        PlatformFilter,
        ("created_time", admin.DateFieldListFilter),
        "fetch_status",
        "source",
    ]
    list_select_related = ["page", "form", "stage"]
    search_fields = ["=leadgen_id", *CONTACT_COLUMNS]
    paginator = CappedCountPaginator
    show_full_result_count = False
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "leadgen_id",
                    "full_name",
                    "email",
                    "phone",
                    "stage",
                    "stage_changed_at",
                    "page",
                    "form",
                    "created_time",
                    "created_at",
                ]
            },
        ),
        (_("Answers"), {"fields": ["answers_table", "disclaimers_table"]}),
        (_("Ad"), {"fields": list(AD_COLUMNS)}),
        (
            _("Fetch"),
            {
                "fields": [
                    "source",
                    "fetch_status",
                    "fetch_attempts",
                    "fetch_error",
                    "fetch_after",
                    "fetch_claimed_at",
                    "fetched_at",
                    "first_delivery_link",
                    "updated_at",
                ]
            },
        ),
        (_("Raw data from Meta"), {"fields": ["raw_graph_json"]}),
    ]
    # Every column is read-only: a stage moves only through leads.pipeline.move_stage.
    readonly_fields = [
        *(f.name for f in Lead._meta.fields),
        "answers_table",
        "disclaimers_table",
        "raw_graph_json",
        "first_delivery_link",
    ]
    inlines = [StageChangeInline]
    # crm and capi append their inline classes here (notes, conversion events): see the
    # module docstring. Class-level on purpose: the registered instance reads it per request.
    extra_inlines: ClassVar[list[type[admin.options.InlineModelAdmin]]] = []
    actions = ["refetch", "refetch_complete", "move_to_stage", "export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_inlines(self, request: HttpRequest, obj: Lead | None) -> list:
        return [*self.inlines, *self.extra_inlines]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lead]:
        queryset = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "leads_lead_changelist":
            # The list shows none of the JSON columns: 100 rows of raw Graph answers are
            # the bulk of the page's bytes otherwise. Actions re-read what they need.
            queryset = queryset.defer("field_data", "custom_disclaimer_responses", "graph_data")
        return queryset

    # -- Rendering: every value passes through format_html, so answers are escaped.

    @admin.display(description=_("answers"))
    def answers_table(self, obj: Lead) -> SafeString | str:
        pairs = answer_pairs(obj.field_data)
        if not pairs:
            return "—"
        labels: dict[str, str] = {}
        questions = obj.form.questions if obj.form and isinstance(obj.form.questions, list) else []
        for question in questions:
            if isinstance(question, dict) and question.get("key"):
                labels[str(question["key"])] = str(question.get("label") or question["key"])
        rows = format_html_join(
            "",
            '<tr><th scope="row">{}</th><td><code>{}</code></td><td>{}</td></tr>',
            (
                (labels.get(key, key), key, format_html_join(", ", "{}", ((v,) for v in values)))
                for key, values in pairs
            ),
        )
        return format_html(
            '<table class="leadloop-answers"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            _("question"),
            _("key"),
            _("values"),
            rows,
        )

    @admin.display(description=_("disclaimers"))
    def disclaimers_table(self, obj: Lead) -> SafeString | str:
        pairs = disclaimer_pairs(obj.custom_disclaimer_responses)
        if not pairs:
            return "—"
        return format_html(
            '<ul class="leadloop-disclaimers">{}</ul>',
            format_html_join(
                "",
                "<li>{} <code>{}</code>: {}</li>",
                (
                    ("☑" if checked else "☐", key, _("checked") if checked else _("unchecked"))
                    for key, checked in pairs
                ),
            ),
        )

    @admin.display(description=_("Graph API answer"))
    def raw_graph_json(self, obj: Lead) -> SafeString:
        return format_html(
            "<details><summary>{}</summary><pre>{}</pre></details>",
            _("Show the raw JSON"),
            pretty_json(
                {
                    "graph_data": obj.graph_data,
                    "field_data": obj.field_data,
                    "custom_disclaimer_responses": obj.custom_disclaimer_responses,
                }
            ),
        )

    @admin.display(description=_("first delivery"))
    def first_delivery_link(self, obj: Lead) -> SafeString | str:
        if obj.first_delivery_id is None:
            return "—"
        url = reverse("admin:leads_webhookdelivery_change", args=[obj.first_delivery_id])
        return format_html('<a href="{}">#{}</a>', url, obj.first_delivery_id)

    # -- Actions: each delegates to a service of `leads`.

    @admin.action(description=_("Re-fetch from Meta (leads not complete)"), permissions=["change"])
    def refetch(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        self._refetch(request, queryset, include_complete=False)

    @admin.action(
        description=_("Re-fetch from Meta, complete leads included"), permissions=["change"]
    )
    def refetch_complete(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        self._refetch(request, queryset, include_complete=True)

    def _refetch(
        self, request: HttpRequest, queryset: QuerySet[Lead], *, include_complete: bool
    ) -> None:
        queued = fetching.refetch(queryset, include_complete=include_complete)
        self.message_user(
            request,
            ngettext(
                "%(n)d lead will be fetched from Meta.",
                "%(n)d leads will be fetched from Meta.",
                queued,
            )
            % {"n": queued},
            messages.SUCCESS if queued else messages.INFO,
        )

    @admin.action(description=_("Move to stage…"), permissions=["change"])
    def move_to_stage(
        self, request: HttpRequest, queryset: QuerySet[Lead]
    ) -> TemplateResponse | None:
        form = MoveStageForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            stage = form.cleaned_data["stage"]
            moved = unchanged = waiting = 0
            for lead in (
                queryset.select_related(None).only("pk", "stage", "fetch_status").order_by("pk")
            ):
                if lead.stage_id is None and lead.fetch_status != Lead.FetchStatus.COMPLETE:
                    # It enters the pipeline when its data arrives; moving it before would
                    # report a stage to Meta for a lead we know nothing about yet.
                    waiting += 1
                    continue
                change = move_stage(lead, stage=stage, via=StageChange.Via.ADMIN, by=request.user)
                if change is None:
                    unchanged += 1
                else:
                    moved += 1
            self.message_user(
                request,
                _("%(moved)d moved to %(stage)s, %(same)d already there.")
                % {"moved": moved, "stage": stage, "same": unchanged},
                messages.SUCCESS,
            )
            if waiting:
                self.message_user(
                    request,
                    _("%(n)d not moved: their data has not arrived from Meta yet.")
                    % {"n": waiting},
                    messages.WARNING,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Move leads to a stage"),
            "form": form,
            "count": queryset.count(),
            "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "preserved_query": request.GET.urlencode(),
        }
        return TemplateResponse(request, "admin/leads/lead/move_stage.html", context)

    @admin.action(description=_("Export CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Lead]) -> StreamingHttpResponse:
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            lead_csv_lines(queryset), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="leads-{stamp}.csv"'
        return response
