"""Admin for the lead domain: enough to see every lead's state and every delivery, and to
fix things without a shell. Every action delegates to a service of `leads`.

Tokens are write-only here: the encrypted column is never rendered, and a new token goes
through `leads.pages.connect_page` (checked against Meta) so parked leads resume.

Extension point: `leads` imports neither `crm` nor `capi`, so their admin modules add their
inlines to the lead page by appending inline classes to `LeadAdmin.extra_inlines` when they
are imported (admin autodiscovery imports `leads.admin` first: INSTALLED_APPS order).

Page access: every admin of page data (here, in crm and in capi) is a `PageScopedAdmin`
naming the path from its model to its page, so its rows, object pages, actions, choices,
list filters and autocomplete answers follow the rule crm registers in
`leads.visibility` (crm.access, the sales UI's rule); rows of no single page (webhook
deliveries) are for users who see every page.

Big tables (leads, deliveries, stage changes, and capi's events) use `CappedCountPaginator`
and `show_full_result_count = False`, and every column comes from the row or a joined row,
so a changelist is a fixed number of queries however many rows it lists.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import get_fields_from_path
from django.core import checks
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, F, Model, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from core.db import fastjson, tasks
from core.db.postgres import estimated_count
from leads import csv_import, fetching, throttle, visibility
from leads.export import answer_pairs, disclaimer_pairs, lead_csv_lines
from leads.graph import GraphError
from leads.ingestion import NotReprocessable, reprocess_delivery
from leads.models import Form, Lead, Page, PipelineStage, StageChange, WebhookDelivery
from leads.pages import connect_page
from leads.pipeline import move_stage


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: `COUNT(*)` over 100,000+ rows on every changelist load is
    what makes a big admin slow on PostgreSQL. Up to CAP the count is exact; beyond it an
    unfiltered PostgreSQL table reports the planner's estimate (pg_class.reltuples) and
    anything else reports CAP, so the last pages of a huge unfiltered list are reached by
    filtering or searching rather than by paging."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return super().count
        capped = rows.order_by()[: self.CAP + 1].count()
        if capped <= self.CAP:
            return capped
        return max(estimated_count(rows) or 0, self.CAP)


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


# -- Page access: every row of a page-scoped admin, and every choice it offers, is one the
# user may see under the rule crm registers in `leads.visibility` (crm.access's rule).


def _scoped_admin(admin_site: admin.AdminSite, model: type[Model]) -> PageScoped | None:
    try:
        related = admin_site.get_model_admin(model)
    except NotRegistered:
        return None
    return related if isinstance(related, PageScoped) else None


class VisibleRawIdWidget(widgets.ForeignKeyRawIdWidget):
    """A raw id input that names its value only when the user may see that row: Django's
    widget looks the id up in the whole table, so a form sent back with another page's id
    would show that row's name next to the input."""

    def __init__(self, *args: Any, visible: QuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.visible = visible

    def label_and_url_for_value(self, value: Any) -> tuple[str, str]:
        key = self.rel.get_related_field().name
        try:
            seen = self.visible.filter(**{key: value}).exists()
        except (ValueError, ValidationError):
            seen = False
        return super().label_and_url_for_value(value) if seen else ("", "")


class VisibleRelatedFilter(admin.RelatedFieldListFilter):
    """A list filter on a page-scoped relation (page, form) offering only the rows the
    user may see: the plain filter lists every page's and form's name."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list:
        related = _scoped_admin(model_admin.admin_site, field.related_model)
        if related is None or visibility.sees_everything(request.user):
            return super().field_choices(field, request, model_admin)
        visible = related.scope(request, field.related_model._default_manager.all())
        return field.get_choices(
            include_blank=False,
            limit_choices_to={"pk__in": visible.values("pk")},
            ordering=self.field_admin_ordering(field, request, model_admin),
        )


class PageScoped:
    """Shared by page-scoped model admins and inlines: rows start from
    `leads.visibility.scope`, and a foreign key to a page-scoped model (a page, a form, a
    lead) offers, accepts and names only rows the user may see.

    `page_path` leads from the model to its page: `"pk"` (a page), `"page"`, `"lead__page"`;
    None for rows of no single page, which only users who see everything reach."""

    page_path: ClassVar[str | None]
    admin_site: admin.AdminSite

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        errors = super().check(**kwargs)  # type: ignore[misc]
        if not hasattr(self, "page_path"):
            # Loud at startup rather than a guess: every scoped admin says where its page is.
            errors.append(
                checks.Error(
                    f"{type(self).__qualname__} declares no page_path.",
                    obj=type(self),
                    id="leads.E001",
                )
            )
        return errors

    def scope(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return visibility.scope(queryset, user=request.user, page_path=self.page_path)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scope(request, super().get_queryset(request))  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        related = _scoped_admin(self.admin_site, db_field.related_model)
        if related is None or visibility.sees_everything(request.user):
            return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]
        if "queryset" not in kwargs:
            # The related admin's ordering, as Django's own choice would have it.
            choices = self.get_field_queryset(kwargs.get("using"), db_field, request)  # type: ignore[attr-defined]
            if choices is None:
                choices = db_field.related_model._default_manager.using(kwargs.get("using"))
            kwargs["queryset"] = related.scope(request, choices)
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]
        if isinstance(formfield.widget, widgets.ForeignKeyRawIdWidget):
            formfield.widget = VisibleRawIdWidget(
                db_field.remote_field,
                self.admin_site,
                using=kwargs.get("using"),
                visible=formfield.queryset,
            )
        return formfield


class PageScopedAdmin(PageScoped, admin.ModelAdmin):
    """A model admin whose changelist, object pages (change, history, delete), actions,
    autocomplete answers and list filters follow the user's page access. Another page's
    object is not found ("doesn't exist"), and an action posted with its id leaves it
    alone: the action's queryset is this admin's."""

    def get_list_filter(self, request: HttpRequest) -> list:
        return [self._visible_filter(entry) for entry in super().get_list_filter(request)]

    def _visible_filter(self, entry: Any) -> Any:
        if not isinstance(entry, str):
            return entry
        field = get_fields_from_path(self.model, entry)[-1]
        if field.is_relation and _scoped_admin(self.admin_site, field.related_model):
            return (entry, VisibleRelatedFilter)
        return entry

    # Rows of no single page (page_path None) are for users who see everything only: the
    # model is not offered to anyone else at all.
    def _reaches(self, request: HttpRequest) -> bool:
        return self.page_path is not None or visibility.sees_everything(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._reaches(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._reaches(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._reaches(request) and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._reaches(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._reaches(request) and super().has_delete_permission(request, obj)


class PageScopedInline(PageScoped, admin.TabularInline):
    """An inline whose rows and choices follow the user's page access (see PageScoped)."""


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
        if self.instance.pk is None and Page.objects.filter(page_id=page_id).exists():
            # An add form naming a page that exists: the unique check refuses it below, and
            # the token must not reach that page (it may be one the user cannot see).
            return cleaned
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
class PageAdmin(PageScopedAdmin):
    page_path = "pk"
    form = PageAdminForm
    list_display = [
        "page_id",
        "name",
        "token_status",
        "token_checked_at",
        "forms_count",
        "connected_at",
    ]
    list_filter = ["token_status"]
    search_fields = ["page_id", "name"]
    readonly_fields = [
        "token_state",
        "token_status",
        "token_checked_at",
        "token_error",
        "forms_count",
        "connected_at",
    ]
    actions = ["sync_now"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Page]:
        # The model's ordering again: Django drops a default ordering from a GROUP BY
        # query, and the autocomplete answers (which sort nothing themselves) page by it.
        return (
            super()
            .get_queryset(request)
            .annotate(forms_total=Count("forms"))
            .order_by(*Page._meta.ordering)
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Page | None = None) -> list[str]:
        # The page id names the page at Meta: fixed once the page exists.
        return [*self.readonly_fields, "page_id"] if obj else list(self.readonly_fields)

    @admin.display(description=_("forms"), ordering="forms_total")
    def forms_count(self, obj: Page) -> int:
        return getattr(obj, "forms_total", 0)

    @admin.display(description=_("token"))
    def token_state(self, obj: Page) -> str:
        # Whether there is one, never what it is.
        if obj.has_own_token:
            return str(_("The page's own token is stored (encrypted)."))
        return str(_("No token of its own: META_ACCESS_TOKEN is used if set."))

    def save_model(
        self, request: HttpRequest, obj: Page, form: PageAdminForm, change: bool
    ) -> None:
        result = getattr(form, "_connect_result", None)
        if result is not None:
            # connect_page already saved the page with its new token; keep admin's edits.
            obj.pk = result.page.pk
            obj.token_encrypted = result.page.token_encrypted
            obj.token_status = result.page.token_status
            obj.token_checked_at = result.page.token_checked_at
            obj.token_error = ""
            obj.connected_at = result.page.connected_at
            messages.info(
                request,
                _("Token verified and stored; %(n)d leads resumed.") % {"n": result.leads_resumed},
            )
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Sync now: reload forms and read their leads"))
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Page]) -> None:
        queue_sync(self, request, pages=list(queryset.order_by("pk")), forms=[])


