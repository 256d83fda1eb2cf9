"""CSV export of leads, streamed: 100,000 leads never sit in memory, and the first bytes
leave before the last row is read. `csv_cell` and `Echo` are shared with the sales UI's
export (crm), which adds a column per question."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet

from leads.models import Lead

# A cell starting with these is run as a formula by spreadsheets (CSV injection); phone
# numbers such as "+34 612..." are data and are left alone.
_FORMULA = re.compile(r"^[=@\t\r]|^[+\-](?![\d\s().]+$)")
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
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if _FORMULA.match(text) else text


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
    yield "\ufeff" + writer.writerow(EXPORT_COLUMNS)
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
