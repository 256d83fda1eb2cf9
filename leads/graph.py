"""The one client for Meta's Graph API: lead fetch, bulk read, forms, page checks, CAPI posts.

Every call goes through `GraphClient._request`, which
- sends the token only in the `Authorization` header (URLs end up in proxy and urllib3 logs),
- adds `appsecret_proof` when META_APP_SECRET is set,
- uses the explicit (connect, read) timeouts of META_HTTP_TIMEOUT,
- never follows a redirect (`NoRedirectSession`): a 3xx is a `RedirectError`, so a batch of
  hashed customer data and its `appsecret_proof` are never re-posted to the host a
  `Location` names, nor another host's body taken for Meta's answer,
- reads Meta's usage headers and keeps a shared pause in Django's cache, so that all worker
  processes slow down together when one of them sees a limit approaching,
- turns failures into the `GraphError` hierarchy, which callers use to decide between
  retrying later (`RetryableError`, `ThrottledError`) and giving up (everything else).

Settings are read at call time, not import time, so tests and `override_settings` apply.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.core.cache import cache
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.db import fastjson
from core.meta import LEAD_FIELDS
from leads.redaction import appsecret_proof, redact

logger = logging.getLogger("leads.graph")

FORM_FIELDS: tuple[str, ...] = ("id", "name", "status", "locale", "created_time", "questions")

TOKEN_CODES = frozenset({190, 102})
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80004, 80005})
RETRYABLE_CODES = frozenset({1, 2, 341, 368}) | THROTTLE_CODES
BAD_PARAMETER_CODE = 100

PAUSE_CACHE_KEY = "leadloop:graph-pause:{scope}"
PAUSE_SCOPE = "app"
# A limit reached without an estimate from Meta: Meta's windows are rolling hours, and a
# minute is the shortest wait that reliably lets the counters drop.
DEFAULT_LIMIT_PAUSE = 60.0
# Above this usage every process briefly slows down, so we do not run into the hard limit
# (which blocks the whole app, webhook lead fetches included, for up to an hour).
SLOWDOWN_PERCENT = 90.0
SLOWDOWN_MIN_PAUSE = 5.0
SLOWDOWN_MAX_PAUSE = 30.0

POOL_MAXSIZE = 16


# --- Errors --------------------------------------------------------------------------------


class GraphError(Exception):
    """A Graph API call failed. Final unless `retryable` is true.

    The message never contains a token or secret: Meta's text (error 190 quotes malformed
    tokens back) is passed through `leads.redaction.redact`, with the call's own token,
    before the exception is built, and again here for every other message.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str | None = None,
        is_transient: bool = False,
        retry_after: float | None = None,
        error_type: str | None = None,
    ) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.subcode = subcode
        self.fbtrace_id = redact(fbtrace_id) if isinstance(fbtrace_id, str) else fbtrace_id
        self.is_transient = is_transient
        self.retry_after = retry_after
        self.error_type = error_type

    def __str__(self) -> str:
        if self.code is not None:
            prefix = f"(#{self.code}/{self.subcode}) " if self.subcode else f"(#{self.code}) "
        elif self.status is not None:
            prefix = f"(HTTP {self.status}) "
        else:
            prefix = ""
        suffix = f" [{self.fbtrace_id}]" if self.fbtrace_id else ""
        return f"{prefix}{self.message}{suffix}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self)!r}, status={self.status!r}, "
            f"retry_after={self.retry_after!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes are lost by Exception's default pickling (it replays
        # `args` only); task queues and multiprocessing pickle exceptions.
        return (_rebuild_error, (type(self), self.message, dict(self.__dict__)))


def _rebuild_error(cls: type[GraphError], message: str, state: dict[str, Any]) -> GraphError:
    error = cls(message)
    error.__dict__.update(state)
    return error


class TokenError(GraphError):
    """The token is expired, revoked or malformed (190, 102): a person must reconnect."""


class RetryableError(GraphError):
    """Temporary: a 5xx, a timeout, a connection failure or a transient Graph error."""

    retryable: ClassVar[bool] = True


class ThrottledError(RetryableError):
    """A rate limit was hit or is being respected; retry after `retry_after` seconds."""


