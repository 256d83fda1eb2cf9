"""Filters of the sales UI (board and lead list), one definition for the page, its htmx
partials and the CSV export, so the export holds exactly what the list shows.

Every choice offered (pages, forms, owners) is limited to what the user may see, and the
queryset handed in must come from `crm.access.visible_leads`: a filter can only narrow it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import django_filters
from django import forms
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Replace
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.db.lookups import Like
from core.ids import meta_id
from crm.access import users_sharing_pages, visible_pages
from leads.models import Form, Lead, Page, PipelineStage

# (created_time, id) is the index order; every sort ends on id so pages never overlap.
SORTS: dict[str, tuple[str, ...]] = {
    "-created": ("-created_time", "-id"),
    "created": ("created_time", "id"),
    "name": ("full_name", "id"),
    "-name": ("-full_name", "-id"),
    "stage": ("stage__position", "-created_time", "-id"),
    "-stage": ("-stage__position", "-created_time", "-id"),
    "-moved": ("-stage_changed_at", "-id"),
    "moved": ("stage_changed_at", "id"),
}
DEFAULT_SORT = "-created"

PLATFORM_CHOICES = [("fb", "Facebook"), ("ig", "Instagram")]

# A query made only of phone characters is compared on digits, so "612345678" finds
# "+34 612 345 678" however the lead typed it.
PHONE_QUERY = re.compile(r"^\+?[\d\s().\-/]{4,}$")
PHONE_SEPARATORS = (" ", "-", "(", ")", ".", "/")


def _digits_only(field: str) -> Any:
    expression: Any = F(field)
    for separator in PHONE_SEPARATORS:
        expression = Replace(expression, Value(separator), Value(""))
    return expression


def search_leads(queryset: QuerySet[Lead], text: str) -> QuerySet[Lead]:
    """Name or email contains the text, the phone contains its digits (phone-like text),
    or the leadgen id is exactly it (Meta's exports prefix ids with `l:`; ignored).

    Each test reads one narrow index (full_name, email and phone are indexed) rather than
    every lead row, and the database unions the ids: a search over 100,000 leads never
    loads their JSON answers. `queryset` keeps the user's access filter. The email and
    phone indexes hold non-empty values only (`Lead.Meta`), so those tests say `<> ''`
    too: the database uses a partial index only for a query that names its condition.
    """
    text = text.strip()
    if not text:
        return queryset
    leadgen_id = meta_id(text.removeprefix("l:"))
    matches = [
        Lead.objects.filter(full_name__icontains=text).values("pk"),
        Lead.objects.filter(email__icontains=text).exclude(email="").values("pk"),
    ]
    if leadgen_id is not None:
        # Also a subquery: the outer filter then needs only ids and pages, which the
        # (page, created) index holds, and never reads a lead row to test a match.
        matches.append(Lead.objects.filter(leadgen_id=leadgen_id).values("pk"))
    if PHONE_QUERY.match(text):
        digits = re.sub(r"\D", "", text)
        # The digits in order with anything between them picks candidates from the index
        # cheaply; the exact test (separators removed) then runs on those alone.
        phones = (
            Lead.objects.exclude(phone="")
            .filter(Like(F("phone"), Value("%" + "%".join(digits) + "%")))
            .alias(phone_digits=_digits_only("phone"))
            .filter(phone_digits__contains=digits)
        )
        matches.append(phones.values("pk"))
    # One list of ids (UNION), tested once per visible lead, rather than one `IN` test per
    # kind of match: SQLite then checks each candidate's page once (bench/ui).
    ids = [match.order_by() for match in matches]  # no ORDER BY inside a UNION
    return queryset.filter(pk__in=ids[0].union(*ids[1:]))


def _day_start(day: dt.date) -> dt.datetime:
    """Midnight of `day` in the active time zone: "created on the 3rd" means the user's 3rd."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        # ISO format: what <input type="date"> sends and expects, in every language.
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class LeadFilterBase(django_filters.FilterSet):
    """The filters the board and the list share."""

    q = django_filters.CharFilter(
        label=_("Search"),
        method="filter_search",
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": _("Name, email, phone or lead ID"),
                "autocomplete": "off",
            }
        ),
    )
    page = django_filters.ModelChoiceFilter(
        label=_("Page"),
        queryset=Page.objects.none(),
        to_field_name="page_id",
        empty_label=_("All pages"),
    )
    form = django_filters.ModelChoiceFilter(
        label=_("Form"),
        queryset=Form.objects.none(),
        to_field_name="form_id",
        empty_label=_("All forms"),
    )
    owner = django_filters.ChoiceFilter(
        label=_("Owner"), method="filter_owner", empty_label=_("Anyone")
    )
    source = django_filters.ChoiceFilter(
        label=_("Traffic"),
        method="filter_source",
        choices=[("paid", _("Paid")), ("organic", _("Organic"))],
        empty_label=_("Paid and organic"),
    )
    platform = django_filters.ChoiceFilter(
        label=_("Platform"), choices=PLATFORM_CHOICES, empty_label=_("All platforms")
    )

    class Meta:
        model = Lead
        fields: list[str] = []

    def __init__(
        self,
        data: Any = None,
        queryset: QuerySet[Lead] | None = None,
        *,
        user: AbstractBaseUser | AnonymousUser,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, queryset, **kwargs)
        self.user = user
        pages = visible_pages(user).order_by("name", "page_id")
        self.filters["page"].queryset = pages
        self.filters["form"].queryset = (
            Form.objects.filter(page__in=pages.values("pk"))
            .select_related("page")
            .order_by("name", "form_id")
        )
        owners = users_sharing_pages(user).order_by("first_name", "last_name", "username")
        self.filters["owner"].extra["choices"] = [
            ("me", _("Me")),
            ("none", _("Unassigned")),
            *[(str(owner.pk), owner.get_full_name() or owner.get_username()) for owner in owners],
        ]

    def filter_search(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        return search_leads(queryset, value)

    def filter_owner(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        if value == "me":
            return queryset.filter(assignment__owner_id=self.user.pk)
        if value == "none":
            return queryset.filter(assignment__isnull=True)
        return queryset.filter(assignment__owner_id=int(value))

    def filter_source(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        return queryset.filter(is_organic=(value == "organic"))

    @property
    def qs(self) -> QuerySet[Lead]:
        # An invalid filter (a page not granted, a malformed date) matches nothing rather
        # than being dropped: the user sees the error, never a broader list than asked.
        if self.is_bound and not self.form.is_valid():
            return self.queryset.none()
        return super().qs

    @property
    def active_count(self) -> int:
        """How many filters narrow the result (for the "n filters" hint and reset link)."""
        if not self.is_bound:
            return 0
        cleaned = self.form.cleaned_data if self.form.is_valid() else {}
        return sum(1 for key, value in cleaned.items() if value not in (None, "") and key != "sort")


class BoardFilter(LeadFilterBase):
    """The board shows stages as columns, so it filters by everything but the stage."""


class LeadListFilter(LeadFilterBase):
    stage = django_filters.ModelChoiceFilter(
        label=_("Stage"),
        queryset=PipelineStage.objects.all(),
        to_field_name="slug",
        empty_label=_("All stages"),
    )
    status = django_filters.ChoiceFilter(
        label=_("Data"),
        field_name="fetch_status",
        choices=Lead.FetchStatus.choices,
        empty_label=_("Any status"),
    )
    created_from = django_filters.DateFilter(
        label=_("Created from"), method="filter_created_from", widget=DateInput()
    )
    created_to = django_filters.DateFilter(
        label=_("Created to"), method="filter_created_to", widget=DateInput()
    )
    sort = django_filters.ChoiceFilter(
        label=_("Sort by"),
        method="filter_sort",
        choices=[
            ("-created", _("Newest first")),
            ("created", _("Oldest first")),
            ("name", _("Name A–Z")),  # noqa: RUF001 - an en dash, as typeset
            ("-name", _("Name Z–A")),  # noqa: RUF001 - an en dash, as typeset
            ("stage", _("Stage, first to last")),
            ("-stage", _("Stage, last to first")),
            ("-moved", _("Recently moved")),
            ("moved", _("Longest in stage")),
        ],
        empty_label=None,
    )

    def filter_created_from(
        self, queryset: QuerySet[Lead], name: str, value: dt.date
    ) -> QuerySet[Lead]:
        return queryset.filter(created_time__gte=_day_start(value))

    def filter_created_to(
        self, queryset: QuerySet[Lead], name: str, value: dt.date
    ) -> QuerySet[Lead]:
        # Inclusive of the whole day, and still a range on the indexed column.
        return queryset.filter(created_time__lt=_day_start(value + dt.timedelta(days=1)))

    def filter_sort(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        return queryset.order_by(*SORTS.get(value, SORTS[DEFAULT_SORT]))

    @property
    def sort_key(self) -> str:
        value = self.data.get("sort") if self.is_bound else None
        return value if value in SORTS else DEFAULT_SORT

    @property
    def qs(self) -> QuerySet[Lead]:
        queryset = super().qs
        # An absent or invalid sort still gives a stable order.
        if not (self.is_bound and self.form.is_valid() and self.form.cleaned_data.get("sort")):
            queryset = queryset.order_by(*SORTS[DEFAULT_SORT])
        return queryset
