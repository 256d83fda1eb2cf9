"""Page access for the admin: every row of a page-scoped admin, and every choice it offers,
is one the user may see under the rule crm registers in `leads.visibility` (crm.access's
rule). Admins of page data here, in crm and in capi subclass `PageScopedAdmin` (inlines:
`PageScopedInline`), naming the path from their model to its page."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin import widgets
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.utils import get_fields_from_path
from django.core import checks
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from leads import visibility


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
