"""Meta sandbox: a local HTTP stand-in for the Graph API endpoints Leadloop calls.

Why it exists: Leadloop's Meta client must cope with paging quirks, token errors, rate
limits, slow answers and Conversions API validation. Meta offers no test double for lead
retrieval, so this server reproduces the documented behaviour (see ``/work/shared/META.md``
in the project) closely enough to drive the client end to end, in-process (tests start it
in a daemon thread on port 0) or as its own process (``python -m sandbox``).

Design notes:

* Standard library only (and `leads.ids`, the id rule Leadloop applies, itself pure
  Python) and no Django imports, so nothing here depends on settings.
* One re-entrant lock guards all state. Request handling (apart from fault delays) runs
  under it, which serialises requests; that is fine for a sandbox and rules out races.
* Endpoints are a routing table (:attr:`MetaSandbox.GRAPH_ROUTES`) of method names, so a
  subclass can add endpoints without touching the dispatcher.
* Everything answers Meta-shaped errors; a bug or bad input gives a 4xx/5xx JSON body,
  never a dropped connection.
* The control API under ``/__sandbox__/`` mirrors the in-process helpers so another
  process can seed data and inject faults. Control calls are neither recorded nor faulted.

Control API (JSON in and out; a list body means "several"):

=========================================  ==================================================
``POST /__sandbox__/pages``                ``{"page_id", "name"?, "token"?}``
``POST /__sandbox__/forms``                ``{"form_id", "page_id", "name"?, "questions"?,
                                           "status"?, "locale"?, "created_time"?}``
``POST /__sandbox__/ads``                  ``{"ad_id", "page_id", "name"?}``
``POST /__sandbox__/leads``                a lead in Graph shape (see ``add_lead``)
``POST /__sandbox__/tokens``               ``{"token"}`` global; ``{"token", "page_id"}``
                                           page token (null token clears);
                                           ``{"token", "revoke": true, "subcode"?}``
``POST /__sandbox__/faults``               ``add_fault`` keyword arguments
``DELETE /__sandbox__/faults``             drop faults and empty-page rules
``POST /__sandbox__/empty_pages``          ``{"path_regex", "page_index", "times"?}``
``POST /__sandbox__/export_options``       ``ExportOptions`` fields
``POST /__sandbox__/settings``             ``{"lead_retention_days": int | null}``
``POST /__sandbox__/reset``                forget everything
``GET /__sandbox__/requests``              recorded requests (``?path=regex&method=GET``)
``DELETE /__sandbox__/requests``           forget recorded requests
``GET /__sandbox__/events``                accepted Conversions API events
``GET /__sandbox__/state``                 a summary of pages, forms, ads and counts
=========================================  ==================================================
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import csv
import email.parser
import email.policy
import io
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from leads.ids import meta_id

logger = logging.getLogger(__name__)

JSON = Any  # a JSON-compatible value; kept loose on purpose

DEFAULT_API_VERSION = "v24.0"
VERSION_RE = re.compile(r"^v\d+\.\d+$")
CONTROL_PREFIX = "/__sandbox__"
EXPORT_PATH = "/ads/lead_gen/export_csv"

DEFAULT_PAGE_LIMIT = 25  # Meta's default page size for edges
MAX_PAGE_LIMIT = 1000  # larger limits are clamped silently
MAX_EVENTS_PER_REQUEST = 1000
MAX_EVENT_AGE_SECONDS = 7 * 24 * 3600
MAX_EVENT_FUTURE_SKEW_SECONDS = 60
MAX_BODY_BYTES = 50 * 1024 * 1024

# Codes Meta flags as transient (temporary failures and throttling); used when a fault
# does not say explicitly.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80001, 80004, 80005})

# Default messages for faults given only a code, worded like Meta's.
DEFAULT_ERROR_MESSAGES: dict[int, str] = {
    1: "An unknown error occurred",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "(#4) Application request limit reached",
    10: "(#10) Application does not have permission for this action",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    100: "(#100) Invalid parameter",
    102: "Session key invalid or no longer valid",
    190: "Invalid OAuth access token - Cannot parse access token",
    200: "(#200) Permissions error",
    341: "(#341) Application limit reached",
    368: "The action attempted has been deemed abusive or is otherwise disallowed",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "(#80001) There have been too many calls to this Page account. Wait a bit and try "
    "again.",
    80004: "(#80004) There have been too many calls to this ad-account. Wait a bit and try again.",
    80005: "(#80005) There have been too many leadgen api calls to this Page. Wait a bit and "
    "try again.",
}

REVOKED_TOKEN_MESSAGES: dict[int, str] = {
    458: "Error validating access token: The user has not authorized application.",
    460: "Error validating access token: The session has been invalidated because the user "
    "changed their password or Facebook has changed the session for security reasons.",
    463: "Error validating access token: Session has expired.",
}

# Fields Meta's Lead node knows. Asking for anything else is an error (#100), which is how
# a typo such as `form_name` (not a Lead field) shows up against the real API too.
LEAD_FIELDS = frozenset(
    {
        "id",
        "created_time",
        "ad_id",
        "ad_name",
        "adset_id",
        "adset_name",
        "campaign_id",
        "campaign_name",
        "form_id",
        "field_data",
        "custom_disclaimer_responses",
        "is_organic",
        "platform",
        "partner_name",
        "retailer_item_id",
        "home_listing",
        "vehicle",
        "post",
        "post_submission_check_result",
    }
)
LEAD_DEFAULT_FIELDS = ("id", "created_time")

FORM_FIELDS = frozenset(
    {
        "id",
        "name",
        "status",
        "locale",
        "created_time",
        "questions",
        "page",
        "page_id",
        "leads_count",
        "expired_leads_count",
        "privacy_policy_url",
        "follow_up_action_url",
        "context_card",
        "thank_you_page",
        "legal_content",
        "tracking_parameters",
        "is_optimized_for_quality",
        "allow_organic_lead",
        "block_display_for_non_targeted_viewer",
        "question_page_custom_headline",
    }
)
FORM_DEFAULT_FIELDS = ("id", "locale", "name", "status")
FORM_STATUSES = frozenset({"ACTIVE", "ARCHIVED", "DELETED", "DRAFT"})

VALID_ACTION_SOURCES = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)

FILTER_OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "GREATER_THAN": lambda created, value: created > value,
    "GREATER_THAN_OR_EQUAL": lambda created, value: created >= value,
    "LESS_THAN": lambda created, value: created < value,
}

# Standard question keys and the question type Meta reports for them.
STANDARD_QUESTION_TYPES: dict[str, str] = {
    "email": "EMAIL",
    "full_name": "FULL_NAME",
    "first_name": "FIRST_NAME",
    "last_name": "LAST_NAME",
    "phone_number": "PHONE",
    "city": "CITY",
    "state": "STATE",
    "zip_code": "ZIP",
    "post_code": "POST_CODE",
    "country": "COUNTRY",
    "date_of_birth": "DOB",
    "gender": "GENDER",
    "street_address": "STREET_ADDRESS",
    "company_name": "COMPANY_NAME",
    "job_title": "JOB_TITLE",
}
DEFAULT_QUESTION_KEYS = ("full_name", "email", "phone_number")

_REDACT_RE = re.compile(r"(access_token|appsecret_proof)=[^&\s]*", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------


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


def _fbtrace_id() -> str:
    # Meta's trace ids are short opaque strings; they only need to be unique-ish.
    return "A" + secrets.token_urlsafe(8)[:10]


# --------------------------------------------------------------------------------------
# Errors and wire types
# --------------------------------------------------------------------------------------


class GraphError(Exception):
    """A Meta-shaped error; raising it anywhere in a handler answers the request with it."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        subcode: int | None = None,
        status: int = 400,
        error_type: str = "OAuthException",
        is_transient: bool | None = None,
        user_title: str | None = None,
        user_msg: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.status = status
        self.error_type = error_type
        self.is_transient = code in TRANSIENT_CODES if is_transient is None else is_transient
        self.user_title = user_title
        self.user_msg = user_msg

    def to_body(self) -> dict[str, JSON]:
        error: dict[str, JSON] = {
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.is_transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
        if self.user_msg is not None:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = _fbtrace_id()
        return {"error": error}

    def to_response(self) -> Response:
        response = Response.json(self.to_body(), status=self.status)
        if self.code in (102, 190):
            # Meta adds this header to token errors; some HTTP clients key off it.
            response.headers["WWW-Authenticate"] = (
                f'OAuth "Facebook Platform" "invalid_token" "{self.message}"'
            )
        return response


def _missing_object(object_id: str, method: str = "GET") -> GraphError:
    """Meta's answer for an unknown object *and* for one the token may not see."""
    return GraphError(
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation. "
        "Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        code=100,
        subcode=33,
        error_type="GraphMethodException",
    )


def _bad_param(message: str, *, subcode: int | None = None) -> GraphError:
    return GraphError(f"(#100) {message}", code=100, subcode=subcode)


def _dump_json(payload: JSON) -> bytes:
    # Like Meta: ASCII only (non-ASCII as \uXXXX) and "/" escaped as "\/". Replacing "/"
    # after dumping is safe because a slash can only occur inside JSON strings.
    return json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode("ascii")


@dataclass
class Request:
    """One parsed HTTP request, independent of http.server so handlers stay testable."""

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
        return cls(status=status, body=_dump_json(payload))


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


@dataclass
class Fault:
    """An injected failure (or slowdown, or extra headers) for matching requests.

    * With ``code``: a Meta-shaped error body with that code.
    * With ``body``: that raw body (e.g. an HTML 502 page from a proxy).
    * With neither and ``status >= 400``: a generic Meta error (code 1 or 2).
    * With neither and ``status < 400``: the request is answered normally, after ``delay``,
      with ``headers`` added. Use this to add usage headers or slow a call down.
    """

    path: str = ".*"
    method: str = "*"
    status: int = 500
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    times: int = 1  # -1: forever
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    is_transient: bool | None = None
    error_type: str = "OAuthException"

    def __post_init__(self) -> None:
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"bad fault path regex {self.path!r}: {exc}") from None
        if not isinstance(self.times, int) or (self.times < 1 and self.times != -1):
            raise ValueError("times must be a positive integer or -1 (forever)")
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if self.delay < 0:
            raise ValueError("delay must not be negative")
        self.method = self.method.upper()
        self.headers = {str(k): str(v) for k, v in (self.headers or {}).items()}

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and bool(self._pattern.search(path))

    @property
    def passes_through(self) -> bool:
        return self.code is None and self.body is None and self.status < 400

    def response(self) -> Response:
        if self.body is not None:
            content_type = "text/plain; charset=UTF-8"
            stripped = self.body.lstrip()
            if stripped.startswith(("{", "[")):
                content_type = "application/json; charset=UTF-8"
            elif stripped.startswith("<"):
                content_type = "text/html; charset=UTF-8"
            return Response(self.status, self.body.encode("utf-8"), content_type)
        code = self.code if self.code is not None else (2 if self.status == 503 else 1)
        error = GraphError(
            self.message or DEFAULT_ERROR_MESSAGES.get(code, f"(#{code}) Sandbox fault"),
            code=code,
            subcode=self.subcode,
            status=self.status,
            error_type=self.error_type,
            is_transient=self.is_transient,
        )
        return error.to_response()


