"""The HTTP front end: http.server parses each request into a
:class:`~sandbox.server.wire.Request` (query, headers, a bounded body, and the form,
multipart or JSON parameters Graph reads) and writes the sandbox's answer. Even input
http.server itself rejects gets a Meta-shaped JSON error, never a dropped connection."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import logging
import re
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.server.control import CONTROL_PREFIX
from sandbox.server.errors import GraphError, bad_param
from sandbox.server.wire import Request, Response, dump_json

if TYPE_CHECKING:
    from sandbox.server.core import MetaSandbox

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 50 * 1024 * 1024

_REDACT_RE = re.compile(r"(access_token|appsecret_proof)=[^&\s]*", re.IGNORECASE)


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks stop() or interpreter exit
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: MetaSandbox) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxHandler)


class SandboxHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests.Session expects
    server_version = "MetaSandbox/1.0"
    timeout = 30  # idle keep-alive connections close instead of lingering forever
    server: SandboxHTTPServer

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
            params.update(parse_body_params(headers.get("content-type", ""), body))
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
            return self._read_chunked()
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            self.close_connection = True
            raise bad_param("Invalid Content-Length") from None
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            raise bad_param("Request body too large")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            size_line = self.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                self.close_connection = True
                raise bad_param("Malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                raise bad_param("Request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

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
        body = dump_json(error.to_body())
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


def parse_body_params(content_type: str, body: bytes) -> dict[str, Any]:
    """Graph reads POST parameters from form, multipart or JSON bodies alike."""
    if not body.strip():
        return {}
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/json" or (not mime and body.lstrip()[:1] == b"{"):
        try:
            parsed = json.loads(body)
        except ValueError:
            raise bad_param("Could not parse the JSON body") from None
        if not isinstance(parsed, dict):
            raise bad_param("The JSON body must be an object")
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
            raise bad_param("The form body must be UTF-8") from None
        return dict(parse_qsl(text, keep_blank_values=True))
    return {}
