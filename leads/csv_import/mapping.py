"""Mapping a row of a lead export onto a lead: Meta's prefixes taken off, ids checked by
the one id rule, answers in Meta's `field_data` shape, and a reason for every refused row."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.ids import meta_id
from core.meta import AD_IDS, EXPORT_COLUMNS
from leads import lead_data
from leads.lead_data import PHONE_KEYS, ZIP_KEYS, lead_columns, parse_bool, parse_meta_time

# Standard columns that hold an id (Meta writes them `l:…`, `ag:…`, `as:…`, `c:…`, `f:…`).
ID_COLUMNS = ("id", *AD_IDS, "form_id")
# Lead fields a column of the same name takes as it is (lead_columns cuts it to length).
TEXT_COLUMNS = tuple(name for name, _ in lead_data.TEXT_COLUMNS)
# Columns of an export that are about the lead, not answers to the form's questions. Kept
# with the lead (graph_data["export_row"]) but never turned into field_data: `lead_status`
# is the stage in Meta's Leads Center, the rest are Leads Center extras seen in exports.
NOT_QUESTIONS = frozenset(
    {
        *EXPORT_COLUMNS,
        *TEXT_COLUMNS,
        "lead_status",
        "inbox_url",
        "is_qualified",
        "is_quality",
        "is_converted",
        "page_id",
        "page_name",
        "home_listing",
        "vehicle",
    }
)
# Meta writes a short prefix and a colon before the values a spreadsheet would mangle:
# ids (`l:`, `ag:` ...: digits that would become 1.2E+17), phones (`p:`: the `+`) and zip
# codes (`z:`: the leading zero of `z:03581`). Any such prefix is taken off a column that
# carries one, and only when what follows is that column's kind of value, so an answer
# such as `Re: call me`, `12:30` or `http://example.com` stays as it was written.
EXPORT_PREFIX = re.compile(r"([a-zA-Z]{1,2}):(.+)", re.DOTALL)
PHONE_TEXT = re.compile(r"\+?[0-9][0-9 ().\-]*")
ZIP_TEXT = re.compile(r"[0-9a-zA-Z][0-9a-zA-Z \-]{1,11}")
VALUE_KINDS: dict[str, Callable[[str], object]] = {
    "id": meta_id,
    "phone": PHONE_TEXT.fullmatch,
    "zip": ZIP_TEXT.fullmatch,
}
# Questions whose answers carry a prefix, by their standard key; an answer `p:+34 …` is
# a phone whatever its question (custom questions can ask for one).
QUESTION_KINDS = {**dict.fromkeys(PHONE_KEYS, "phone"), **dict.fromkeys(ZIP_KEYS, "zip")}


@dataclass(frozen=True)
class Rejection:
    row: int
    reason: str
    leadgen_id: str = ""


@dataclass
class ParsedRow:
    number: int
    leadgen_id: str
    form_id: str | None
    form_name: str
    columns: dict[str, Any]


def unprefixed(value: str, kind: str) -> str | None:
    """The value without Meta's export prefix when it has one and the rest is a value of
    that kind (`id`, `phone`, `zip`); otherwise None."""
    match = EXPORT_PREFIX.fullmatch(value.strip())
    if match is None:
        return None
    rest = match.group(2).strip()
    return rest if VALUE_KINDS[kind](rest) else None


def _id_cell(value: str) -> str:
    return unprefixed(value, "id") or value.strip()


def _answer(name: str, value: str) -> str:
    kind = QUESTION_KINDS.get(name.lower())
    if kind is not None:
        found = unprefixed(value, kind)
    else:
        # A custom question may ask for a phone: `p:` before a number is Meta's marker.
        found = unprefixed(value, "phone") if value.strip()[:2].lower() == "p:" else None
    return value if found is None else found


def parse_row(
    number: int, values: Sequence[str], header: Sequence[str], *, default_form_id: str | None
) -> ParsedRow | Rejection | None:
    """One data row as lead columns, a rejection with a reason, or None for a blank row."""
    if not any(value.strip() for value in values):
        return None
    overflow = len(values) > len(header) and any(v.strip() for v in values[len(header) :])
    cells = list(values) + [""] * (len(header) - len(values))
    standard: dict[str, str] = {}
    questions: list[tuple[str, str]] = []
    raw: dict[str, str] = {}
    for name, value in zip(header, cells, strict=False):
        raw[name] = value
        key = name.lower()
        if key in NOT_QUESTIONS:
            standard.setdefault(key, value)
        elif name:
            questions.append((name, value))

    leadgen_id = meta_id(_id_cell(standard.get("id", "")))
    if overflow:
        # Cells shifted by a stray delimiter: no column can be trusted.
        return Rejection(
            number,
            f"{len(values)} cells, but the header has {len(header)} columns",
            leadgen_id or "",
        )
    if leadgen_id is None:
        return Rejection(number, f"id {standard.get('id', '')!r} is not a lead id")
    node: dict[str, Any] = {"id": leadgen_id}
    for key in ID_COLUMNS:
        if key == "id" or key not in standard:
            continue
        text = _id_cell(standard[key])
        if text and meta_id(text) is None:
            return Rejection(number, f"{key} {standard[key]!r} is not an id", leadgen_id)
        node[key] = text
    created = parse_meta_time(standard.get("created_time", "").strip())
    if created is None:
        return Rejection(
            number,
            f"created_time {standard.get('created_time', '')!r} is not a date and time",
            leadgen_id,
        )
    node["created_time"] = created.isoformat()
    if "is_organic" in standard:
        organic_text = standard["is_organic"].strip()
        organic = parse_bool(organic_text) if organic_text else None
        if organic_text and organic is None:
            return Rejection(
                number, f"is_organic {organic_text!r} is not 1/0 or true/false", leadgen_id
            )
        node["is_organic"] = organic
    for key in TEXT_COLUMNS:
        if key in standard:
            node[key] = standard[key].strip()
    # Meta's {name, values} shape, in the file's column order; unanswered questions are
    # left out, as Meta leaves them out of field_data.
    node["field_data"] = [
        {"name": name, "values": [_answer(name, value)]}
        for name, value in questions
        if value.strip()
    ]

    form_id = node.pop("form_id", "") or None
    if form_id and default_form_id and form_id != default_form_id:
        return Rejection(
            number, f"form_id {form_id} is not the form given ({default_form_id})", leadgen_id
        )
    form_id = form_id or default_form_id
    if form_id is None:
        return Rejection(number, "no form_id (give the form with --form)", leadgen_id)
    columns = lead_columns(node)
    columns["graph_data"] = {"export_row": raw}
    return ParsedRow(
        number=number,
        leadgen_id=leadgen_id,
        form_id=form_id,
        form_name=standard.get("form_name", "").strip(),
        columns=columns,
    )
