"""SQL the ORM has no expression for, as Django's documented custom lookups."""

from __future__ import annotations

from typing import Any

from django.db.models import Lookup


class Like(Lookup):
    """`lhs LIKE pattern`, the pattern used as given (Django's `contains` escapes `%`): the
    phone search's digits in order with anything between them (crm.filters)."""

    lookup_name = "like"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs}", [*lhs_params, *rhs_params]
