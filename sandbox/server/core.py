""":class:`MetaSandbox`: the in-memory Graph world of :mod:`sandbox.server.store` behind
an HTTP server, with the routing table, fault injection, request recording and the
usage headers every Graph answer carries."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from typing import Any, ClassVar, Self

from sandbox.server import control, conversions, graph
from sandbox.server.control import ControlHandler, dispatch_control, is_control
from sandbox.server.errors import GraphError, internal_error, missing_object
from sandbox.server.export import EXPORT_PATH, ExportOptions, export_csv
from sandbox.server.faults import EmptyPageRule, Fault, FaultQueue
from sandbox.server.httpd import SandboxHTTPServer
from sandbox.server.routing import ID, GraphContext, GraphRoute, route
from sandbox.server.store import GraphStore
from sandbox.server.wire import JSON, RecordedRequest, Request, Response, fbtrace_id

logger = logging.getLogger(__name__)

DEFAULT_API_VERSION = "v24.0"
VERSION_RE = re.compile(r"^v\d+\.\d+$")


class MetaSandbox(GraphStore):
    """In-memory Graph API stand-in with an HTTP front end and a control API."""

    # Extend in a subclass to add or replace endpoints; the first route whose pattern and
    # method match wins, so put specific routes before the catch-all node route.
    GRAPH_ROUTES: ClassVar[tuple[GraphRoute, ...]] = (
        route("GET", r"me", graph.get_me),
        route("GET", r"me/accounts", graph.get_my_accounts),
        route("GET", ID + r"/leadgen_forms", graph.get_leadgen_forms),
        route("GET", ID + r"/leads", graph.get_leads),
        route("GET|POST|DELETE", ID + r"/subscribed_apps", graph.subscribed_apps),
        route("POST", ID + r"/events", conversions.post_events),
        route("GET", ID, graph.get_node),
    )
    CONTROL_ROUTES: ClassVar[dict[tuple[str, str], ControlHandler]] = control.ROUTES

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api_version: str = DEFAULT_API_VERSION
    ) -> None:
        if not VERSION_RE.match(api_version):
            raise ValueError(f"api_version must look like 'v24.0', not {api_version!r}")
        super().__init__()
        self.host = host
        self.port = port
        self.api_version = api_version
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Public, appended to under the lock; cleared in place so references stay valid.
        self.requests: list[RecordedRequest] = []
        self.events: list[dict[str, JSON]] = []
        self._init_state()

    def _init_state(self) -> None:
        self.faults = FaultQueue()
        # Also settable over the control API.
        self.export_options = ExportOptions()
        self._graph_calls = 0

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self so `MetaSandbox().start()` works."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        server = SandboxHTTPServer((self.host, self.port), self)
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

    # ---- faults, recording, state ----------------------------------------------------

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
        with self.lock:
            self.faults.faults.append(fault)

    def add_empty_page_at(
        self, path_regex: str = ".*", page_index: int = 0, *, times: int = 1
    ) -> None:
        """Make page ``page_index`` (0 = first request) of a matching listing empty.

        The empty page still carries cursors and a ``next`` link pointing at the rows it
        skipped, as Meta's sometimes does. Works for `/leads` and `/leadgen_forms`.
        """
        rule = EmptyPageRule(path=path_regex, page_index=page_index, times=times)
        with self.lock:
            self.faults.empty_pages.append(rule)

    def clear_faults(self) -> None:
        """Drop all queued faults and empty-page rules."""
        with self.lock:
            self.faults.clear()

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def reset(self) -> None:
        """Forget everything: data, tokens, faults, recorded requests and events."""
        with self.lock:
            super().reset()
            self._init_state()
            self.requests.clear()
            self.events.clear()

    def recorded_requests(self, path_regex: str = ".*", method: str = "*") -> list[RecordedRequest]:
        """The recorded requests whose path matches ``path_regex`` (re.search)."""
        pattern = re.compile(path_regex)
        method = method.upper()
        with self.lock:
            return [
                r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)
            ]

    def request_count(self, path_regex: str = ".*", method: str = "*") -> int:
        return len(self.recorded_requests(path_regex, method))

    def state(self) -> dict[str, JSON]:
        """A JSON summary of the data (tokens left out)."""
        with self.lock:
            return {
                "api_version": self.api_version,
                "pages": [
                    {"id": p.id, "name": p.name, "subscribed_fields": list(p.subscribed_fields)}
                    for p in self.pages.values()
                ],
                "forms": [
                    {"id": f.id, "page_id": f.page_id, "name": f.name, "status": f.status}
                    for f in self.forms.values()
                ],
                "ads": [{"id": a.id, "page_id": a.page_id} for a in self.ads.values()],
                "lead_count": len(self.leads),
                "event_count": len(self.events),
                "request_count": len(self.requests),
                "fault_count": len(self.faults.faults),
            }

    # ---- request dispatch ------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        """Answer one request. Never raises: every failure becomes an error response."""
        if is_control(request.path):
            return dispatch_control(self, request, self.CONTROL_ROUTES)

        with self.lock:
            fault = self.faults.take_fault(request.method, request.path)
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
        with self.lock:
            self.requests.append(record)

    def _usage_headers(self, api_version: str | None) -> dict[str, str]:
        with self.lock:
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
            "X-FB-Trace-ID": fbtrace_id(),
            "X-FB-Rev": "1000000000",
        }
        if api_version:
            headers["facebook-api-version"] = api_version
        return headers

    def _handle_safely(self, request: Request) -> Response:
        try:
            with self.lock:
                return self._handle(request)
        except GraphError as exc:
            return exc.to_response()
        except Exception:  # a sandbox bug must still answer something
            logger.exception("Meta sandbox failed on %s %s", request.method, request.path)
            return internal_error().to_response()

    def _handle(self, request: Request) -> Response:
        if request.path.rstrip("/") == EXPORT_PATH:
            return export_csv(self, request)
        segments = [s for s in request.path.split("/") if s]
        if segments and VERSION_RE.match(segments[0]):
            api_version, rest = segments[0], segments[1:]
        else:
            # Graph also takes unversioned calls (they use the app's default version).
            api_version, rest = self.api_version, segments
        if not rest:
            raise missing_object("", request.method)
        tail = "/".join(rest)
        ctx = GraphContext(request, api_version, request.token(), self)
        for graph_route in self.GRAPH_ROUTES:
            match = graph_route.pattern.fullmatch(tail)
            if match and request.method in graph_route.methods:
                result: Any = graph_route.handler(ctx, **match.groupdict())
                return result if isinstance(result, Response) else Response.json(result)
        raise missing_object(rest[0], request.method)


def _version_of(path: str) -> str | None:
    first = path.strip("/").split("/", 1)[0]
    return first if VERSION_RE.match(first) else None
