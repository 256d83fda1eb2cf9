"""CSV export of leads, streamed: 100,000 leads never sit in memory, and the first bytes
leave before the last row is read. `csv_cell` and `Echo` are shared with the sales UI's
export (crm), which adds a column per question."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from leads.models import Lead

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
EXPORT_COLUMNS = [
    "id",
    "leadgen_id",
    "created_time",
    "full_name",
    "email",
    "phone",
    "stage",
    "page",
    "form",
    "form_name",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "platform",
    "is_organic",
    "source",
    "fetch_status",
    "answers",
    "disclaimers",
]


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
    """CSV lines (BOM first, so spreadsheets read UTF-8) for `leads`, read in chunks so
    100,000 leads never sit in memory. The sales UI's export (crm) has a column per
    question; this one keeps every answer in one `key: values` cell."""
    writer = csv.writer(Echo())
    yield "\ufeff" + writer.writerow([csv_cell(name) for name in EXPORT_COLUMNS])
    rows = (
        leads.defer(None)
        .select_related("page", "form", "stage")
        .defer("graph_data")
        .iterator(chunk_size=2000)
    )
    for lead in rows:
        answers = "; ".join(f"{k}: {', '.join(v)}" for k, v in answer_pairs(lead.field_data))
        disclaimers = "; ".join(
            f"{key}={'checked' if checked else 'unchecked'}"
            for key, checked in disclaimer_pairs(lead.custom_disclaimer_responses)
        )
        values = [
            lead.pk,
            lead.leadgen_id,
            lead.created_time,
            lead.full_name,
            lead.email,
            lead.phone,
            lead.stage.slug if lead.stage else "",
            lead.page.page_id if lead.page else "",
            lead.form.form_id if lead.form else "",
            lead.form.name if lead.form else "",
            lead.ad_id,
            lead.ad_name,
            lead.adset_id,
            lead.adset_name,
            lead.campaign_id,
            lead.campaign_name,
            lead.platform,
            lead.is_organic,
            lead.source,
            lead.fetch_status,
            answers,
            disclaimers,
        ]
        yield writer.writerow([csv_cell(value) for value in values])
