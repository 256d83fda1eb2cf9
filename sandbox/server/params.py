"""Graph request parameters as Meta reads them, with its errors (#100) for bad ones:
``fields``, ``limit``, unix-time bounds, lists and ``filtering``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.server.errors import bad_param

DEFAULT_PAGE_LIMIT = 25  # Meta's default page size for edges
MAX_PAGE_LIMIT = 1000  # larger limits are clamped silently

FILTER_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "GREATER_THAN": lambda created, value: created > value,
    "GREATER_THAN_OR_EQUAL": lambda created, value: created >= value,
    "LESS_THAN": lambda created, value: created < value,
}


def split_fields(text: str) -> list[str]:
    """Split ``a,b{c,d},e.limit(3)`` at top-level commas; keep only the field names."""
    names, depth, current = [], 0, []
    for char in text:
        if char in "{(":
            depth += 1
        elif char in "})":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            names.append("".join(current))
            current = []
        else:
            current.append(char)
    names.append("".join(current))
    result = []
    for name in names:
        name = re.split(r"[{.(]", name.strip(), maxsplit=1)[0].strip()
        if name and name not in result:
            result.append(name)
    return result


def requested_fields(
    params: Mapping[str, Any],
    default: Iterable[str],
    known: frozenset[str] | None,
    node_type: str,
) -> list[str]:
    """The ``fields`` asked for (``default`` without any); a name outside ``known`` is
    Meta's "nonexisting field" error. ``known=None`` accepts every name."""
    raw = params.get("fields")
    if raw is None or raw == "":
        return list(default)
    if not isinstance(raw, str):
        raise bad_param("param fields must be a string")
    fields = split_fields(raw)
    if known is not None:
        for name in fields:
            if name not in known:
                raise bad_param(
                    f"Tried accessing nonexisting field ({name}) on node type ({node_type})"
                )
    return fields


def parse_limit(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise bad_param("param limit must be a positive integer") from None
    if limit < 1:
        raise bad_param("param limit must be a positive integer")
    return min(limit, MAX_PAGE_LIMIT)


def parse_int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_param(f"param {name} must be a unix timestamp") from None


def parse_list_param(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise bad_param("param must be a list") from None
        return parse_list_param(parsed)
    return [part.strip() for part in text.split(",") if part.strip()]


def json_array(value: Any, message: str) -> list:
    """A list given as such or as JSON text (form bodies carry JSON as a string)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise bad_param(message) from None
    if not isinstance(value, list):
        raise bad_param(message)
    return value


def parse_filtering(value: Any) -> list[Callable[[int], bool]]:
    """Checks on a lead's creation time, one per ``filtering`` entry (all must pass)."""
    if value is None or value == "":
        return []
    checks: list[Callable[[int], bool]] = []
    for item in json_array(value, "param filtering must be a JSON array"):
        if not isinstance(item, dict):
            raise bad_param("each filtering entry must be an object")
        if item.get("field") != "time_created":
            raise bad_param(f"Filtering field {item.get('field')!r} is invalid")
        operator = FILTER_OPERATORS.get(str(item.get("operator", "")))
        if operator is None:
            raise bad_param(f"Filtering operator {item.get('operator')!r} is invalid")
        try:
            bound = int(item.get("value"))
        except (TypeError, ValueError):
            raise bad_param("Filtering value must be a unix timestamp") from None
        checks.append(lambda created, op=operator, bound=bound: op(created, bound))
    return checks
