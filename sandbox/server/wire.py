"""Meta's wire formats: its JSON encoding and time format, and the request, response and
recorded-request types the rest of the sandbox passes around (independent of
http.server, so handlers stay testable)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

JSON = Any  # a JSON-compatible value; kept loose on purpose


def parse_meta_time(value: Any) -> int:
    """Return unix seconds for an int, a numeric string, a datetime or an ISO string.

    Accepts Meta's own format (``2015-02-28T08:49:14+0000``) as well as ``Z`` and
    ``+00:00`` offsets; naive datetimes are taken as UTC.
    """
    if isinstance(value, bool):
        raise TypeError(f"not a time: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a time: {value!r}") from None
        return parse_meta_time(moment)
    raise ValueError(f"not a time: {value!r}")


def format_meta_time(timestamp: int) -> str:
    """Format unix seconds the way the Graph API does: ``2015-02-28T08:49:14+0000``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def fbtrace_id() -> str:
    # Meta's trace ids are short opaque strings; they only need to be unique-ish.
    return "A" + secrets.token_urlsafe(8)[:10]


def dump_json(payload: JSON) -> bytes:
    """Serialise like Meta: compact, ASCII only (non-ASCII as \\uXXXX), "/" as "\\/"."""
    # Replacing "/" after dumping is safe because a slash can only occur inside strings.
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode("ascii")


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str  # percent-decoded path, no query
    query: dict[str, str]  # query string parameters (last value wins)
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    # Query parameters merged with form/JSON body parameters (body wins), as Graph does.
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The server's base URL as the client addressed it (used for paging links)."""
        host = self.headers.get("host") or "127.0.0.1"
        return f"http://{host}"

    def token(self) -> str | None:
        """The access token from the Authorization header or the access_token param."""
        auth = self.headers.get("authorization", "").strip()
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value.strip():
            return value.strip()
        token = self.params.get("access_token")
        if isinstance(token, str) and token:
            return token
        return None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: JSON, *, status: int = 200) -> Response:
        return cls(status=status, body=dump_json(payload))


@dataclass
class RecordedRequest:
    """A request the sandbox received (control API calls excluded)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    status: int
    api_version: str | None = None  # e.g. "v24.0" for Graph calls, None otherwise
    received_at: float = 0.0

    def to_dict(self) -> dict[str, JSON]:
        return asdict(self)
