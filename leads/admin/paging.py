"""Paging for big admin tables (leads, deliveries, stage changes, and capi's events)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

from core.db.postgres import estimated_count


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
