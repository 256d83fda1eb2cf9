"""Fault injection: errors, slowdowns and extra headers for matching requests, and
listing pages served empty. Rules apply in the order they were added and wear out after
``times`` uses (-1: never)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from sandbox.server.errors import DEFAULT_ERROR_MESSAGES, GraphError
from sandbox.server.wire import Response


def _compile(path: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(path)
    except re.error as exc:
        raise ValueError(f"bad {what} regex {path!r}: {exc}") from None


def _check_times(times: object) -> None:
    if not isinstance(times, int) or (times < 1 and times != -1):
        raise ValueError("times must be a positive integer or -1 (forever)")


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
        self._pattern = _compile(self.path, "fault path")
        _check_times(self.times)
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
        self._pattern = _compile(self.path, "path")
        if not isinstance(self.page_index, int) or self.page_index < 0:
            raise ValueError("page_index must be a non-negative integer")
        _check_times(self.times)

    def matches(self, path: str, page_index: int) -> bool:
        return page_index == self.page_index and bool(self._pattern.search(path))


class _Counted(Protocol):
    times: int


_Rule = TypeVar("_Rule", bound=_Counted)


def _take_first(rules: list[_Rule], matches: Callable[[_Rule], bool]) -> _Rule | None:
    """The first matching rule, with one use taken (and dropped when used up)."""
    for rule in rules:
        if matches(rule):
            if rule.times > 0:
                rule.times -= 1
                if rule.times == 0:
                    rules.remove(rule)
            return rule
    return None


class FaultQueue:
    """The queued faults and empty-page rules. Not thread-safe: the sandbox's lock guards
    it, as it guards all state."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.empty_pages: list[EmptyPageRule] = []

    def take_fault(self, method: str, path: str) -> Fault | None:
        return _take_first(self.faults, lambda fault: fault.matches(method, path))

    def take_empty_page(self, path: str, page_index: int) -> EmptyPageRule | None:
        return _take_first(self.empty_pages, lambda rule: rule.matches(path, page_index))

    def clear(self) -> None:
        self.faults.clear()
        self.empty_pages.clear()
