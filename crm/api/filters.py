from __future__ import annotations

import datetime as dt

import django_filters
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

from core.ids import meta_id
from leads.models import Lead


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, compared in UTC. Offsets are applied here: PostgreSQL refuses
    some that ISO allows (beyond ±15:59), and a date-time that cannot be expressed in UTC
    is a bad request, not a server error."""

    def filter(self, qs: QuerySet, value: dt.datetime | None) -> QuerySet:
        if value is not None:
            try:
                value = value.astimezone(dt.UTC)
            except (OverflowError, ValueError):
                raise ValidationError({self.field_name: ["Date-time out of range."]}) from None
        return super().filter(qs, value)


class MetaIdFilter(django_filters.CharFilter):
    """A Meta id, read by the rule every path stores ids by (`core.ids`): `007` finds the
    lead stored as `7`, and text that is no id finds nothing."""

    def filter(self, qs: QuerySet, value: str) -> QuerySet:
        if value in ([], (), {}, "", None):
            return qs
        canonical = meta_id(value)
        return qs.none() if canonical is None else super().filter(qs, canonical)


class LeadFilter(django_filters.FilterSet):
    stage = django_filters.CharFilter(field_name="stage__slug", help_text="Stage slug.")
    form = MetaIdFilter(field_name="form__form_id", help_text="Meta form id.")
    page = MetaIdFilter(field_name="page__page_id", help_text="Meta page id.")
    leadgen_id = MetaIdFilter(field_name="leadgen_id", help_text="Meta lead id.")
    created_after = UTCDateTimeFilter(
        field_name="created_time", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    created_before = UTCDateTimeFilter(
        field_name="created_time", lookup_expr="lt", help_text="ISO 8601, exclusive."
    )
    search = django_filters.CharFilter(
        method="filter_search", help_text="Name, email or phone contains; or exact leadgen id."
    )

    class Meta:
        model = Lead
        fields = ["stage", "form", "page", "leadgen_id", "created_after", "created_before"]

    def filter_search(self, queryset: QuerySet[Lead], name: str, value: str) -> QuerySet[Lead]:
        value = value.strip()
        if not value:
            return queryset
        matches = Q(full_name__icontains=value) | Q(email__icontains=value)
        matches |= Q(phone__icontains=value)
        if (leadgen_id := meta_id(value)) is not None:
            matches |= Q(leadgen_id=leadgen_id)
        return queryset.filter(matches)
