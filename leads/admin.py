"""Admin for the lead domain: enough to see every lead's state and every delivery.

Tokens are write-only here: the encrypted column is never rendered, and a new token goes
through `leads.pages.set_page_token` so parked leads resume.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from leads import csv_import
from leads.graph import GraphError
from leads.models import Form, Lead, Page, PipelineStage, StageChange, WebhookDelivery
from leads.pages import connect_page


class PageAdminForm(forms.ModelForm):
    new_token = forms.CharField(
        label=_("Replace token"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Checked against the Graph API before it is stored. Never shown again."),
    )

    class Meta:
        model = Page
        fields = ["page_id", "name"]

    def clean(self) -> dict:
        cleaned = super().clean()
        token = cleaned.get("new_token")
        page_id = cleaned.get("page_id") or (self.instance.page_id if self.instance else "")
        if token and page_id:
            try:
                # Verify before saving; connect_page stores the token and resumes leads.
                self._connect_result = connect_page(page_id, token=token)
            except GraphError as exc:
                raise forms.ValidationError(
                    _("Meta rejected the token: %(e)s"), params={"e": exc}
                ) from None
        return cleaned


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    form = PageAdminForm
    list_display = ["page_id", "name", "token_status", "token_checked_at", "forms_count"]
    list_filter = ["token_status"]
    search_fields = ["page_id", "name"]
    readonly_fields = ["token_status", "token_checked_at", "token_error", "connected_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Page]:
        return super().get_queryset(request).annotate(forms_total=Count("forms"))

    @admin.display(description=_("forms"), ordering="forms_total")
    def forms_count(self, obj: Page) -> int:
        return obj.forms_total  # type: ignore[attr-defined]

    def save_model(
        self, request: HttpRequest, obj: Page, form: PageAdminForm, change: bool
    ) -> None:
        result = getattr(form, "_connect_result", None)
        if result is not None:
            # connect_page already saved the page with its new token; keep admin's edits.
            obj.pk = result.page.pk
            obj.token_encrypted = result.page.token_encrypted
            obj.token_status = result.page.token_status
            messages.info(
                request,
                _("Token verified and stored; %(n)d leads resumed.") % {"n": result.leads_resumed},
            )
        super().save_model(request, obj, form, change)


@admin.register(Form)
class FormAdmin(admin.ModelAdmin):
    list_display = [
        "form_id",
        "name",
        "page",
        "status",
        "leads_synced_until",
        "leads_sync_at",
        "synced_at",
    ]
    list_filter = ["status"]
    list_select_related = ["page"]
    search_fields = ["form_id", "name"]
    readonly_fields = [
        "questions",
        "leads_synced_until",
        "leads_sync_at",
        "leads_sync_error",
        "synced_at",
        "meta_created_time",
    ]


@admin.register(PipelineStage)
class PipelineStageAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "position", "event_name", "sends_conversion"]
    list_editable = ["position", "event_name", "sends_conversion"]
    prepopulated_fields = {"slug": ["name"]}


class StageChangeInline(admin.TabularInline):
    model = StageChange
    extra = 0
    can_delete = False
    readonly_fields = ["from_stage", "to_stage", "changed_at", "changed_by", "via"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CsvImportForm(forms.Form):
    file = forms.FileField(
        label=_("Lead export"),
        help_text=_(
            "The CSV downloaded from Ads Manager or Leads Center (UTF-16 or UTF-8, tabs or "
            "commas). Leads already here stay one lead; data fetched from Meta is kept."
        ),
    )
    form_id = forms.RegexField(
        label=_("Form id"),
        regex=r"^\d{1,64}$",
        required=False,
        help_text=_("Only needed when the file has no form_id column."),
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > csv_import.MAX_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB."),
                params={"mb": csv_import.MAX_BYTES // (1024 * 1024)},
            )
        return upload


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = [
        "leadgen_id",
        "full_name",
        "email",
        "form",
        "stage",
        "fetch_status",
        "created_time",
    ]
    list_filter = ["fetch_status", "stage", "source", "is_organic", "platform"]
    list_select_related = ["form", "stage"]
    search_fields = ["leadgen_id", "email", "phone", "full_name"]
    # Every column is read-only: a stage moves only through leads.pipeline.move_stage.
    readonly_fields = [f.name for f in Lead._meta.fields]
    inlines = [StageChangeInline]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    # -- CSV import: leads.add_lead lets a user import (no lead is ever added by hand).

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("leads.add_lead")

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "import-csv/",
                self.admin_site.admin_view(self.import_csv_view),
                name="leads_lead_import_csv",
            )
        ]
        return custom + super().get_urls()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_import_permission": self.has_import_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_import_permission(request):
            raise PermissionDenied
        report = None
        if request.method == "POST":
            form = CsvImportForm(request.POST, request.FILES)
            if form.is_valid():
                try:
                    report = csv_import.import_export(
                        form.cleaned_data["file"].read(),
                        form_id=form.cleaned_data["form_id"] or None,
                    )
                except csv_import.NotALeadExport as exc:
                    form.add_error("file", _("Nothing imported: %(e)s") % {"e": exc})
        else:
            form = CsvImportForm()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Import leads from a lead export"),
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/leads/lead/import_csv.html", context)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "received_at",
        "status",
        "signature_valid",
        "changes_count",
        "leads_created",
    ]
    list_filter = ["status", "signature_valid"]
    readonly_fields = [
        "received_at",
        "body_text",
        "headers",
        "signature_valid",
        "status",
        "error",
        "changes_count",
        "leads_created",
        "processed_at",
    ]
    exclude = ["body"]
    show_full_result_count = False

    @admin.display(description=_("raw body"))
    def body_text(self, obj: WebhookDelivery) -> str:
        return bytes(obj.body).decode("utf-8", errors="replace")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
