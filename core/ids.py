"""The one rule for a usable Meta id (lead, page, form, ad, ad set, campaign).

Every path that takes an id from outside calls `meta_id`: the webhook, the lead fetch, the
bulk read, the form list, the CSV import, the management commands, the API filters and the
sandbox. Two paths that disagree lose leads: a lead announced by webhook under an id that
the bulk read skips is never completed by reconciliation.

A usable id is a positive decimal integer that fits a signed 64-bit integer (1 to
2**63 - 1), given as a JSON number or as ASCII digits, and is written as a string without
leading zeros. Why signed 64 bits: Graph ids are 64-bit integers well below 2**63 (leadgen
ids are 15-17 digits); the Conversions API wants `lead_id` as an integer, which Meta reads
as a signed 64-bit one, and so does PostgreSQL's bigint. orjson reads integers up to
2**64 - 1 exactly and bigger ones as floats, the standard library reads them exactly: the
bound is checked on the value, so whichever parser read the JSON, the answer is the same.

Pure Python, no Django: the sandbox (standard library only) uses it too.
"""

from __future__ import annotations

from typing import Any

MAX_META_ID = 2**63 - 1
# MAX_META_ID has 19 digits; a longer text (leading zeros) is refused before int() reads
# it, so that a hostile megabyte of digits costs nothing.
_MAX_DIGITS = 32


def meta_id(value: Any) -> str | None:
    """A usable Meta id as its canonical string, or None.

    Floats are refused: a 17-digit id that went through a float has lost its last digits.
    Leading zeros are dropped (`"007"` is `"7"`), so an id written either way is one lead.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if 0 < value <= MAX_META_ID else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > _MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    number = int(text)
    return str(number) if 0 < number <= MAX_META_ID else None


def meta_id_number(value: Any) -> int | None:
    """A usable Meta id as an integer (the Conversions API's `lead_id`), or None."""
    text = meta_id(value)
    return int(text) if text is not None else None
