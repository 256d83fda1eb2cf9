"""Admin of the pipeline's stages and of its history (stage changes, read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from leads import visibility
from leads.admin.paging import CappedCountPaginator
from leads.admin.scoping import PageScopedAdmin, PageScopedInline
from leads.models import PipelineStage, StageChange


@admin.register(PipelineStage)
class PipelineStageAdmin(admin.ModelAdmin):
    """Stages are shared by every page: a user limited to some pages may read them, but
    only a user who sees every page changes them (a new event name or a deleted stage is
    every page's pipeline, and a stage's delete page would list the leads in it)."""

    list_display = ["name", "slug", "position", "event_name", "sends_conversion"]
    list_editable = ["position", "event_name", "sends_conversion"]
    prepopulated_fields = {"slug": ["name"]}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return visibility.sees_everything(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return visibility.sees_everything(request.user) and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return visibility.sees_everything(request.user) and super().has_delete_permission(
            request, obj
        )


class StageChangeInline(PageScopedInline):
    model = StageChange
    page_path = "lead__page"
    extra = 0
    can_delete = False
    fields = ["changed_at", "from_stage", "to_stage", "changed_by", "via"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[StageChange]:
        return super().get_queryset(request).select_related("from_stage", "to_stage", "changed_by")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(StageChange)
class StageChangeAdmin(PageScopedAdmin):
    """The pipeline's history, read-only: a change is made only by moving a lead."""

    page_path = "lead__page"

    list_display = ["id", "changed_at", "lead_link", "from_stage", "to_stage", "changed_by", "via"]
    list_filter = ["via", "to_stage", ("changed_at", admin.DateFieldListFilter)]
    list_select_related = ["from_stage", "to_stage", "changed_by"]
    search_fields = ["=lead__leadgen_id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["lead_link", "from_stage", "to_stage", "changed_at", "changed_by", "via"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[StageChange]:
        # The leadgen id as a column: the lead row (answers, raw JSON) is never loaded.
        return super().get_queryset(request).annotate(leadgen=F("lead__leadgen_id"))

    @admin.display(description=_("lead (leadgen id)"), ordering="lead__leadgen_id")
    def lead_link(self, obj: StageChange) -> str:
        url = reverse("admin:leads_lead_change", args=[obj.lead_id])
        return format_html('<a href="{}">{}</a>', url, getattr(obj, "leadgen", obj.lead_id))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
