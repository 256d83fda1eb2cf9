from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination


class LeadloopPagination(CursorPagination):
    """`?page_size=M` with opaque `next`/`previous` links.

    A cursor rather than page numbers: `page` is the lead filter by Meta page id (SPEC), and
    a cursor needs no COUNT(*) over 100,000 leads and never skips or repeats a row while
    new leads arrive between two requests. Newest first by Leadloop id (unique, monotonic).
    """

    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    # A malformed cursor is a bad request (DRF answers 404, as if the list did not exist).
    def decode_cursor(self, request):  # type: ignore[no-untyped-def]
        try:
            return super().decode_cursor(request)
        except Exception as exc:
            if getattr(exc, "status_code", None) == 404:
                raise ValidationError({"cursor": ["Invalid cursor."]}) from None
            raise
