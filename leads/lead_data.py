"""Mapping Meta's Lead node onto our columns. Shared by webhook fetch, bulk read and import.

Leadloop's lead columns are named after the Lead node's fields (`core.meta`) where they hold
the same thing; the lists below say which columns a lead read from Meta has."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from core.ids import meta_id
from core.meta import AD_FIELDS, AD_IDS
from leads.models import Lead

# Standard question keys (META.md) whose first answer is copied to a searchable column.
EMAIL_KEYS = ("email", "work_email")
PHONE_KEYS = ("phone_number", "phone", "work_phone_number")
FULL_NAME_KEYS = ("full_name",)
ZIP_KEYS = ("zip_code", "post_code", "postal_code", "zip", "zipcode")


def parse_meta_time(value: Any) -> dt.datetime | None:
    """Meta's `2015-02-28T08:49:14+0000`, ISO 8601 with any offset, or unix seconds."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return dt.datetime.fromtimestamp(int(value), tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = str(value).strip()
    if text.isdigit():
        return parse_meta_time(int(text))
    # fromisoformat reads Meta's form (Python 3.11) at a tenth of strptime's cost, which a
    # bulk read pays per lead; strptime still takes what it alone accepts.
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                return dt.datetime.strptime(text, fmt)
            except ValueError:
                pass
        return None
    # A time without an offset is taken as UTC rather than the server's zone.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parse_bool(value: Any) -> bool | None:
    """Meta's booleans: true/false, 1/0, "1"/"0", "true"/"FALSE" ...; None when unknown."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes"):
            return True
        if text in ("0", "false", "no"):
            return False
    return None


def answers(field_data: Any) -> dict[str, str]:
    """First value of each question, by name. Tolerates any shape without raising."""
    result: dict[str, str] = {}
    if not isinstance(field_data, list):
        return result
    for item in field_data:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        values = item.get("values")
        if isinstance(values, list) and values:
            first = values[0]
        elif isinstance(values, str | int | float):
            first = values
        else:
            continue
        result.setdefault(item["name"], str(first))
    return result


def _first(found: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        if found.get(key, "").strip():
            return found[key].strip()
    return ""


# Chinese, Japanese and Korean write the family name first, without a space (王伟). A
# family name in Han characters or Hangul marks such a name; the given name may also be in
# kana. A surname in katakana is a foreign one, which Japanese writes given name first.
_HAN_OR_HANGUL = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f\uac00-\ud7af"
_EAST_ASIAN_FAMILY_NAME = re.compile(f"[{_HAN_OR_HANGUL}]+")
_EAST_ASIAN_GIVEN_NAME = re.compile(f"[{_HAN_OR_HANGUL}\u3040-\u30ff]+")


def join_name(first: str, last: str) -> str:
    """A name from Meta's FIRST_NAME (given) and LAST_NAME (family) answers, in its
    language's order: 伟 and 王 make 王伟, Lucía and García Pérez make Lucía García Pérez."""
    if _EAST_ASIAN_FAMILY_NAME.fullmatch(last) and _EAST_ASIAN_GIVEN_NAME.fullmatch(first):
        return last + first
    return " ".join(part for part in (first, last) if part)


def contact_columns(field_data: Any) -> dict[str, str]:
    """email, phone and full_name extracted from field_data (field_data stays as sent)."""
    found = answers(field_data)
    full_name = _first(found, FULL_NAME_KEYS) or join_name(
        found.get("first_name", "").strip(), found.get("last_name", "").strip()
    )
    return {
        "email": _first(found, EMAIL_KEYS)[:254],
        "phone": _first(found, PHONE_KEYS)[:64],
        "full_name": full_name[:255],
    }


# Lead fields copied to a column of the same name: where the lead came from.
AD_COLUMNS = (*AD_FIELDS, "is_organic", "platform", "partner_name", "retailer_item_id")
# Lead fields kept as sent in a column of their own, so not again in `graph_data`.
OWN_COLUMNS = ("field_data", "custom_disclaimer_responses")
JSON_COLUMNS = ("graph_data", *OWN_COLUMNS)
# The first answers to the standard questions (`contact_columns`), so staff can search.
CONTACT_COLUMNS = ("email", "phone", "full_name")
# Every column `lead_columns` may write: all that a lead read from Meta changes.
LEAD_COLUMNS = ("created_time", *AD_COLUMNS, *OWN_COLUMNS, "graph_data", *CONTACT_COLUMNS)

