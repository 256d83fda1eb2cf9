"""JSON for the two hot paths (bulk read and webhook): orjson, with the standard library
behind it for what orjson does not take.

A bulk-read page of 100 leads decodes about 200 KB of Graph JSON and encodes three JSON
columns per lead; with the standard library that was a tenth of the page's time
(bench/backfill, profiled). orjson gives the same data: its text differs from `json.dumps`
only in spacing and in writing non-ASCII characters as themselves, which every reader of
these columns (Django's JSONField, SQLite's JSON functions, PostgreSQL's jsonb) treats
alike.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON. Integers beyond 64 bits and the non-standard NaN/Infinity, which orjson
    refuses, are parsed as the standard library parses them."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(value: Any) -> str:
    """Serialise plain JSON data (dicts, lists, strings, numbers, booleans, None) as text;
    what orjson refuses (integers beyond 64 bits, keys that are not strings or numbers)
    goes to the standard library, which may refuse it too."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)