@dataclass
class EmptyPageRule:
    """Answer page number ``page_index`` of a matching listing with no rows but a ``next``.

    Meta does this; clients must follow ``next`` until it is absent instead of stopping
    at the first short or empty page. Page 0 is the request without a cursor.
    """

    path: str = ".*"
    page_index: int = 0
    times: int = 1  # -1: forever

    def __post_init__(self) -> None:
        try:
            self._pattern = re.compile(self.path)
        except re.error as exc:
            raise ValueError(f"bad path regex {self.path!r}: {exc}") from None
        if not isinstance(self.page_index, int) or self.page_index < 0:
            raise ValueError("page_index must be a non-negative integer")
        if not isinstance(self.times, int) or (self.times < 1 and self.times != -1):
            raise ValueError("times must be a positive integer or -1 (forever)")

    def matches(self, path: str, page_index: int) -> bool:
        return page_index == self.page_index and bool(self._pattern.search(path))


@dataclass
class ExportOptions:
    """How ``/ads/lead_gen/export_csv/`` renders files.

    The default is the documented shape (UTF-16 LE with BOM, tabs, is_organic 1/0, UTC);
    real exports also come as UTF-8 with commas and true/false, so parsers can be tested
    against those variants too.
    """

    encoding: str = "utf-16"  # "utf-16" (LE with BOM) or "utf-8" (optionally with BOM)
    delimiter: str = "\t"
    utf8_bom: bool = False
    organic_true: str = "1"
    organic_false: str = "0"
    utc_offset_minutes: int = 0  # the "downloader's" offset used for created_time

    def __post_init__(self) -> None:
        if self.encoding not in ("utf-16", "utf-8"):
            raise ValueError("encoding must be 'utf-16' or 'utf-8'")
        if len(self.delimiter) != 1:
            raise ValueError("delimiter must be one character")
        if not -16 * 60 < self.utc_offset_minutes < 16 * 60:
            raise ValueError("utc_offset_minutes out of range")


# --------------------------------------------------------------------------------------
# State records
# --------------------------------------------------------------------------------------


@dataclass
class _Page:
    id: str
    name: str
    tokens: set[str] = field(default_factory=set)
    subscribed_fields: list[str] = field(default_factory=list)


@dataclass
class _Form:
    id: str
    page_id: str
    name: str
    questions: list[dict[str, JSON]]
    status: str
    locale: str
    created_ts: int
    # A form added without created_time moves its creation back to its oldest lead, so
    # fixtures with past leads are not clipped by the export's from_date clamp.
    created_explicit: bool = True


@dataclass
class _Ad:
    id: str
    page_id: str
    name: str = ""


@dataclass
class _Lead:
    id: str
    page_id: str
    form_id: str
    created_ts: int
    data: dict[str, JSON]  # Graph shape, created_time already formatted


def _sort_key(created_ts: int, object_id: str) -> tuple[int, int, str]:
    # Newest first, then by id. Comparing (length, text) orders numeric ids numerically
    # without converting 17-digit ids to numbers.
    return (created_ts, len(object_id), object_id)


@dataclass
class _Cursor:
    """Keyset cursor: the sort key of the boundary row plus the page number.

    Keyset (not offset) so that leads arriving while a client pages do not shift rows
    into the next page and show up twice, which matches Meta's behaviour.
    """

    key: tuple[int, str] | None  # (created_ts, id) of the boundary row; None = start
    page: int

    def encode(self) -> str:
        raw = json.dumps({"k": list(self.key) if self.key else None, "p": self.page})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = json.loads(raw)
            key = data["k"]
            page = int(data["p"])
            if key is not None:
                key = (int(key[0]), str(key[1]))
            return cls(key, max(page, 0))
        except (binascii.Error, ValueError, KeyError, TypeError, IndexError):
            raise _bad_param("Invalid cursor") from None

    def sort_key(self) -> tuple[int, int, str] | None:
        return _sort_key(*self.key) if self.key else None


@dataclass
class _GraphContext:
    request: Request
    api_version: str
    token: str | None


