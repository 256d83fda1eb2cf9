"""Meta webhook payloads: signature check and parsing, free of database and HTTP concerns."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from core.db import fastjson
from core.ids import meta_id

SIGNATURE_PREFIX = b"sha256="


def signature_is_valid(body: bytes, header: str | None, secret: str) -> bool:
    """True when `header` is `sha256=` + the hex HMAC-SHA256 of the exact raw `body`.

    Meta signs the bytes it sends (unicode escaped as \\u00e4, "/" as "\\/"), so the body is
    never re-serialised. The comparison is constant-time. A header that is not ASCII cannot
    be a valid hex digest and is rejected without raising.
    """
    if not secret or not header:
        return False
    try:
        provided = header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = (
        SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    )
    return hmac.compare_digest(expected, provided)


def sign(body: bytes, secret: str) -> str:
    """The header value Meta would send for `body` (used by the sandbox and tests)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class MalformedPayload(ValueError):
    """The body is not a JSON object (bad JSON, bad UTF-8, absurd nesting)."""


@dataclass(frozen=True)
class LeadgenChange:
    leadgen_id: str
    page_id: str
    form_id: str
    ad_id: str
    created_time: int | None


def _unix(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def parse_payload(body: bytes) -> dict[str, Any]:
    try:
        # orjson for a UTF-8 body (every delivery), else the standard library, which detects
        # UTF-16/32 itself; both keep 17-digit ids exact (Python ints).
        payload = fastjson.loads(body)
    except ValueError as exc:
        # JSONDecodeError, UnicodeDecodeError, and nesting too deep (fastjson.loads).
        raise MalformedPayload(f"Body is not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(payload, dict):
        raise MalformedPayload("Body is JSON but not an object.")
    return payload


def leadgen_changes(payload: dict[str, Any]) -> tuple[list[LeadgenChange], list[str]]:
    """The leadgen changes of a page webhook, and a note for each change that was skipped.

    Changes of other fields (feed, messages, ...) and other objects are not ours: they are
    skipped without a note, and the delivery stays stored.
    """
    changes: list[LeadgenChange] = []
    problems: list[str] = []
    if payload.get("object") != "page":
        return changes, problems
    entries = payload.get("entry")
    if not isinstance(entries, list):
        return changes, ["`entry` is not a list."]
    for e_index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("changes"), list):
            problems.append(f"entry[{e_index}] has no `changes` list.")
            continue
        for c_index, change in enumerate(entry["changes"]):
            if not isinstance(change, dict) or change.get("field") != "leadgen":
                continue
            value = change.get("value")
            where = f"entry[{e_index}].changes[{c_index}]"
            if not isinstance(value, dict):
                problems.append(f"{where}: `value` is not an object.")
                continue
            leadgen_id = meta_id(value.get("leadgen_id"))
            page_id = meta_id(value.get("page_id")) or meta_id(entry.get("id"))
            if leadgen_id is None or page_id is None:
                problems.append(f"{where}: missing or invalid leadgen_id or page_id.")
                continue
            changes.append(
                LeadgenChange(
                    leadgen_id=leadgen_id,
                    page_id=page_id,
                    form_id=meta_id(value.get("form_id")) or "",
                    # Meta sends the ad as both ad_id and adgroup_id; organic leads have none.
                    ad_id=meta_id(value.get("ad_id")) or meta_id(value.get("adgroup_id")) or "",
                    created_time=_unix(value.get("created_time")),
                )
            )
    return changes, problems
