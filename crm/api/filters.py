from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from leads.models import Lead


class LeadFilter(django_filters.FilterSet):
    stage = django_filters.CharFilter(field_name="stage__slug", help_text="Stage slug.")
    form = django_filters.CharFilter(field_name="form__form_id", help_text="Meta form id.")
    page = django_filters.CharFilter(field_name="page__page_id", help_text="Meta page id.")
    leadgen_id = django_filters.CharFilter(field_name="leadgen_id")
    created_after = django_filters.IsoDateTimeFilter(
        field_name="created_time", lookup_expr="gte", help_text="ISO 8601, inclusive."
    )
    created_before = django_filters.IsoDateTimeFilter(
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
        return queryset.filter(
            Q(full_name__icontains=value)
            | Q(email__icontains=value)
            | Q(phone__icontains=value)
            | Q(leadgen_id=value)
        )