class RedirectError(GraphError):
    """Meta answered with a 3xx. Graph never redirects an API call, so the answer comes from
    something between us and Meta (a proxy, a captive portal, a META_GRAPH_URL with the
    wrong scheme or host): final, because the same request meets the same redirect.
    Callers that must not lose work (the conversions sender) retry it later as an outage."""


class PermissionDeniedError(GraphError):
    """The token lacks a permission or the app lacks access (10, 200-299)."""


class BadParameterError(GraphError):
    """Invalid parameter (100); subcode 33 means the object is missing or not visible."""


# --- Usage headers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """The highest usage percentage across Meta's usage headers, and the longest wait."""

    max_percent: float = 0.0
    regain_seconds: float = 0.0

    @property
    def limit_reached(self) -> bool:
        return self.max_percent >= 100 or self.regain_seconds > 0

    def pause_seconds(self) -> float:
        """How long every process should hold off before the next call (0: no pause)."""
        if self.regain_seconds > 0:
            return self.regain_seconds
        if self.max_percent >= 100:
            return DEFAULT_LIMIT_PAUSE
        if self.max_percent >= SLOWDOWN_PERCENT:
            share = (self.max_percent - SLOWDOWN_PERCENT) / (100 - SLOWDOWN_PERCENT)
            return SLOWDOWN_MIN_PAUSE + share * (SLOWDOWN_MAX_PAUSE - SLOWDOWN_MIN_PAUSE)
        return 0.0


_PERCENT_HEADERS = ("X-App-Usage", "X-Page-Usage", "X-Ad-Account-Usage")
_PERCENT_KEYS = ("call_count", "total_cputime", "total_time", "acc_id_util_pct")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        # A malformed usage header must never fail the call it came with.
        logger.debug("Ignoring unparsable %s header", name)
        return None


def _max_percent(entry: Mapping[str, Any]) -> float:
    return max((_number(entry.get(key)) for key in _PERCENT_KEYS), default=0.0)


def parse_usage(headers: Mapping[str, str]) -> Usage | None:
    """Usage from a response's headers, or None when it carries none."""
    found = False
    percent = 0.0
    regain = 0.0
    for name in _PERCENT_HEADERS:
        data = _json_header(headers, name)
        if not isinstance(data, dict):
            continue
        found = True
        entry_percent = _max_percent(data)
        percent = max(percent, entry_percent)
        if name == "X-Ad-Account-Usage" and entry_percent >= 100:
            # Ad account usage gives the reset time in seconds instead of an estimate.
            regain = max(regain, _number(data.get("reset_time_duration")))
    buc = _json_header(headers, "X-Business-Use-Case-Usage")
    if isinstance(buc, dict):
        for entries in buc.values():
            if not isinstance(entries, list):
                continue
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                found = True
                percent = max(percent, _max_percent(entry))
                minutes = _number(entry.get("estimated_time_to_regain_access"))
                regain = max(regain, minutes * 60)
    return Usage(max_percent=percent, regain_seconds=regain) if found else None


# --- Session -------------------------------------------------------------------------------

_session: requests.Session | None = None
_session_lock = threading.Lock()


