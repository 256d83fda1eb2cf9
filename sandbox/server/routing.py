"""What the dispatcher hands a Graph endpoint (:class:`GraphContext`), and how the routing
table (:attr:`MetaSandbox.GRAPH_ROUTES`) names endpoints (:class:`GraphRoute`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.server.errors import GraphError, missing_object
from sandbox.server.wire import Request

if TYPE_CHECKING:
    from sandbox.server.core import MetaSandbox

# A path segment that names a Graph object, captured for the handler as ``object_id``.
ID = r"(?P<object_id>[^/]+)"


@dataclass
class GraphContext:
    """One Graph request being answered, under the sandbox's lock."""

    request: Request
    api_version: str
    token: str | None
    sandbox: MetaSandbox

    @property
    def params(self) -> dict[str, Any]:
        return self.request.params

    def check_token(self) -> str:
        return self.sandbox.check_token(self.token)

    def authorize(self, page_id: str, object_id: str) -> str:
        """The token, if it may see objects of ``page_id``; unknown-object error if not."""
        return self.sandbox.authorize(self.token, page_id, object_id, method=self.request.method)

    def unknown(self, object_id: str, method: str | None = None) -> GraphError:
        """The error for an object that does not exist; a bad token outranks it, as on
        Meta, so that is raised instead."""
        self.check_token()
        return missing_object(object_id, method or self.request.method)


@dataclass(frozen=True)
class GraphRoute:
    """One Graph endpoint: methods, a regex over the path after the version, a handler.

    ``handler`` is called with the :class:`GraphContext` and the regex's named groups;
    it returns JSON-compatible data or a :class:`~sandbox.server.wire.Response`.
    """

    methods: frozenset[str]
    pattern: re.Pattern[str]
    handler: Callable[..., Any]


def route(methods: str, pattern: str, handler: Callable[..., Any]) -> GraphRoute:
    """``route("GET|POST", ID + r"/edge", handler)``."""
    return GraphRoute(frozenset(methods.split("|")), re.compile(pattern), handler)
