"""Cursor paging over Graph edges, newest first, with Meta's ``paging`` block: keyset
cursors, absolute ``next``/``previous`` links, and injected empty pages."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sandbox.server.errors import bad_param
from sandbox.server.params import parse_limit
from sandbox.server.routing import GraphContext
from sandbox.server.wire import JSON, Request

SortKey = tuple[int, int, str]


def sort_key(created_ts: int, object_id: str) -> SortKey:
    # Newest first, then by id. Comparing (length, text) orders numeric ids numerically
    # without converting 17-digit ids to numbers.
    return (created_ts, len(object_id), object_id)


@dataclass
class Cursor:
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
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = json.loads(raw)
            key = data["k"]
            page = int(data["p"])
            if key is not None:
                key = (int(key[0]), str(key[1]))
            return cls(key, max(page, 0))
        except (binascii.Error, ValueError, KeyError, TypeError, IndexError):
            raise bad_param("Invalid cursor") from None

    def sort_key(self) -> SortKey | None:
        return sort_key(*self.key) if self.key else None


def paginate(
    ctx: GraphContext,
    items: list[tuple[SortKey, Any]],
    *,
    page_key: Callable[[Any], tuple[int, str]],
    render: Callable[[Any], JSON] = lambda item: item,
    token: str,
) -> JSON:
    """Cursor paging over ``items`` (sort key, item), newest first, like Graph edges.

    ``page_key`` gives an item's (created_ts, id) for its cursor; ``render`` its row.
    """
    params = ctx.params
    limit = parse_limit(params.get("limit"))
    items = sorted(items, key=lambda pair: pair[0], reverse=True)
    after = params.get("after")
    before = params.get("before")
    if isinstance(after, str) and after:
        cursor = Cursor.decode(after)
        bound = cursor.sort_key()
        start = 0 if bound is None else sum(1 for key, _ in items if key >= bound)
        window = items[start : start + limit]
        page_index = cursor.page
    elif isinstance(before, str) and before:
        cursor = Cursor.decode(before)
        bound = cursor.sort_key()
        end = 0 if bound is None else sum(1 for key, _ in items if key > bound)
        start = max(0, end - limit)
        window = items[start:end]
        page_index = max(0, cursor.page - 1)
    else:
        start, page_index = 0, 0
        window = items[:limit]

    request = ctx.request
    if ctx.sandbox.faults.take_empty_page(request.path, page_index):
        # Same position, next page number: the following request gets the real rows.
        position = Cursor(page_key(items[start - 1][1]) if start else None, page_index + 1)
        encoded = position.encode()
        return {
            "data": [],
            "paging": {
                "cursors": {"before": encoded, "after": encoded},
                "next": page_link(request, token, "after", encoded),
            },
        }

    if not window:
        return {"data": []}
    first = Cursor(page_key(window[0][1]), page_index).encode()
    last = Cursor(page_key(window[-1][1]), page_index + 1).encode()
    paging: dict[str, JSON] = {"cursors": {"before": first, "after": last}}
    if start > 0:
        paging["previous"] = page_link(request, token, "before", first)
    if start + len(window) < len(items):
        paging["next"] = page_link(request, token, "after", last)
    return {"data": [render(item) for _, item in window], "paging": paging}


def page_link(request: Request, token: str, direction: str, cursor: str) -> str:
    """The absolute ``next``/``previous`` URL for ``cursor``."""
    # Like Meta: repeats the original query (fields, limit, filtering...) and carries the
    # access token in the query string even if it came in a header.
    pairs = [("access_token", token)]
    pairs += [
        (key, value)
        for key, value in request.query.items()
        if key not in ("access_token", "after", "before")
    ]
    pairs.append((direction, cursor))
    return f"{request.base_url}{request.path}?{urlencode(pairs)}"
