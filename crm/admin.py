"""Admin for the people side: page access grants (like Meta's Leads Access Manager), owners
and notes. The lead page shows the lead's notes through `LeadAdmin.extra_inlines` (leads
never imports crm).

Every admin here follows the user's page access (crm.access, applied through
leads.visibility): a grant, a note or an owner of another page's lead is not found, and a
grant can name only a page the user sees, so nobody grants themselves another page."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from crm.models import Assignment, Note, PageAccess
from leads.admin import LeadAdmin, PageScopedAdmin, PageScopedInline

User = get_user_model()


@admin.register(PageAccess)
class PageAccessAdmin(PageScopedAdmin):
    page_path = "page"
    list_display = ["user", "page", "granted_at", "granted_by"]
    list_filter = ["page"]
    list_select_related = ["user", "page", "granted_by"]
    search_fields = ["user__username", "user__email", "page__name", "page__page_id"]
    autocomplete_fields = ["user", "page"]
    readonly_fields = ["granted_at", "granted_by"]

    def save_model(self, request: HttpRequest, obj: PageAccess, form, change: bool) -> None:
        if not change:
            obj.granted_by = request.user
        super().save_model(request, obj, form, change)


class PageAccessInline(PageScopedInline):
    model = PageAccess
    page_path = "page"
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["page"]
    readonly_fields = ["granted_at"]
    fields = ["page", "granted_at"]
    verbose_name_plural = "Page access (leads of these pages are visible to this user)"


# The user's page grants are edited on the user's own admin page.
admin.site.unregister(User)


@admin.register(User)
class LeadloopUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, PageAccessInline]


class NoteInline(PageScopedInline):
    """The lead's notes on its admin page, read-only (notes are written in the sales UI)."""

    model = Note
    page_path = "lead__page"
    extra = 0
    can_delete = False
    fields = ["created_at", "author", "body"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("author")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


LeadAdmin.extra_inlines.append(NoteInline)


@admin.register(Note)
class NoteAdmin(PageScopedAdmin):
    page_path = "lead__page"
    list_display = ["lead", "author", "created_at"]
    list_select_related = ["lead", "author"]
    raw_id_fields = ["lead"]
    readonly_fields = ["created_at"]
    show_full_result_count = False


@admin.register(Assignment)
class AssignmentAdmin(PageScopedAdmin):
    page_path = "lead__page"
    list_display = ["lead", "owner", "assigned_at"]
    list_select_related = ["lead", "owner"]
    raw_id_fields = ["lead"]
    readonly_fields = ["assigned_at", "assigned_by"]
    show_full_result_count = False