class NoRedirectSession(requests.Session):
    """A session that answers a 3xx with the 3xx itself: the one HTTP path to Meta (Graph,
    the Conversions API and the lead export download) never follows a redirect.

    requests, not urllib3, follows redirects (`Session.send` -> `resolve_redirects`, which
    asks `get_redirect_target`), and it would re-send a 307's POST body to the new host. A
    call site could forget `allow_redirects=False`; this class cannot: every request is
    sent without following, `get_redirect_target` names no target even for `send()` with
    `allow_redirects=True`, and `max_redirects = 0` makes any other way into the redirect
    loop raise `TooManyRedirects` before a second request.
    """

    def __init__(self) -> None:
        super().__init__()
        self.max_redirects = 0

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["allow_redirects"] = False
        return super().request(*args, **kwargs)

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def _new_session() -> requests.Session:
    session = NoRedirectSession()
    # No urllib3 retries: a retried POST could send a CAPI batch twice, and retries would
    # hide failures from our own classification (tasks retry with back-off and a budget).
    # urllib3 never follows redirects for requests either (requests passes redirect=False
    # to urlopen); `redirect=False` here says the same for its retry counter.
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=POOL_MAXSIZE,
        max_retries=Retry(total=0, read=False, redirect=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "Leadloop (+requests)"
    return session


def send(
    session: requests.Session | None, method: str, url: str, **kwargs: Any
) -> requests.Response:
    """Every request to Meta goes through here (with the process-wide session unless a
    caller passes one): `allow_redirects=False` also holds for a plain `requests.Session`."""
    return (session or get_session()).request(method, url, allow_redirects=False, **kwargs)


def redirect_refusal(response: requests.Response) -> str:
    """'' unless `response` is a 3xx; then what to say about it. Only the host of the
    `Location` is named: its path and query are another party's and may carry anything."""
    status = response.status_code
    if not 300 <= status < 400:
        return ""
    try:
        host = urlsplit(response.headers.get("Location") or "").hostname or ""
    except ValueError:
        host = ""
    target = f" to {host}" if host else ""
    return f"HTTP {status} redirect{target}, not followed (Meta's API never redirects)"


def get_session() -> requests.Session:
    """The process-wide session (connection pooling to graph.facebook.com)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = _new_session()
    return _session


def _forget_session() -> None:
    # A forked worker must not share the parent's pooled sockets: both processes would
    # read each other's responses.
    global _session, _session_lock
    _session = None
    _session_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_session)


# --- Helpers -------------------------------------------------------------------------------


def _encode(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Graph expects JSON for structured values (`filtering`, CAPI `data`) and booleans."""
    encoded: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple | dict | bool):
            encoded[key] = json.dumps(value, separators=(",", ":"))
        else:
            encoded[key] = value
    return encoded


