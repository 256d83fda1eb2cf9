"""JSON for the two hot paths (bulk read and webhook) and the JSON columns the layer
writes: orjson, with the standard library behind it for what orjson does not take.

A bulk-read page of 100 leads decodes about 200 KB of Graph JSON and encodes three JSON
columns per lead (docs/performance.md#b4). orjson gives the same data: its text differs
from `json.dumps` only in spacing and in writing non-ASCII characters as themselves, which
every reader of these columns (Django's JSONField, SQLite's JSON functions, PostgreSQL's
jsonb) treats alike.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON. Integers beyond 64 bits and the non-standard NaN/Infinity, which orjson
    refuses, are parsed as the standard library parses them. Anything that is not JSON
    raises ValueError, nesting too deep for either parser included."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _loads_slowly(data)


def _loads_slowly(data: bytes | str, **options: Any) -> Any:
    try:
        return json.loads(data, **options)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# Text that no database here can store: NUL, which PostgreSQL refuses in text and jsonb,
# and UTF-16 surrogates, which JSON can spell (`"\ud800"`) but UTF-8 cannot encode (SQLite
# and PostgreSQL both refuse them). A pair of surrogates decodes to one character, so any
# surrogate left in parsed text is a lone one.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def loads_storable(data: bytes) -> Any:
    """`loads` for JSON from outside that will be stored (Graph answers): text no database
    takes becomes U+FFFD, the replacement character, wherever it stands (keys included),
    rather than failing the write of a lead again at every retry.

    orjson refuses lone surrogates, raw control characters and numbers that are not finite,
    so what it parses can hold only an escaped NUL, found by a byte search; the rare answer
    it refuses is walked.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN, Infinity and numbers too large for a float, which only the standard library
        # reads, become null: jsonb and SQLite's JSON refuse them, as does orjson.
        return _make_storable(
            _loads_slowly(data, parse_constant=_null, parse_float=_finite_or_null)
        )
    return _make_storable(value) if b"\\u0000" in data else value


def _null(_: str) -> None:
    return None


def _finite_or_null(text: str) -> float | None:
    number = float(text)
    return number if math.isfinite(number) else None


def _make_storable(value: Any) -> Any:
    """Replace unstorable text in parsed JSON, in place (fresh lists and dicts), without
    recursion: a hostile answer may nest as deep as the parsers allow."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value)
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if any(_UNSTORABLE.search(key) for key in node if isinstance(key, str)):
                items = list(node.items())
                node.clear()
                node.update((_make_storable(key), item) for key, item in items)
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        for key, item in list(items):
            if isinstance(item, str):
                if _UNSTORABLE.search(item):
                    node[key] = _UNSTORABLE.sub(REPLACEMENT, item)
            elif isinstance(item, dict | list):
                pending.append(item)
    return value


class TooDeep(ValueError):
    """orjson's limit on nesting (255 levels) was reached while writing JSON."""


def dumps(value: Any) -> str:
    """Serialise plain JSON data (dicts, lists, strings, numbers, booleans, None) as text;
    what orjson refuses (integers beyond 64 bits, keys that are not strings or numbers)
    goes to the standard library, which may refuse it too. Nesting orjson cannot write
    raises TooDeep rather than reaching the standard library's recursion limit, or
    storing what the standard library then could not read back in a deeper call stack."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        if str(exc) == "Recursion limit reached":
            raise TooDeep(str(exc)) from None
        return json.dumps(value)
