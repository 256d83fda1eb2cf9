"""CSV export of leads, streamed: 100,000 leads never sit in memory, and the first bytes
leave before the last row is read.

One writer, `csv_lines`, for both exports; each names its columns. The admin's
(`lead_csv_lines`) keeps every answer in one `key: values` cell; the sales UI's (crm.export)
uses the REST API's field names and has a column per question. A column of a lead's own
values is named as in `CELLS`; every cell, header or value, is defused by `csv_cell`.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from django.db.models import QuerySet

from core.meta import AD_FIELDS
from leads.lead_data import AD_COLUMNS, CONTACT_COLUMNS
from leads.models import Lead

CHUNK = 2000

# CSV injection: a cell whose first character a spreadsheet may read as the start of a
# formula (= + - @), or a control character that hides what follows (tab, CR, LF), is
# prefixed with an apostrophe. Spreadsheets fold look-alikes (the full-width U+FF1D, U+FF0B,
# U+FF0D, U+FF20, the small U+FE66 ...) the way NFKC does, so the first character is
# compared folded. Phone numbers such as "+34 612..." and "-(0)30 ..." are data and are
# left alone.
_FORMULA_START = frozenset("=@")
_SIGN_START = frozenset("+-")
_CONTROL_START = frozenset("\t\r\n")
_NUMBER_AFTER_SIGN = re.compile(r"[\d\s().]+")

Cell = Callable[[Lead], Any]

# What a column of a lead's own values holds, by the column's name: the model field's name,
# and for a related row the API's name for it (`page` is the page's Meta id).
CELLS: dict[str, Cell] = {
    "id": attrgetter("pk"),
    "stage": lambda lead: lead.stage.slug if lead.stage else "",
    "page": lambda lead: lead.page.page_id if lead.page else "",
    "page_name": lambda lead: lead.page.name if lead.page else "",
    "form": lambda lead: lead.form.form_id if lead.form else "",
    "form_name": lambda lead: lead.form.name if lead.form else "",
    **{
        name: attrgetter(name)
        for name in ("leadgen_id", "created_time", *AD_COLUMNS, *CONTACT_COLUMNS)
    },
    "source": attrgetter("source"),
    "fetch_status": attrgetter("fetch_status"),
}
# Both exports start with who the lead is and where it stands.
FIRST_COLUMNS = ("id", "leadgen_id", "created_time", "full_name", "email", "phone", "stage")
# The admin's export: its lead columns, then `answers` and `disclaimers`.
EXPORT_COLUMNS = (
    *FIRST_COLUMNS,
    "page",
    "form",
    "form_name",
    *AD_FIELDS,
    "platform",
    "is_organic",
    "source",
    "fetch_status",
)
# The related rows the cells of CELLS read.
RELATED = ("page", "form", "stage")


@dataclass(frozen=True)
class Columns:
    """Adjacent columns of an export: their headers, and a lead's cells under them."""

    headers: Sequence[str]
    cells: Callable[[Lead], Sequence[Any]]


def named_columns(names: Sequence[str], *, own: Mapping[str, Cell] | None = None) -> Columns:
    """The columns `names`, each holding what CELLS says, or `own` for the names it has."""
    getters = [(own or {}).get(name) or CELLS[name] for name in names]
    return Columns(tuple(names), lambda lead: [get(lead) for get in getters])


def csv_lines(
    leads: QuerySet[Lead], *, columns: Sequence[Columns], related: Iterable[str] = RELATED
) -> Iterator[str]:
    """CSV lines (BOM first, so spreadsheets read UTF-8) of `columns` for each of `leads`,
    read in chunks so 100,000 leads never sit in memory. `related` are the rows joined to
    each lead (select_related); `graph_data`, which no column shows, is not read."""
    writer = csv.writer(Echo())
    header = [name for group in columns for name in group.headers]
    yield "\ufeff" + writer.writerow([csv_cell(name) for name in header])
    rows = leads.select_related(*related).defer("graph_data").iterator(chunk_size=CHUNK)
    for lead in rows:
        yield writer.writerow([csv_cell(value) for group in columns for value in group.cells(lead)])


def answers_text(pairs: Iterable[tuple[str, Iterable[str]]]) -> str:
    """Answers in one cell: `key: value, value; key: value`."""
    return "; ".join(f"{key}: {', '.join(values)}" for key, values in pairs)


def disclaimers_text(pairs: Iterable[tuple[str, bool]]) -> str:
    """Disclaimers in one cell: `key=checked; key=unchecked`."""
    return "; ".join(f"{key}={'checked' if checked else 'unchecked'}" for key, checked in pairs)


class Echo:
    """A file-like object whose write returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> str:
    """One cell (header or value) of an export, defused against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if _starts_a_formula(text) else text


def _starts_a_formula(text: str) -> bool:
    if not text:
        return False
    first = text[0]
    if first in _CONTROL_START:
        return True
    if not first.isascii():
        first = unicodedata.normalize("NFKC", first)[:1]
    if first in _FORMULA_START:
        return True
    return first in _SIGN_START and not _NUMBER_AFTER_SIGN.fullmatch(text, 1)


def answer_pairs(field_data: Any) -> list[tuple[str, list[str]]]:
    """(question key, values) for each answer, read defensively: stored as Meta sent it."""
    pairs = []
    for item in field_data if isinstance(field_data, list) else []:
        if isinstance(item, dict):
            values = item.get("values")
            values = values if isinstance(values, list) else [values]
            pairs.append((str(item.get("name", "")), [str(v) for v in values if v is not None]))
    return pairs


def disclaimer_pairs(responses: Any) -> list[tuple[str, bool]]:
    pairs = []
    for item in responses if isinstance(responses, list) else []:
        if isinstance(item, dict):
            checked = item.get("is_checked")
            is_checked = checked is True or str(checked).strip().lower() in ("1", "true")
            pairs.append((str(item.get("checkbox_key") or "?"), is_checked))
    return pairs


def lead_csv_lines(leads: QuerySet[Lead]) -> Iterator[str]:
    """The admin's export of `leads`: every answer in one `key: values` cell."""
    answers = Columns(
        ("answers", "disclaimers"),
        lambda lead: [
            answers_text(answer_pairs(lead.field_data)),
            disclaimers_text(disclaimer_pairs(lead.custom_disclaimer_responses)),
        ],
    )
    # defer(None): the changelist's queryset leaves out the JSON columns the answers are.
    yield from csv_lines(leads.defer(None), columns=[named_columns(EXPORT_COLUMNS), answers])