def queue_sync(
    modeladmin: admin.ModelAdmin, request: HttpRequest, *, pages: list[Page], forms: list[Form]
) -> None:
    """Queue a bulk read (leads.tasks.sync_now) after commit. A read can page through
    thousands of leads and wait out Meta's throttling, far longer than a request may take,
    so it runs in a worker; pages and forms without a usable token are reported here."""
    usable_pages = [page for page in pages if fetching.usable_token(page)]
    usable_forms = [form for form in forms if fetching.usable_token(form.page)]
    skipped = len(pages) - len(usable_pages) + len(forms) - len(usable_forms)
    if usable_pages or usable_forms:
        tasks.enqueue_on_commit(
            "leads.tasks.sync_now",
            [page.pk for page in usable_pages],
            [form.pk for form in usable_forms],
        )
        modeladmin.message_user(
            request,
            _(
                "Sync queued for %(pages)d pages and %(forms)d forms; it runs in the background "
                "(see Background tasks), and each form's last read shows its outcome."
            )
            % {"pages": len(usable_pages), "forms": len(usable_forms)},
            messages.SUCCESS,
        )
    if skipped:
        modeladmin.message_user(
            request,
            _("%(n)d selected had no usable token and were skipped: replace the page's token.")
            % {"n": skipped},
            messages.WARNING,
        )


