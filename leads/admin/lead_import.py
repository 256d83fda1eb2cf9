"""The lead admin's CSV import page (`import-csv/`): a lead export uploaded and stored by
`leads.csv_import.import_export`. The `leads.add_lead` permission lets a user import (no
lead is ever added by hand)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from leads import csv_import, visibility
from leads.models import Form


class FormIdChoiceField(forms.ModelChoiceField):
    """A form chosen from a list, cleaned to its form id as the free-text field is."""

    def clean(self, value: Any) -> str:
        form = super().clean(value)
        return form.form_id if form is not None else ""


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

    def __init__(
        self, *args: Any, form_choices: QuerySet[Form] | None = None, **kwargs: Any
    ) -> None:
        """`form_choices`: the forms an importer limited to some pages may name (their
        pages' forms), offered as a list; None for one who sees every page, who may type
        any form id, a form not known yet included."""
        super().__init__(*args, **kwargs)
        if form_choices is not None:
            self.fields["form_id"] = FormIdChoiceField(
                label=_("Form"),
                queryset=form_choices.order_by("name", "form_id"),
                to_field_name="form_id",
                required=False,
                help_text=self.fields["form_id"].help_text,
            )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > csv_import.MAX_BYTES:
            raise forms.ValidationError(
                _("The file is larger than %(mb)d MB."),
                params={"mb": csv_import.MAX_BYTES // (1024 * 1024)},
            )
        return upload


class LeadImportMixin:
    """The import page of `LeadAdmin`: its URL, the changelist's link to it, and the view."""

    admin_site: admin.AdminSite
    model: type[Model]

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
        return custom + super().get_urls()  # type: ignore[misc]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_import_permission": self.has_import_permission(request),
        }
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def import_csv_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_import_permission(request):
            raise PermissionDenied
        report = None
        # An importer limited to some pages imports into their forms only (and changes no
        # lead of another page); one who sees every page may name any form.
        pages = None
        choices = None
        if not visibility.sees_everything(request.user):
            pages = visibility.visible_pages(request.user)
            choices = visibility.scope(Form.objects.all(), user=request.user, page_path="page")
        if request.method == "POST":
            form = CsvImportForm(request.POST, request.FILES, form_choices=choices)
            if form.is_valid():
                try:
                    report = csv_import.import_export(
                        form.cleaned_data["file"].read(),
                        form_id=form.cleaned_data["form_id"] or None,
                        pages=pages,
                    )
                except csv_import.NotALeadExport as exc:
                    form.add_error("file", _("Nothing imported: %(e)s") % {"e": exc})
        else:
            form = CsvImportForm(form_choices=choices)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Import leads from a lead export"),
            "form": form,
            "report": report,
        }
        return TemplateResponse(request, "admin/leads/lead/import_csv.html", context)
