"""Hostile lead exports: whatever a file holds, the import stores the rows it can, rejects
the others with a row number and a reason, or refuses the whole file with a reason, and
never raises anything else (the admin upload and the command show that reason)."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import transaction
from hypothesis import example, given
from hypothesis import strategies as st

from leads import csv_import
from leads.models import Lead

pytestmark = pytest.mark.django_db

COLUMNS = [
    "id", "created_time", "ad_id", "ad_name", "adset_id", "adset_name", "campaign_id",
    "campaign_name", "form_id", "form_name", "is_organic", "platform", "full_name", "email",
    "phone_number", "lead_status", "q:what_do_you_need?",
]  # fmt: skip
CELLS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["l:1234567890123456", "f:2222", "ag:1", "2025-01-01T10:00:00+02:00", "1", "true",
         "=HYPERLINK(\"http://x\")", "+34 612", "<script>alert(1)</script>", "'; DROP TABLE x;--",
         "9" * 80, "x" * 5000, "\u202e", "\ufeff", "١٢٣"]
    ),
)  # fmt: skip


def id_cell(prefix: str) -> st.SearchStrategy[str]:
    return st.sampled_from([f"{prefix}:120210000000000001", "120210000000000002", ""])


# Rows that look like leads (COLUMNS' order), with anything in the free-text columns.
LEADLIKE_ROWS = st.tuples(
    st.sampled_from(["l:1234567890123456", "1234567890123457", "l:12", "l:x"]),
    st.sampled_from(["2025-01-01T10:00:00+02:00", "2025-01-01T08:00:00+0000", "x"]),
    *(st.tuples(id_cell(prefix), CELLS) for prefix in ("ag", "as", "c")),
    st.sampled_from(["f:2222", "2222", "f:" + "9" * 70]),
    CELLS,
    st.one_of(st.sampled_from(["0", "1", "true", "FALSE", ""]), CELLS),
    *[CELLS] * 6,
).map(lambda cells: [c for cell in cells for c in (cell if isinstance(cell, tuple) else [cell])])


def export(header: list[str], rows: list[list[str]], *, delimiter: str, encoding: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    return ("\ufeff" + text).encode(encoding) if encoding == "utf-16-le" else text.encode(encoding)


@given(
    header=st.one_of(
        st.just(COLUMNS),
        st.lists(st.one_of(st.sampled_from(COLUMNS), st.text(max_size=12)), max_size=8),
    ),
    rows=st.lists(st.one_of(LEADLIKE_ROWS, st.lists(CELLS, max_size=20)), max_size=6),
    delimiter=st.sampled_from([",", "\t", ";"]),
    encoding=st.sampled_from(["utf-8", "utf-16-le"]),
)
@example(header=COLUMNS, rows=[["l:1", "", "", "", "", "", "", "", "f:" + "9" * 80]],
         delimiter=",", encoding="utf-8")  # fmt: skip
def test_any_export_is_imported_rejected_or_refused_with_a_reason(
    header, rows, delimiter, encoding
):
    data = export(header, rows, delimiter=delimiter, encoding=encoding)
    with transaction.atomic():
        try:
            report = csv_import.import_export(data)
        except csv_import.NotALeadExport as exc:
            assert str(exc)
            assert Lead.objects.count() == 0
        else:
            assert all(rejection.reason for rejection in report.rejected)
            settled = report.created + report.updated + report.unchanged + len(report.rejected)
            assert report.rows == settled
            assert Lead.objects.count() == report.created
        transaction.set_rollback(True)