def _strip_query(url: str, names: frozenset[str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in names]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _node(node_id: str | int) -> str:
    # Ids come from webhook payloads; quoting keeps a hostile value from changing the path.
    return quote(str(node_id), safe="")


def _appsecret_proof(token: str) -> str | None:
    secret = settings.META_APP_SECRET
    return appsecret_proof(token, secret) if secret else None


def _error_class(
    status: int, code: int | None, is_transient: bool, limit_reached: bool
) -> type[GraphError]:
    # Token errors first: retrying with the same token can never succeed, whatever else
    # the response says.
    if code in TOKEN_CODES:
        return TokenError
    if code in THROTTLE_CODES or status == 429:
        return ThrottledError
    if code in RETRYABLE_CODES or is_transient:
        return ThrottledError if limit_reached else RetryableError
    # A known final code wins over the HTTP status: Meta sends some parameter and
    # permission errors with a 500, and retrying them only burns quota.
    if code == 10 or (code is not None and 200 <= code <= 299):
        return PermissionDeniedError
    if code == BAD_PARAMETER_CODE:
        return BadParameterError
    if limit_reached:
        return ThrottledError
    if status >= 500:
        return RetryableError
    return GraphError


def _int_or_none(value: object) -> int | None:
    """An error code or subcode: Graph's are 32-bit integers, and they are stored as such
    (a hostile or broken answer's 10**30 would overflow the column and fail the write)."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    return None


def _error_from_response(
    status: int, body: Any, usage: Usage | None, token: str, retry_after_header: float
) -> GraphError:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = redact(str(error.get("message") or f"HTTP {status}"), token)
    else:
        # An HTML page from a proxy or load balancer: classify by the status alone.
        error = {}
        message = f"HTTP {status} without a Graph error body"
    code = _int_or_none(error.get("code"))
    is_transient = error.get("is_transient") is True
    cls = _error_class(status, code, is_transient, usage is not None and usage.limit_reached)
    return cls(
        message,
        status=status,
        code=code,
        subcode=_int_or_none(error.get("error_subcode")),
        fbtrace_id=error.get("fbtrace_id") or None,
        is_transient=is_transient,
        error_type=error.get("type") or None,
        retry_after=(
            _throttle_pause(usage, retry_after_header) if issubclass(cls, ThrottledError) else None
        ),
    )


def _throttle_pause(usage: Usage | None, retry_after_header: float) -> float:
    regain = usage.regain_seconds if usage is not None else 0.0
    return max(regain, retry_after_header) or DEFAULT_LIMIT_PAUSE


def _retry_after_header(headers: Mapping[str, str]) -> float:
    try:
        return max(float(headers.get("Retry-After") or 0), 0.0)
    except ValueError:
        # HTTP-date form; Graph does not send it, and the default pause covers it.
        return 0.0


# --- Client --------------------------------------------------------------------------------


class GraphClient:
    """Graph API calls with one token each.

    `max_wait`: how long a call may sleep for a pause recorded by any process before it
    gives up with `ThrottledError` instead. Tasks keep 0 (they are re-queued with back-off);
    long-running bulk reads pass about a minute.
    """

    def __init__(
        self,
        *,
        max_wait: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_wait = max_wait
        # The most recent usage Meta reported to this client (responses without usage
        # headers leave it unchanged).
        self.last_usage: Usage | None = None
        self._sleep = sleep
        self._session = session
        # Wall-clock time, not monotonic: the pause deadline is shared between processes.
        self._clock = clock

    # -- public calls

    def get(self, path: str, *, token: str, params: dict[str, Any] | None = None) -> dict:
        return self._request("GET", self._url(path), token=token, params=_encode(params))

    def post(self, path: str, *, token: str, data: dict[str, Any] | None = None) -> dict:
        """Form-encoded POST; lists, dicts and booleans are sent as JSON text."""
        return self._request("POST", self._url(path), token=token, data=_encode(data))

    def get_url(self, url: str, *, token: str) -> dict:
        """GET an absolute Graph URL such as `paging.next`.

        Meta writes the token into `next` as `access_token=`; it is removed and sent in the
        header instead. The URL must point at META_GRAPH_URL, so a forged or odd `next` can
        never receive the token.
        """
        base = urlsplit(self._base())
        try:
            # `url` is what a page's `paging.next` holds, which a broken answer can make
            # anything: a number, or text urlsplit refuses (`http://[::1`).
            target = urlsplit(url) if isinstance(url, str) else None
        except ValueError:
            target = None
        if target is None:
            raise GraphError("Graph paging returned a next link that is not a URL")
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise GraphError(f"Refusing to follow a URL outside the Graph API ({target.netloc})")
        return self._request(
            "GET", _strip_query(url, frozenset({"access_token", "appsecret_proof"})), token=token
        )

    def get_lead(self, leadgen_id: str | int, *, token: str) -> dict:
        return self.get(_node(leadgen_id), token=token, params={"fields": ",".join(LEAD_FIELDS)})

    def iter_pages(
        self, path: str, *, token: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict]:
        """Yield each page of an edge; stop only when `paging.next` is absent.

        An empty page with a `next` link is not the end, and a page shorter than `limit`
        proves nothing either (META.md, "Bulk read").
        """
        page = self.get(path, token=token, params=params)
        yield page
        previous: str | None = None
        while True:
            paging = page.get("paging")
            next_url = paging.get("next") if isinstance(paging, dict) else None
            if not next_url:
                return
            if next_url == previous:
                # The same cursor twice would loop forever on the same page.
                raise GraphError("Graph paging returned the same next link twice")
            previous = next_url
            page = self.get_url(next_url, token=token)
            yield page

    def page_info(self, page_id: str | int, *, token: str) -> dict:
        return self.get(_node(page_id), token=token, params={"fields": "id,name"})

    def leadgen_forms(self, page_id: str | int, *, token: str) -> list[dict]:
        forms: list[dict] = []
        pages = self.iter_pages(
            f"{_node(page_id)}/leadgen_forms",
            token=token,
            params={"fields": ",".join(FORM_FIELDS), "limit": 100},
        )
        for page in pages:
            rows = page.get("data")
            if isinstance(rows, list):
                # What is not an object is not a form: a broken answer is skipped, not a crash.
                forms.extend(row for row in rows if isinstance(row, dict))
        return forms

    def subscribe_page(self, page_id: str | int, *, token: str) -> dict:
        return self.post(
            f"{_node(page_id)}/subscribed_apps",
            token=token,
            data={"subscribed_fields": "leadgen"},
        )

    # -- plumbing

    @staticmethod
    def _base() -> str:
        return f"{settings.META_GRAPH_URL.rstrip('/')}/{settings.META_API_VERSION}"

    def _url(self, path: str) -> str:
        return f"{self._base()}/{path.lstrip('/')}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        token: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> dict:
        if not token:
            raise TokenError("No access token")
        self._wait_for_pause()

        proof = _appsecret_proof(token)
        if proof:
            # In the body for POSTs so it stays out of URLs; Graph accepts it in either.
            if method == "POST":
                data = {**(data or {}), "appsecret_proof": proof}
            else:
                params = {**(params or {}), "appsecret_proof": proof}
        path = urlsplit(url).path
        started = time.monotonic()
        try:
            response = send(
                self._session,
                method,
                url,
                params=params,
                data=data,
                headers={"Authorization": f"Bearer {token}"},
                timeout=settings.META_HTTP_TIMEOUT,
            )
        except requests.Timeout as exc:
            self._log(method, path, "timeout", started)
            raise RetryableError(f"Graph {method} {path} timed out") from exc
        except requests.ConnectionError as exc:
            self._log(method, path, "connection error", started)
            raise RetryableError(f"Graph {method} {path} could not connect") from exc
        except requests.RequestException as exc:
            # Anything else from requests (an invalid URL) is our bug or
            # Meta's; retrying would not help.
            self._log(method, path, type(exc).__name__, started)
            raise GraphError(f"Graph {method} {path} failed: {type(exc).__name__}") from exc
        self._log(method, path, response.status_code, started)
        refusal = redirect_refusal(response)
        if refusal:
            raise RedirectError(
                f"Graph {method} {path} answered {refusal}", status=response.status_code
            )

        usage = parse_usage(response.headers)
        if usage is not None:
            self.last_usage = usage
            self._record_pause(usage.pause_seconds())

        try:
            body = fastjson.loads_storable(response.content)
        except ValueError:
            body = None

        if response.status_code >= 400:
            error = _error_from_response(
                response.status_code,
                body,
                usage,
                token,
                _retry_after_header(response.headers),
            )
            if isinstance(error, ThrottledError) and error.retry_after:
                self._record_pause(error.retry_after)
            raise error
        if not isinstance(body, dict):
            raise GraphError(
                "Graph returned a response that is not a JSON object",
                status=response.status_code,
            )
        return body

    @staticmethod
    def _log(method: str, path: str, status: int | str, started: float) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        logger.debug("Graph %s %s -> %s in %.0f ms", method, path, status, elapsed_ms)

    # -- shared pause

    def _pause_key(self) -> str:
        return PAUSE_CACHE_KEY.format(scope=PAUSE_SCOPE)

    def _record_pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        until = self._clock() + seconds
        key = self._pause_key()
        try:
            current = cache.get(key)
            # Read-then-write across processes may rarely let a shorter pause replace a
            # longer one; the next response's headers restore it, which is good enough.
            if isinstance(current, int | float) and current >= until:
                return
            cache.set(key, until, timeout=math.ceil(seconds) + 1)
        except Exception:
            # The pause is advisory: a cache outage must not stop lead fetches.
            logger.warning("Could not record the Graph pause in the cache", exc_info=True)
            return
        logger.info("Graph usage: pausing calls for %.0f s", seconds)

    def _wait_for_pause(self) -> None:
        try:
            until = cache.get(self._pause_key())
        except Exception:
            logger.warning("Could not read the Graph pause from the cache", exc_info=True)
            return
        if not isinstance(until, int | float):
            return
        remaining = until - self._clock()
        if remaining <= 0:
            return
        if remaining <= self.max_wait:
            logger.info("Graph usage: waiting %.1f s before the next call", remaining)
            self._sleep(remaining)
            return
        raise ThrottledError(
            f"Graph calls are paused for rate limits; retry in {math.ceil(remaining)} s",
            retry_after=remaining,
        )
