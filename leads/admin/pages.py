"""Admin of pages (tokens write-only) and their forms, and the "sync now" action of both."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from core.db import tasks
from leads import fetching
from leads.admin.scoping import PageScopedAdmin
from leads.graph import GraphError
from leads.models import Form, Page
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