@admin.register(Form)
class FormAdmin(PageScopedAdmin):
    page_path = "page"
    list_display = [
        "form_id",
        "name",
        "page",
        "status",
        "leads_synced_until",
        "leads_sync_at",
        "last_read",
        "synced_at",
    ]
    list_filter = ["status", "page"]
    list_select_related = ["page"]
    search_fields = ["form_id", "name"]
    fields = [
        "form_id",
        "name",
        "page",
        "status",
        "locale",
        "questions_table",
        "meta_created_time",
        "leads_synced_until",
        "leads_sync_at",
        "last_read",
        "leads_sync_error",
        "synced_at",
    ]
    readonly_fields = [
        "questions_table",
        "leads_synced_until",
        "leads_sync_at",
        "last_read",
        "leads_sync_error",
        "synced_at",
        "meta_created_time",
    ]
    raw_id_fields = ["page"]
    actions = ["sync_now"]
    show_full_result_count = False

    @admin.display(description=_("last read"))
    def last_read(self, obj: Form) -> str:
        if obj.leads_sync_at is None:
            return str(_("never read"))
        if obj.leads_sync_error:
            return str(_("failed: %(e)s") % {"e": obj.leads_sync_error[:200]})
        return str(_("complete"))

    @admin.display(description=_("questions"))
    def questions_table(self, obj: Form) -> str:
        questions = [q for q in obj.questions or [] if isinstance(q, dict)]
        if not questions:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    q.get("key", ""),
                    q.get("label", ""),
                    q.get("type", ""),
                    ", ".join(
                        str(o.get("value") or o.get("key") or o) if isinstance(o, dict) else str(o)
                        for o in q.get("options") or []
                    ),
                )
                for q in questions
            ),
        )
        return format_html(
            '<table class="leadloop-questions"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("key"),
            _("label"),
            _("type"),
            _("options"),
            rows,
        )

    @admin.action(description=_("Sync now: read the leads of these forms"))
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Form]) -> None:
        queue_sync(
            self, request, pages=[], forms=list(queryset.select_related("page").order_by("pk"))
        )


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
class LeadAdmin(PageScopedAdmin):
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
    search_fields = ["=leadgen_id", "email", "phone", "full_name"]
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
        (
            _("Ad"),
            {
                "fields": [
                    "ad_id",
                    "ad_name",
                    "adset_id",
                    "adset_name",
                    "campaign_id",
                    "campaign_name",
                    "is_organic",
                    "platform",
                    "partner_name",
                    "retailer_item_id",
                ]
            },
        ),
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
            _pretty_json(
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
            pretty = _pretty_json(fastjson.loads(text))
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