@dataclass(frozen=True)
class GraphRoute:
    """One Graph endpoint: methods, a regex over the path after the version, a handler.

    ``handler`` names a method of :class:`MetaSandbox`, called with the context and the
    regex's named groups; it returns JSON-compatible data or a :class:`Response`.
    """

    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: str


def _route(methods: str, pattern: str, handler: str) -> GraphRoute:
    return GraphRoute(frozenset(methods.split("|")), re.compile(pattern), handler)


_ID = r"(?P<object_id>[^/]+)"


# --------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------


class MetaSandbox:
    """In-memory Graph API stand-in with an HTTP front end and a control API."""

    # Extend in a subclass to add endpoints; the first route whose pattern and method
    # match wins, so put specific routes before the catch-all node route.
    GRAPH_ROUTES: ClassVar[tuple[GraphRoute, ...]] = (
        _route("GET", r"me", "_graph_me"),
        _route("GET", r"me/accounts", "_graph_me_accounts"),
        _route("GET", _ID + r"/leadgen_forms", "_graph_leadgen_forms"),
        _route("GET", _ID + r"/leads", "_graph_leads"),
        _route("GET|POST|DELETE", _ID + r"/subscribed_apps", "_graph_subscribed_apps"),
        _route("POST", _ID + r"/events", "_graph_events"),
        _route("GET", _ID, "_graph_node"),
    )
    # Control API: (HTTP method, path under /__sandbox__/) -> method name.
    CONTROL_ROUTES: ClassVar[dict[tuple[str, str], str]] = {
        ("POST", "pages"): "_ctl_pages",
        ("POST", "forms"): "_ctl_forms",
        ("POST", "ads"): "_ctl_ads",
        ("POST", "leads"): "_ctl_leads",
        ("POST", "tokens"): "_ctl_tokens",
        ("POST", "faults"): "_ctl_faults",
        ("DELETE", "faults"): "_ctl_clear_faults",
        ("POST", "empty_pages"): "_ctl_empty_pages",
        ("POST", "export_options"): "_ctl_export_options",
        ("POST", "settings"): "_ctl_settings",
        ("POST", "reset"): "_ctl_reset",
        ("GET", "requests"): "_ctl_requests",
        ("DELETE", "requests"): "_ctl_clear_requests",
        ("GET", "events"): "_ctl_events",
        ("GET", "state"): "_ctl_state",
    }
    LEAD_FIELDS: ClassVar[frozenset[str]] = LEAD_FIELDS
    FORM_FIELDS: ClassVar[frozenset[str]] = FORM_FIELDS
    APP_ID: ClassVar[str] = "100000000000001"
    APP_NAME: ClassVar[str] = "Leadloop (sandbox)"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api_version: str = DEFAULT_API_VERSION
    ) -> None:
        if not VERSION_RE.match(api_version):
            raise ValueError(f"api_version must look like 'v24.0', not {api_version!r}")
        self.host = host
        self.port = port
        self.api_version = api_version
        self._lock = threading.RLock()
        self._server: _SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Public, appended to under the lock; cleared in place so references stay valid.
        self.requests: list[RecordedRequest] = []
        self.events: list[dict[str, JSON]] = []
        # Behaviour knobs (also settable over the control API).
        self.export_options = ExportOptions()
        # Meta stops returning leads 90 days after submission. Off by default so that
        # fixtures with fixed old dates keep working; set to 90 to test expiry handling.
        self.lead_retention_days: int | None = None
        self._init_state()

    def _init_state(self) -> None:
        self._pages: dict[str, _Page] = {}
        self._forms: dict[str, _Form] = {}
        self._ads: dict[str, _Ad] = {}
        self._leads: dict[str, _Lead] = {}
        self._global_tokens: set[str] = set()
        self._revoked: dict[str, int] = {}  # token -> error subcode
        self._faults: list[Fault] = []
        self._empty_pages: list[EmptyPageRule] = []
        self._graph_calls = 0
        self._next_lead_id = 900_000_000_000_001

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self so `MetaSandbox().start()` works."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        server = _SandboxHTTPServer((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"meta-sandbox:{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("Meta sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL without version, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None and self.port == 0:
            raise RuntimeError("sandbox not started; the port is chosen on start()")
        # A wildcard bind is not an address a client can use; point at loopback instead.
        # bandit B104: a comparison, not a bind
        wildcard = self.host in ("", "0.0.0.0", "::")  # noqa: S104  # nosec B104
        host = "127.0.0.1" if wildcard else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def graph_url(self) -> str:
        """Base URL with the configured version, e.g. ``http://127.0.0.1:54321/v24.0``."""
        return f"{self.url}/{self.api_version}"

    # ---- state helpers ---------------------------------------------------------------

    def add_page(self, page_id: str, *, name: str = "", token: str | None = None) -> dict:
        """Create or update a page. ``token`` becomes its (only) page token if given."""
        page_id = _require_id(page_id, "page_id")
        with self._lock:
            page = self._pages.get(page_id)
            if page is None:
                page = self._pages[page_id] = _Page(page_id, name or f"Sandbox Page {page_id}")
            elif name:
                page.name = name
            if token is not None:
                self._set_page_token(page, token)
            return self._page_summary(page)

    def add_form(
        self,
        form_id: str,
        *,
        page_id: str,
        name: str = "",
        questions: list[dict] | None = None,
        status: str = "ACTIVE",
        locale: str = "en_US",
        created_time: int | str | None = None,
    ) -> dict:
        """Create or replace a lead form on an existing page.

        ``questions=None`` gives full_name, email and phone_number. Each question may be
        just ``{"key": ...}``; label, type and id are filled in.
        """
        form_id = _require_id(form_id, "form_id")
        page_id = _require_id(page_id, "page_id")
        status = str(status).upper()
        if status not in FORM_STATUSES:
            raise ValueError(f"status must be one of {sorted(FORM_STATUSES)}")
        if questions is None:
            questions = [{"key": key} for key in DEFAULT_QUESTION_KEYS]
        if not isinstance(questions, list):
            raise TypeError("questions must be a list")
        created = int(time.time()) if created_time is None else parse_meta_time(created_time)
        with self._lock:
            if page_id not in self._pages:
                raise ValueError(f"unknown page {page_id!r}; add_page() first")
            form = _Form(
                id=form_id,
                page_id=page_id,
                name=name or f"Sandbox form {form_id}",
                questions=[_normalize_question(q, form_id, i) for i, q in enumerate(questions)],
                status=status,
                locale=str(locale),
                created_ts=created,
                created_explicit=created_time is not None,
            )
            self._forms[form_id] = form
            return self._form_fields(
                form, ("id", "name", "status", "locale", "created_time", "questions", "page_id")
            )

    def add_ad(self, ad_id: str, *, page_id: str, name: str = "") -> dict:
        """Register an ad (so `/{ad_id}/leads` works before any lead uses it)."""
        ad_id = _require_id(ad_id, "ad_id")
        page_id = _require_id(page_id, "page_id")
        with self._lock:
            if page_id not in self._pages:
                raise ValueError(f"unknown page {page_id!r}; add_page() first")
            ad = self._ads[ad_id] = _Ad(ad_id, page_id, name)
            return {"id": ad.id, "page_id": ad.page_id, "name": ad.name}

    def add_lead(self, lead: Mapping[str, Any]) -> dict:
        """Store a lead given in Graph shape; its page comes from its form.

        Conveniences: ``id`` is generated when missing; ``created_time`` may be unix
        seconds, Meta's string or ISO 8601 (default now); ``field_data`` may be a plain
        ``{name: value}`` dict. Re-adding an id replaces the lead. Returns the stored
        lead in Graph shape (``created_time`` formatted like Meta).
        """
        if not isinstance(lead, Mapping):
            raise TypeError("a lead must be a JSON object")
        data: dict[str, JSON] = copy.deepcopy(dict(lead))
        form_id = _require_id(data.get("form_id"), "form_id")
        for key in ("id", "ad_id", "adset_id", "campaign_id"):
            if data.get(key) not in (None, ""):
                data[key] = _require_id(data[key], key)
        raw_time = data.get("created_time")
        created = int(time.time()) if raw_time in (None, "") else parse_meta_time(raw_time)
        data["created_time"] = format_meta_time(created)
        data["form_id"] = form_id
        data["field_data"] = _normalize_field_data(data.get("field_data", []))
        data.setdefault("is_organic", False)
        with self._lock:
            form = self._forms.get(form_id)
            if form is None:
                raise ValueError(f"unknown form {form_id!r}; add_form() first")
            if not data.get("id"):
                data["id"] = str(self._next_lead_id)
                self._next_lead_id += 1
            lead_id = str(data["id"])
            if not form.created_explicit and created < form.created_ts:
                form.created_ts = created
            ad_id = data.get("ad_id")
            if isinstance(ad_id, str) and ad_id and ad_id not in self._ads:
                self._ads[ad_id] = _Ad(ad_id, form.page_id, str(data.get("ad_name") or ""))
            self._leads[lead_id] = _Lead(lead_id, form.page_id, form_id, created, data)
            return copy.deepcopy(data)

    def set_token(self, page_id: str, token: str | None) -> None:
        """Make ``token`` the page's only page token (None: the page has none)."""
        page_id = _require_id(page_id, "page_id")
        with self._lock:
            page = self._pages.get(page_id)
            if page is None:
                raise ValueError(f"unknown page {page_id!r}; add_page() first")
            if token is None:
                page.tokens.clear()
            else:
                self._set_page_token(page, token)

    def add_token(self, token: str) -> None:
        """A token valid for every object, like a system user token."""
        token = _require_token(token)
        with self._lock:
            self._global_tokens.add(token)
            self._revoked.pop(token, None)

    def revoke_token(self, token: str, *, subcode: int = 460) -> None:
        """Further use of ``token`` fails with code 190 and ``subcode`` (460 by default;
        463 simulates expiry, 458 a removed app)."""
        token = _require_token(token)
        with self._lock:
            self._revoked[token] = int(subcode)

    def add_fault(
        self,
        *,
        path: str = ".*",
        method: str = "*",
        status: int = 500,
        code: int | None = None,
        subcode: int | None = None,
        message: str = "",
        times: int = 1,
        delay: float = 0.0,
        headers: dict | None = None,
        body: str | None = None,
        is_transient: bool | None = None,
        error_type: str = "OAuthException",
    ) -> None:
        """Queue a fault for requests whose path matches ``path`` (re.search); see Fault.

        The first matching fault with uses left applies, so faults queue up in order.
        """
        fault = Fault(
            path=path,
            method=method,
            status=status,
            code=code,
            subcode=subcode,
            message=message,
            times=times,
            delay=float(delay),
            headers=dict(headers or {}),
            body=body,
            is_transient=is_transient,
            error_type=error_type,
        )
        with self._lock:
            self._faults.append(fault)

    def add_empty_page_at(
        self, path_regex: str = ".*", page_index: int = 0, *, times: int = 1
    ) -> None:
        """Make page ``page_index`` (0 = first request) of a matching listing empty.

        The empty page still carries cursors and a ``next`` link pointing at the rows it
        skipped, as Meta's sometimes does. Works for `/leads` and `/leadgen_forms`.
        """
        rule = EmptyPageRule(path=path_regex, page_index=page_index, times=times)
        with self._lock:
            self._empty_pages.append(rule)

    def clear_faults(self) -> None:
        """Drop all queued faults and empty-page rules."""
        with self._lock:
            self._faults.clear()
            self._empty_pages.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def reset(self) -> None:
        """Forget everything: data, tokens, faults, recorded requests and events."""
        with self._lock:
            self._init_state()
            self.requests.clear()
            self.events.clear()
            self.export_options = ExportOptions()
            self.lead_retention_days = None

    def request_count(self, path_regex: str = ".*", method: str = "*") -> int:
        pattern = re.compile(path_regex)
        method = method.upper()
        with self._lock:
            return sum(
                1 for r in self.requests if method in ("*", r.method) and pattern.search(r.path)
            )

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """page id -> subscribed fields, for pages that installed the app."""
        with self._lock:
            return {
                p.id: list(p.subscribed_fields) for p in self._pages.values() if p.subscribed_fields
            }

    def state(self) -> dict[str, JSON]:
        """A JSON summary of the data (tokens left out)."""
        with self._lock:
            return {
                "api_version": self.api_version,
                "pages": [
                    {"id": p.id, "name": p.name, "subscribed_fields": list(p.subscribed_fields)}
                    for p in self._pages.values()
                ],
                "forms": [
                    {"id": f.id, "page_id": f.page_id, "name": f.name, "status": f.status}
                    for f in self._forms.values()
                ],
                "ads": [{"id": a.id, "page_id": a.page_id} for a in self._ads.values()],
                "lead_count": len(self._leads),
                "event_count": len(self.events),
                "request_count": len(self.requests),
                "fault_count": len(self._faults),
            }

    # ---- internals: state ------------------------------------------------------------

    def _set_page_token(self, page: _Page, token: str) -> None:
        token = _require_token(token)
        page.tokens = {token}
        self._revoked.pop(token, None)

    def _page_summary(self, page: _Page) -> dict:
        summary: dict[str, JSON] = {"id": page.id, "name": page.name}
        if page.tokens:
            summary["access_token"] = min(page.tokens)
        return summary

    def _visible_leads(self, predicate: Callable[[_Lead], bool]) -> list[_Lead]:
        cutoff = None
        if self.lead_retention_days is not None:
            cutoff = time.time() - self.lead_retention_days * 86400
        return [
            lead
            for lead in self._leads.values()
            if predicate(lead) and (cutoff is None or lead.created_ts >= cutoff)
        ]

    # ---- internals: request dispatch -------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Answer one request. Never raises: every failure becomes an error response."""
        if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
            return self._dispatch_control(request)

        fault = self._take_fault(request)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)  # outside the lock: other requests keep flowing
        api_version = _version_of(request.path)
        if fault is not None and not fault.passes_through:
            response = fault.response()
        else:
            response = self._handle_safely(request)
        if request.path.rstrip("/") != EXPORT_PATH:
            response.headers.update(self._usage_headers(api_version))
        if fault is not None:
            response.headers.update(fault.headers)  # tests may override usage headers
        self._record(request, response.status, api_version)
        return response

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(request.method, request.path):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _record(self, request: Request, status: int, api_version: str | None) -> None:
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=request.body.decode("utf-8", "replace"),
            status=status,
            api_version=api_version,
            received_at=time.time(),
        )
        with self._lock:
            self.requests.append(record)

    def _usage_headers(self, api_version: str | None) -> dict[str, str]:
        with self._lock:
            self._graph_calls += 1
            calls = self._graph_calls
        # Small, slowly growing percentages: realistic enough for clients that log or
        # throttle on them; faults can send alarming values.
        usage = {
            "call_count": min(100, 1 + calls // 50),
            "total_cputime": min(100, calls // 100),
            "total_time": min(100, calls // 80),
        }
        headers = {
            "X-App-Usage": json.dumps(usage, separators=(",", ":")),
            "X-FB-Trace-ID": _fbtrace_id(),
            "X-FB-Rev": "1000000000",
        }
        if api_version:
            headers["facebook-api-version"] = api_version
        return headers

    def _handle_safely(self, request: Request) -> Response:
        try:
            with self._lock:
                return self._handle(request)
        except GraphError as exc:
            return exc.to_response()
        except Exception:  # a sandbox bug must still answer something
            logger.exception("Meta sandbox failed on %s %s", request.method, request.path)
            return GraphError(
                DEFAULT_ERROR_MESSAGES[1], code=1, status=500, is_transient=True
            ).to_response()

    def _handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == EXPORT_PATH:
            return self._export_csv(request)
        segments = [s for s in request.path.split("/") if s]
        if segments and VERSION_RE.match(segments[0]):
            api_version, rest = segments[0], segments[1:]
        else:
            # Graph also takes unversioned calls (they use the app's default version).
            api_version, rest = self.api_version, segments
        if not rest:
            raise _missing_object("", request.method)
        tail = "/".join(rest)
        ctx = _GraphContext(request, api_version, request.token())
        for route in self.GRAPH_ROUTES:
            match = route.pattern.fullmatch(tail)
            if match and request.method in route.methods:
                result = getattr(self, route.handler)(ctx, **match.groupdict())
                return result if isinstance(result, Response) else Response.json(result)
        raise _missing_object(rest[0], request.method)

    # ---- internals: auth -------------------------------------------------------------

    def _check_token(self, ctx: _GraphContext) -> str:
        token = ctx.token
        if not token:
            raise GraphError("An access token is required to request this resource.", code=190)
        if token in self._revoked:
            subcode = self._revoked[token]
            raise GraphError(
                REVOKED_TOKEN_MESSAGES.get(subcode, "Error validating access token."),
                code=190,
                subcode=subcode,
            )
        if token in self._global_tokens or any(token in p.tokens for p in self._pages.values()):
            return token
        raise GraphError(DEFAULT_ERROR_MESSAGES[190], code=190, subcode=460)

    def _authorize(self, ctx: _GraphContext, page_id: str, object_id: str) -> str:
        """Check the token may see objects of ``page_id``; unknown-object error if not."""
        token = self._check_token(ctx)
        page = self._pages.get(page_id)
        if token in self._global_tokens or (page is not None and token in page.tokens):
            return token
        raise _missing_object(object_id, ctx.request.method)

    # ---- Graph endpoints -------------------------------------------------------------

    def _graph_me(self, ctx: _GraphContext) -> JSON:
        token = self._check_token(ctx)
        for page in self._pages.values():
            if token in page.tokens:
                return {"id": page.id, "name": page.name}
        return {"id": "100000000000002", "name": "Sandbox System User"}

    def _graph_me_accounts(self, ctx: _GraphContext) -> JSON:
        """Pages the token manages, with their page tokens (the connect flow's source)."""
        token = self._check_token(ctx)
        pages = [
            p for p in self._pages.values() if token in self._global_tokens or token in p.tokens
        ]
        rows = [dict(self._page_summary(p), tasks=["MANAGE", "ADVERTISE"]) for p in pages]
        items = [(_sort_key(0, row["id"]), row) for row in rows]
        return self._paginate(ctx, items, page_key=lambda row: (0, row["id"]), token=token)

    def _graph_node(self, ctx: _GraphContext, object_id: str) -> JSON:
        lead = self._leads.get(object_id)
        if lead is not None:
            self._authorize(ctx, lead.page_id, object_id)
            if self._visible_leads(lambda candidate: candidate.id == object_id):
                fields = _requested_fields(ctx, LEAD_DEFAULT_FIELDS, self.LEAD_FIELDS, "Lead")
                return self._lead_fields(lead, fields)
            raise _missing_object(object_id)
        form = self._forms.get(object_id)
        if form is not None:
            self._authorize(ctx, form.page_id, object_id)
            fields = _requested_fields(ctx, FORM_DEFAULT_FIELDS, self.FORM_FIELDS, "LeadgenForm")
            return self._form_fields(form, fields)
        page = self._pages.get(object_id)
        if page is not None:
            self._authorize(ctx, page.id, object_id)
            # Pages have hundreds of fields; unknown ones are left out, not rejected.
            fields = _requested_fields(ctx, ("id", "name"), None, "Page")
            row: dict[str, JSON] = {"id": page.id}
            if "name" in fields:
                row["name"] = page.name
            if "access_token" in fields and page.tokens:
                row["access_token"] = min(page.tokens)
            return row
        ad = self._ads.get(object_id)
        if ad is not None:
            self._authorize(ctx, ad.page_id, object_id)
            fields = _requested_fields(ctx, ("id",), None, "Ad")
            row = {"id": ad.id}
            if "name" in fields and ad.name:
                row["name"] = ad.name
            return row
        self._check_token(ctx)  # a bad token outranks a missing object, as on Meta
        raise _missing_object(object_id)

    def _graph_leadgen_forms(self, ctx: _GraphContext, object_id: str) -> JSON:
        page = self._pages.get(object_id)
        if page is None:
            self._check_token(ctx)
            raise _missing_object(object_id)
        token = self._authorize(ctx, page.id, object_id)
        fields = _requested_fields(ctx, FORM_DEFAULT_FIELDS, self.FORM_FIELDS, "LeadgenForm")
        forms = [f for f in self._forms.values() if f.page_id == page.id]
        items = [(_sort_key(f.created_ts, f.id), f) for f in forms]
        return self._paginate(
            ctx,
            items,
            page_key=lambda f: (f.created_ts, f.id),
            render=lambda f: self._form_fields(f, fields),
            token=token,
        )

    def _graph_leads(self, ctx: _GraphContext, object_id: str) -> JSON:
        if object_id in self._forms:
            form = self._forms[object_id]
            token = self._authorize(ctx, form.page_id, object_id)
            leads = self._visible_leads(lambda lead: lead.form_id == object_id)
        elif object_id in self._ads:
            ad = self._ads[object_id]
            token = self._authorize(ctx, ad.page_id, object_id)
            leads = self._visible_leads(lambda lead: lead.data.get("ad_id") == object_id)
        else:
            self._check_token(ctx)
            raise _missing_object(object_id)
        fields = _requested_fields(ctx, LEAD_DEFAULT_FIELDS, self.LEAD_FIELDS, "Lead")
        for check in _parse_filtering(ctx.request.params.get("filtering")):
            leads = [lead for lead in leads if check(lead.created_ts)]
        items = [(_sort_key(lead.created_ts, lead.id), lead) for lead in leads]
        return self._paginate(
            ctx,
            items,
            page_key=lambda lead: (lead.created_ts, lead.id),
            render=lambda lead: self._lead_fields(lead, fields),
            token=token,
        )

    def _graph_subscribed_apps(self, ctx: _GraphContext, object_id: str) -> JSON:
        page = self._pages.get(object_id)
        if page is None:
            self._check_token(ctx)
            raise _missing_object(object_id, ctx.request.method)
        self._authorize(ctx, page.id, object_id)
        method = ctx.request.method
        if method == "GET":
            if not page.subscribed_fields:
                return {"data": []}
            app = {
                "id": self.APP_ID,
                "name": self.APP_NAME,
                "subscribed_fields": list(page.subscribed_fields),
            }
            return {"data": [app]}
        if method == "DELETE":
            page.subscribed_fields = []
            return {"success": True}
        wanted = _parse_list_param(ctx.request.params.get("subscribed_fields"))
        if not wanted:
            raise _bad_param("The parameter subscribed_fields is required")
        for name in wanted:
            if name not in page.subscribed_fields:
                page.subscribed_fields.append(name)
        return {"success": True}

    def _graph_events(self, ctx: _GraphContext, object_id: str) -> JSON:
        self._check_token(ctx)
        params = ctx.request.params
        events = _parse_events(params.get("data"))
        now = time.time()
        for index, event in enumerate(events):
            _validate_event(index, event, now)
        extras = {
            key: params[key]
            for key in ("test_event_code", "partner_agent", "upload_tag", "namespace_id")
            if isinstance(params.get(key), str) and params[key]
        }
        for event in events:
            record = copy.deepcopy(event)
            record.update(extras)
            record["dataset_id"] = object_id
            record["received_at"] = now
            self.events.append(record)
        return {"events_received": len(events), "messages": [], "fbtrace_id": _fbtrace_id()}

    # ---- rendering -------------------------------------------------------------------

    def _lead_fields(self, lead: _Lead, fields: Iterable[str]) -> dict[str, JSON]:
        row: dict[str, JSON] = {}
        for name in fields:
            if name in lead.data:
                row[name] = copy.deepcopy(lead.data[name])
        row["id"] = lead.id
        return row

    def _form_fields(self, form: _Form, fields: Iterable[str]) -> dict[str, JSON]:
        page = self._pages.get(form.page_id)
        values: dict[str, JSON] = {
            "id": form.id,
            "name": form.name,
            "status": form.status,
            "locale": form.locale,
            "created_time": format_meta_time(form.created_ts),
            "questions": copy.deepcopy(form.questions),
            "page_id": form.page_id,
            "page": {"id": form.page_id, "name": page.name if page else ""},
            "leads_count": sum(1 for lead in self._leads.values() if lead.form_id == form.id),
        }
        row = {name: values[name] for name in fields if name in values}
        row["id"] = form.id
        return row

    def _paginate(
        self,
        ctx: _GraphContext,
        items: list[tuple[tuple[int, int, str], Any]],
        *,
        page_key: Callable[[Any], tuple[int, str]],
        render: Callable[[Any], JSON] = lambda item: item,
        token: str,
    ) -> JSON:
        """Cursor paging over ``items`` (sort key, item), newest first, like Graph edges."""
        params = ctx.request.params
        limit = _parse_limit(params.get("limit"))
        items = sorted(items, key=lambda pair: pair[0], reverse=True)
        after = params.get("after")
        before = params.get("before")
        if isinstance(after, str) and after:
            cursor = _Cursor.decode(after)
            bound = cursor.sort_key()
            start = 0 if bound is None else sum(1 for key, _ in items if key >= bound)
            window = items[start : start + limit]
            page_index = cursor.page
        elif isinstance(before, str) and before:
            cursor = _Cursor.decode(before)
            bound = cursor.sort_key()
            end = 0 if bound is None else sum(1 for key, _ in items if key > bound)
            start = max(0, end - limit)
            window = items[start:end]
            page_index = max(0, cursor.page - 1)
        else:
            cursor = _Cursor(None, 0)
            start, page_index = 0, 0
            window = items[:limit]

        rule = self._take_empty_page(ctx.request.path, page_index)
        if rule:
            # Same position, next page number: the following request gets the real rows.
            position = _Cursor(
                page_key(items[start - 1][1]) if start else None, page_index + 1
            ).encode()
            return {
                "data": [],
                "paging": {
                    "cursors": {"before": position, "after": position},
                    "next": self._page_link(ctx, token, "after", position),
                },
            }

        if not window:
            return {"data": []}
        first = _Cursor(page_key(window[0][1]), page_index).encode()
        last = _Cursor(page_key(window[-1][1]), page_index + 1).encode()
        paging: dict[str, JSON] = {"cursors": {"before": first, "after": last}}
        if start > 0:
            paging["previous"] = self._page_link(ctx, token, "before", first)
        if start + len(window) < len(items):
            paging["next"] = self._page_link(ctx, token, "after", last)
        return {"data": [render(item) for _, item in window], "paging": paging}

    def _take_empty_page(self, path: str, page_index: int) -> EmptyPageRule | None:
        for rule in self._empty_pages:
            if rule.matches(path, page_index):
                if rule.times > 0:
                    rule.times -= 1
                    if rule.times == 0:
                        self._empty_pages.remove(rule)
                return rule
        return None

    def _page_link(self, ctx: _GraphContext, token: str, direction: str, cursor: str) -> str:
        # Like Meta: absolute, repeats the original query (fields, limit, filtering...)
        # and carries the access token in the query string even if it came in a header.
        request = ctx.request
        pairs = [("access_token", token)]
        pairs += [
            (key, value)
            for key, value in request.query.items()
            if key not in ("access_token", "after", "before")
        ]
        pairs.append((direction, cursor))
        return f"{request.base_url}{request.path}?{urlencode(pairs)}"

    # ---- lead export -----------------------------------------------------------------

    def _export_csv(self, request: Request) -> Response:
        form_id = request.params.get("id")
        if not isinstance(form_id, str) or not form_id:
            raise _bad_param("The parameter id is required")
        export_type = request.params.get("type", "form")
        if export_type != "form":
            raise _bad_param("Only type=form is supported")
        ctx = _GraphContext(request, self.api_version, request.token())
        form = self._forms.get(form_id)
        if form is None:
            self._check_token(ctx)
            raise _missing_object(form_id)
        self._authorize(ctx, form.page_id, form_id)
        now = int(time.time())
        # Clamp like Meta: before the form existed means its creation; after now means now.
        from_date = max(
            _parse_int_param(request.params, "from_date", form.created_ts), form.created_ts
        )
        to_date = min(_parse_int_param(request.params, "to_date", now), now)
        leads = self._visible_leads(
            lambda lead: lead.form_id == form.id and from_date <= lead.created_ts <= to_date
        )
        leads.sort(key=lambda lead: _sort_key(lead.created_ts, lead.id), reverse=True)
        body = self._render_export(form, leads)
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", form.name) or form.id
        content_type = (
            "text/csv; charset=UTF-16LE"
            if self.export_options.encoding == "utf-16"
            else "text/csv; charset=UTF-8"
        )
        return Response(
            200,
            body,
            content_type,
            {"Content-Disposition": f'attachment; filename="{filename}_leads.csv"'},
        )

    def _render_export(self, form: _Form, leads: list[_Lead]) -> bytes:
        options = self.export_options
        tz = timezone(timedelta(minutes=options.utc_offset_minutes))
        phone_keys = {
            str(q.get("key")) for q in form.questions if str(q.get("type", "")).upper() == "PHONE"
        } | {"phone_number", "phone"}
        columns = [str(q.get("key")) for q in form.questions if q.get("key")]
        for lead in leads:  # answers for fields the form no longer lists still export
            for entry in lead.data.get("field_data") or []:
                if entry["name"] not in columns:
                    columns.append(entry["name"])
        fixed = [
            "id",
            "created_time",
            "ad_id",
            "ad_name",
            "adset_id",
            "adset_name",
            "campaign_id",
            "campaign_name",
            "form_id",
            "form_name",
            "is_organic",
            "platform",
        ]
        out = io.StringIO()
        writer = csv.writer(out, delimiter=options.delimiter, lineterminator="\n")
        writer.writerow([*fixed, *columns, "lead_status"])

        def prefixed(prefix: str, value: JSON) -> str:
            return f"{prefix}{value}" if value not in (None, "") else ""

        for lead in leads:
            data = lead.data
            answers = {
                entry["name"]: ", ".join(entry["values"]) for entry in data.get("field_data") or []
            }
            row = [
                f"l:{lead.id}",
                datetime.fromtimestamp(lead.created_ts, tz).isoformat(),
                prefixed("ag:", data.get("ad_id")),
                data.get("ad_name") or "",
                prefixed("as:", data.get("adset_id")),
                data.get("adset_name") or "",
                prefixed("c:", data.get("campaign_id")),
                data.get("campaign_name") or "",
                f"f:{form.id}",
                form.name,
                options.organic_true if data.get("is_organic") else options.organic_false,
                data.get("platform") or "",
            ]
            for column in columns:
                value = answers.get(column, "")
                row.append(prefixed("p:", value) if column in phone_keys else value)
            row.append(str(data.get("lead_status") or ""))
            writer.writerow(row)
        text = out.getvalue()
        if options.encoding == "utf-16":
            return b"\xff\xfe" + text.encode("utf-16-le")
        return (b"\xef\xbb\xbf" if options.utf8_bom else b"") + text.encode("utf-8")

    # ---- control API -----------------------------------------------------------------

    def _dispatch_control(self, request: Request) -> Response:
        action = request.path[len(CONTROL_PREFIX) :].strip("/")
        handler_name = self.CONTROL_ROUTES.get((request.method, action))
        if handler_name is None:
            return Response.json(
                {
                    "error": {
                        "message": f"no control route {request.method} /{action}",
                        "type": "SandboxError",
                        "code": 404,
                    }
                },
                status=404,
            )
        try:
            payload = _control_payload(request)
            return Response.json(getattr(self, handler_name)(payload, request))
        except (ValueError, TypeError, KeyError, re.error) as exc:
            return Response.json(
                {
                    "error": {
                        "message": f"bad control request: {exc}",
                        "type": "SandboxError",
                        "code": 100,
                    }
                },
                status=400,
            )
        except Exception:  # keep the control API answering
            logger.exception("Meta sandbox control call failed: %s", action)
            return Response.json(
                {"error": {"message": "sandbox error", "type": "SandboxError", "code": 1}},
                status=500,
            )

    def _ctl_pages(self, payload: JSON, request: Request) -> JSON:
        def one(item: dict) -> dict:
            item = dict(item)
            page_id = _pop_id(item, "page_id")
            return self.add_page(page_id, **_only(item, {"name", "token"}))

        return [one(i) for i in _as_list(payload)] if isinstance(payload, list) else one(payload)

    def _ctl_forms(self, payload: JSON, request: Request) -> JSON:
        def one(item: dict) -> dict:
            item = dict(item)
            form_id = _pop_id(item, "form_id")
            return self.add_form(
                form_id,
                **_only(item, {"page_id", "name", "questions", "status", "locale", "created_time"}),
            )

        return [one(i) for i in _as_list(payload)] if isinstance(payload, list) else one(payload)

    def _ctl_ads(self, payload: JSON, request: Request) -> JSON:
        def one(item: dict) -> dict:
            item = dict(item)
            ad_id = _pop_id(item, "ad_id")
            return self.add_ad(ad_id, **_only(item, {"page_id", "name"}))

        return [one(i) for i in _as_list(payload)] if isinstance(payload, list) else one(payload)

    def _ctl_leads(self, payload: JSON, request: Request) -> JSON:
        if isinstance(payload, list):
            return [self.add_lead(item) for item in payload]
        return self.add_lead(payload)

    def _ctl_tokens(self, payload: JSON, request: Request) -> JSON:
        for item in _as_list(payload):
            token = item.get("token")
            if "page_id" in item:
                self.set_token(str(item["page_id"]), token)
            elif item.get("revoke"):
                self.revoke_token(token, subcode=int(item.get("subcode", 460)))
            else:
                self.add_token(token)
        return {"success": True}

    def _ctl_faults(self, payload: JSON, request: Request) -> JSON:
        allowed = {
            "path",
            "method",
            "status",
            "code",
            "subcode",
            "message",
            "times",
            "delay",
            "headers",
            "body",
            "is_transient",
            "error_type",
        }
        for item in _as_list(payload):
            self.add_fault(**_only(item, allowed))
        return {"success": True}

    def _ctl_clear_faults(self, payload: JSON, request: Request) -> JSON:
        self.clear_faults()
        return {"success": True}

    def _ctl_empty_pages(self, payload: JSON, request: Request) -> JSON:
        for item in _as_list(payload):
            item = dict(item)
            self.add_empty_page_at(
                str(item.pop("path_regex", item.pop("path", ".*"))),
                int(item.pop("page_index", 0)),
                times=int(item.pop("times", 1)),
            )
        return {"success": True}

    def _ctl_export_options(self, payload: JSON, request: Request) -> JSON:
        if not isinstance(payload, dict):
            raise TypeError("expected a JSON object")
        with self._lock:
            self.export_options = ExportOptions(**payload)
            return asdict(self.export_options)

    def _ctl_settings(self, payload: JSON, request: Request) -> JSON:
        if not isinstance(payload, dict):
            raise TypeError("expected a JSON object")
        with self._lock:
            if "lead_retention_days" in payload:
                days = payload["lead_retention_days"]
                self.lead_retention_days = None if days is None else int(days)
            return {"lead_retention_days": self.lead_retention_days}

    def _ctl_reset(self, payload: JSON, request: Request) -> JSON:
        self.reset()
        return {"success": True}

    def _ctl_requests(self, payload: JSON, request: Request) -> JSON:
        pattern = re.compile(request.query.get("path", ".*"))
        method = request.query.get("method", "*").upper()
        with self._lock:
            return [
                r.to_dict()
                for r in self.requests
                if method in ("*", r.method) and pattern.search(r.path)
            ]

    def _ctl_clear_requests(self, payload: JSON, request: Request) -> JSON:
        self.clear_requests()
        return {"success": True}

    def _ctl_events(self, payload: JSON, request: Request) -> JSON:
        with self._lock:
            return copy.deepcopy(self.events)

    def _ctl_state(self, payload: JSON, request: Request) -> JSON:
        return self.state()


# --------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------


def _require_id(value: Any, name: str) -> str:
    """A Meta id by Leadloop's own rule (`leads.ids`): the sandbox mints and accepts only
    ids that Leadloop would take, so a seeded lead is never one that Leadloop skips."""
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError(f"{name} is required")
    canonical = meta_id(value if isinstance(value, int | str) else str(value))
    if canonical is None:
        raise ValueError(f"{name} must be a Meta id (a positive integer below 2**63)")
    return canonical


def _require_token(token: Any) -> str:
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    return token


def _pop_id(item: Any, name: str) -> str:
    if not isinstance(item, dict):
        raise TypeError("expected a JSON object")
    return _require_id(item.pop(name, None) or item.pop("id", None), name)


def _as_list(payload: JSON) -> list[dict]:
    items = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("expected a JSON object or a list of objects")
    return items


def _only(item: dict, allowed: set[str]) -> dict:
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    return item


def _control_payload(request: Request) -> JSON:
    if not request.body.strip():
        return {}
    try:
        return json.loads(request.body)
    except ValueError:
        raise ValueError("the body must be JSON") from None


def _version_of(path: str) -> str | None:
    first = path.strip("/").split("/", 1)[0]
    return first if VERSION_RE.match(first) else None


def _normalize_question(question: Any, form_id: str, index: int) -> dict[str, JSON]:
    if not isinstance(question, Mapping) or not question.get("key"):
        raise ValueError("each question needs a 'key'")
    q = copy.deepcopy(dict(question))
    key = str(q["key"])
    q["key"] = key
    q.setdefault("label", key.replace("_", " ").capitalize())
    q.setdefault("type", STANDARD_QUESTION_TYPES.get(key, "CUSTOM"))
    q.setdefault("id", f"{form_id}{index:03d}")
    return q


def _normalize_field_data(value: Any) -> list[dict[str, JSON]]:
    if isinstance(value, Mapping):
        value = [{"name": k, "values": v} for k, v in value.items()]
    if not isinstance(value, list):
        raise TypeError("field_data must be a list of {name, values} or a dict")
    entries = []
    for entry in value:
        if not isinstance(entry, Mapping) or "name" not in entry:
            raise ValueError("each field_data entry needs a 'name'")
        values = entry.get("values", [])
        if not isinstance(values, list):
            values = [values]
        entries.append({"name": str(entry["name"]), "values": [str(v) for v in values]})
    return entries


def _split_fields(text: str) -> list[str]:
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


def _requested_fields(
    ctx: _GraphContext, default: Iterable[str], known: frozenset[str] | None, node_type: str
) -> list[str]:
    raw = ctx.request.params.get("fields")
    if raw is None or raw == "":
        return list(default)
    if not isinstance(raw, str):
        raise _bad_param("param fields must be a string")
    fields = _split_fields(raw)
    if known is not None:
        for name in fields:
            if name not in known:
                raise _bad_param(
                    f"Tried accessing nonexisting field ({name}) on node type ({node_type})"
                )
    return fields


def _parse_limit(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_LIMIT
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise _bad_param("param limit must be a positive integer") from None
    if limit < 1:
        raise _bad_param("param limit must be a positive integer")
    return min(limit, MAX_PAGE_LIMIT)


def _parse_int_param(params: Mapping[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad_param(f"param {name} must be a unix timestamp") from None


def _parse_list_param(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if str(v)]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise _bad_param("param must be a list") from None
        return _parse_list_param(parsed)
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_filtering(value: Any) -> list[Callable[[int], bool]]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad_param("param filtering must be a JSON array") from None
    if not isinstance(value, list):
        raise _bad_param("param filtering must be a JSON array")
    checks: list[Callable[[int], bool]] = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad_param("each filtering entry must be an object")
        if item.get("field") != "time_created":
            raise _bad_param(f"Filtering field {item.get('field')!r} is invalid")
        operator = FILTER_OPERATORS.get(str(item.get("operator", "")))
        if operator is None:
            raise _bad_param(f"Filtering operator {item.get('operator')!r} is invalid")
        try:
            bound = int(item.get("value"))
        except (TypeError, ValueError):
            raise _bad_param("Filtering value must be a unix timestamp") from None
        checks.append(lambda created, op=operator, bound=bound: op(created, bound))
    return checks


def _parse_events(value: Any) -> list[dict[str, JSON]]:
    if value is None or value == "":
        raise _bad_param("The parameter data is required")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad_param("param data must be an array.") from None
    if not isinstance(value, list):
        raise _bad_param("param data must be an array.")
    if not value:
        raise _bad_param("param data must be an array with at least 1 element.")
    if len(value) > MAX_EVENTS_PER_REQUEST:
        raise _bad_param(
            f"param data must be an array with at most {MAX_EVENTS_PER_REQUEST} elements."
        )
    return value


def _event_error(
    index: int,
    key: str,
    problem: str,
    *,
    subcode: int | None = None,
    title: str = "Invalid parameter",
    detail: str | None = None,
) -> GraphError:
    return GraphError(
        f"(#100) param data[{index}][{key}] {problem}",
        code=100,
        subcode=subcode,
        user_title=title,
        user_msg=f"{detail or problem} (event data[{index}])",
    )


def _validate_event(index: int, event: Any, now: float) -> None:
    """Reject like Meta: one invalid event fails the whole request."""
    if not isinstance(event, dict):
        raise GraphError(
            f"(#100) param data[{index}] must be an object",
            code=100,
            user_title="Invalid parameter",
            user_msg=f"Each event must be a JSON object (event data[{index}])",
        )
    name = event.get("event_name")
    if not isinstance(name, str) or not name.strip():
        raise _event_error(index, "event_name", "is required and must be a string")
    raw_time = event.get("event_time")
    if isinstance(raw_time, bool) or not (
        isinstance(raw_time, int) or (isinstance(raw_time, str) and raw_time.isdigit())
    ):
        raise _event_error(index, "event_time", "must be a unix timestamp in seconds")
    event_time = int(raw_time)
    if event_time < now - MAX_EVENT_AGE_SECONDS:
        raise _event_error(
            index,
            "event_time",
            "is too far in the past",
            subcode=2804003,
            title="Event Timestamp Too Old",
            detail="The timestamp for this event is too far in the past. Events need to be "
            "sent from your server within 7 days of when they occurred.",
        )
    if event_time > now + MAX_EVENT_FUTURE_SKEW_SECONDS:
        raise _event_error(
            index,
            "event_time",
            "is in the future",
            title="Event Timestamp In Future",
            detail="The timestamp for this event is in the future.",
        )
    source = event.get("action_source")
    if source not in VALID_ACTION_SOURCES:
        raise _event_error(
            index, "action_source", f"must be one of {{{', '.join(sorted(VALID_ACTION_SOURCES))}}}"
        )
    user_data = event.get("user_data")
    if not isinstance(user_data, dict) or not any(
        value not in (None, "", []) for value in user_data.values()
    ):
        raise _event_error(
            index,
            "user_data",
            "must contain at least one customer information parameter",
            title="Missing User Data",
        )
    custom_data = event.get("custom_data")
    if custom_data is not None and not isinstance(custom_data, dict):
        raise _event_error(index, "custom_data", "must be an object")


# --------------------------------------------------------------------------------------
# HTTP front end
# --------------------------------------------------------------------------------------


class _SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks stop() or interpreter exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: MetaSandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, _SandboxHandler)


class _SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    server_version = "MetaSandbox/1.0"
    timeout = 30  # idle keep-alive connections close instead of lingering forever
    server: _SandboxHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:  # http.server dispatches on do_<METHOD>
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            request = self._parse_request()
        except GraphError as exc:
            self._write(exc.to_response())
            return
        except Exception:  # malformed input must not kill the connection
            logger.exception("Meta sandbox could not parse a request")
            self._write(GraphError("Could not parse the request", code=100).to_response())
            return
        self._write(self.server.sandbox.dispatch(request))

    def _parse_request(self) -> Request:
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        body = self._read_body(headers)
        path = unquote(split.path) or "/"
        params: dict[str, Any] = dict(query)
        if not path.startswith(CONTROL_PREFIX):  # the control API reads its JSON body itself
            params.update(_parse_body_params(headers.get("content-type", ""), body))
        return Request(
            method=self.command.upper(),
            path=path,
            query=query,
            headers=headers,
            body=body,
            params=params,
        )

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks, total = [], 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                except ValueError:
                    self.close_connection = True
                    raise _bad_param("Malformed chunked body") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    raise _bad_param("Request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            self.close_connection = True
            raise _bad_param("Invalid Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise _bad_param("Request body too large")
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. it timed out on a delayed fault); nothing to do.
            self.close_connection = True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, unsupported method) as Meta JSON."""
        self.log_error("code %d, message %s", code, message)
        error = GraphError(message or "Bad request", code=1 if code >= 500 else 100, status=code)
        body = _dump_json(error.to_body())
        self.send_response(code, message)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if getattr(self, "command", None) != "HEAD" and code not in (204, 304):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

    # Quiet logging through `logging`, with tokens redacted from request lines.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path if hasattr(self, "path") else "?"
        logger.debug("%s %s -> %s", getattr(self, "command", "?"), path, code)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("meta sandbox: %s", _REDACT_RE.sub(r"\1=***", format % args))


def _parse_body_params(content_type: str, body: bytes) -> dict[str, Any]:
    """Graph reads POST parameters from form, multipart or JSON bodies alike."""
    if not body.strip():
        return {}
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or (not mime and body.lstrip()[:1] == b"{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            raise _bad_param("Could not parse the JSON body") from None
        if not isinstance(parsed, dict):
            raise _bad_param("The JSON body must be an object")
        return parsed
    if mime == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True) or b""
                params[str(name)] = payload.decode("utf-8", "replace")
        return params
    if mime in ("application/x-www-form-urlencoded", ""):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_param("The form body must be UTF-8") from None
        return dict(parse_qsl(text, keep_blank_values=True))
    return {}