# Meta's Lead node nests four levels at most (field_data: list, object, list of values).
# Only a broken or hostile source nests hundreds deep, and JSON writers and readers give
# up there (orjson at 255 levels, the standard library near Python's recursion limit, so
# a page that stored it could not be shown): deeper than this is cut when stored.
MAX_DEPTH = 64
TOO_DEEP = "(nested too deeply to store)"


def cut_deep(value: Any, limit: int = MAX_DEPTH) -> Any:
    """A copy of JSON data with every list or object deeper than `limit` levels replaced by
    TOO_DEEP; without recursion, so that the depth that is the problem cannot be one."""
    if not isinstance(value, dict | list):
        return value
    root: Any = {} if isinstance(value, dict) else []
    pending: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while pending:
        source, target, depth = pending.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in items:
            if isinstance(item, dict | list):
                if depth >= limit:
                    copy: Any = TOO_DEEP
                else:
                    copy = {} if isinstance(item, dict) else []
                    pending.append((item, copy, depth + 1))
            else:
                copy = item
            if isinstance(target, dict):
                target[key] = copy
            else:
                target.append(copy)
    return root


def within_depth(columns: dict[str, Any]) -> dict[str, Any]:
    """`lead_columns` output with its JSON columns cut at MAX_DEPTH (see `cut_deep`)."""
    return {
        name: cut_deep(value) if name in JSON_COLUMNS else value for name, value in columns.items()
    }


# Id columns copied from the Lead node, by the one id rule (core.ids): a value that is
# no id is left out of the column (it stays in graph_data), as the webhook leaves it out.
ID_COLUMNS = AD_IDS
# Text columns copied from the Lead node, with their lengths (the model's).
TEXT_COLUMNS: tuple[tuple[str, int], ...] = tuple(
    (name, Lead._meta.get_field(name).max_length)
    for name in AD_COLUMNS
    if name not in ID_COLUMNS and name != "is_organic"
)
_ABSENT = object()


def _text(value: Any, limit: int) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)[:limit]


def lead_columns(data: dict[str, Any]) -> dict[str, Any]:
    """Model field values from a Graph Lead node (`GET /{lead-id}` or a bulk-read row).

    `field_data` and `custom_disclaimer_responses` are kept exactly as sent in their own
    columns, and the rest of the node in `graph_data` (the two lists are most of a lead's
    bytes: stored once, not twice). Ids are strings. Keys absent from `data` are absent
    from the result, so a partial answer never blanks a column that has a value.
    """
    columns: dict[str, Any] = {
        "graph_data": {key: value for key, value in data.items() if key not in OWN_COLUMNS}
    }
    if "created_time" in data:
        columns["created_time"] = parse_meta_time(data["created_time"])
    # A bulk read maps hundreds of leads per page: text is taken as it is when it is text.
    for key in ID_COLUMNS:
        if key in data:
            columns[key] = meta_id(data[key]) or ""
    for key, limit in TEXT_COLUMNS:
        value = data.get(key, _ABSENT)
        if value is not _ABSENT:
            columns[key] = value[:limit] if type(value) is str else _text(value, limit)
    if "is_organic" in data:
        columns["is_organic"] = parse_bool(data["is_organic"])
    # The two lists are kept in whatever shape they come (pages show odd ones as best they
    # can), but a null is stored as the empty list: the columns are NOT NULL.
    if "field_data" in data:
        field_data = data["field_data"]
        columns["field_data"] = [] if field_data is None else field_data
        columns.update(contact_columns(field_data))
    if "custom_disclaimer_responses" in data:
        disclaimers = data["custom_disclaimer_responses"]
        columns["custom_disclaimer_responses"] = [] if disclaimers is None else disclaimers
    return columns
