"""The control API under ``/__sandbox__/``: the in-process helpers over HTTP, so another
process can seed data and inject faults. Control calls are neither recorded nor faulted,
and answer ``{"error": {..., "type": "SandboxError"}}`` when they fail.

JSON in and out; a list body means "several":

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

import copy
import json
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import TYPE_CHECKING

from sandbox.server.export import ExportOptions
from sandbox.server.faults import Fault
from sandbox.server.store import require_id
from sandbox.server.wire import JSON, Request, Response

if TYPE_CHECKING:
    from sandbox.server.core import MetaSandbox

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/__sandbox__"

ControlHandler = Callable[["MetaSandbox", JSON, Request], JSON]


def is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def dispatch_control(
    sandbox: MetaSandbox, request: Request, routes: dict[tuple[str, str], ControlHandler]
) -> Response:
    """Answer a control call. Never raises: every failure becomes a SandboxError."""
    action = request.path[len(CONTROL_PREFIX) :].strip("/")
    handler = routes.get((request.method, action))
    if handler is None:
        return _error(f"no control route {request.method} /{action}", code=404, status=404)
    try:
        return Response.json(handler(sandbox, _payload(request), request))
    except (ValueError, TypeError, KeyError, re.error) as exc:
        return _error(f"bad control request: {exc}", code=100, status=400)
    except Exception:  # keep the control API answering
        logger.exception("Meta sandbox control call failed: %s", action)
        return _error("sandbox error", code=1, status=500)


def _error(message: str, *, code: int, status: int) -> Response:
    return Response.json(
        {"error": {"message": message, "type": "SandboxError", "code": code}}, status=status
    )


def _payload(request: Request) -> JSON:
    if not request.body.strip():
        return {}
    try:
        return json.loads(request.body)
    except ValueError:
        raise ValueError("the body must be JSON") from None


# ---- handlers: (sandbox, JSON payload, request) -> JSON answer ------------------------


def add_pages(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    return _add_each(payload, sandbox.add_page, "page_id", {"name", "token"})


def add_forms(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    allowed = {"page_id", "name", "questions", "status", "locale", "created_time"}
    return _add_each(payload, sandbox.add_form, "form_id", allowed)


def add_ads(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    return _add_each(payload, sandbox.add_ad, "ad_id", {"page_id", "name"})


def add_leads(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    # add_lead checks each item itself; no up-front check, so earlier leads stay added.
    if isinstance(payload, list):
        return [sandbox.add_lead(item) for item in payload]
    return sandbox.add_lead(payload)


def set_tokens(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    for item in _as_list(payload):
        token = item.get("token")
        if "page_id" in item:
            sandbox.set_token(str(item["page_id"]), token)
        elif item.get("revoke"):
            sandbox.revoke_token(token, subcode=int(item.get("subcode", 460)))
        else:
            sandbox.add_token(token)
    return {"success": True}


# add_fault takes exactly the fields of Fault.
FAULT_KEYS = frozenset(f.name for f in fields(Fault))


def add_faults(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    for item in _as_list(payload):
        sandbox.add_fault(**_only(item, FAULT_KEYS))
    return {"success": True}


def clear_faults(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    sandbox.clear_faults()
    return {"success": True}


def add_empty_pages(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    for item in _as_list(payload):
        item = dict(item)
        sandbox.add_empty_page_at(
            str(item.pop("path_regex", item.pop("path", ".*"))),
            int(item.pop("page_index", 0)),
            times=int(item.pop("times", 1)),
        )
    return {"success": True}


def set_export_options(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    if not isinstance(payload, dict):
        raise TypeError("expected a JSON object")
    with sandbox.lock:
        sandbox.export_options = ExportOptions(**payload)
        return asdict(sandbox.export_options)


def change_settings(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    if not isinstance(payload, dict):
        raise TypeError("expected a JSON object")
    with sandbox.lock:
        if "lead_retention_days" in payload:
            days = payload["lead_retention_days"]
            sandbox.lead_retention_days = None if days is None else int(days)
        return {"lead_retention_days": sandbox.lead_retention_days}


def reset(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    sandbox.reset()
    return {"success": True}


def list_requests(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    found = sandbox.recorded_requests(
        request.query.get("path", ".*"), request.query.get("method", "*")
    )
    return [r.to_dict() for r in found]


def clear_requests(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    sandbox.clear_requests()
    return {"success": True}


def list_events(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    with sandbox.lock:
        return copy.deepcopy(sandbox.events)


def state(sandbox: MetaSandbox, payload: JSON, request: Request) -> JSON:
    return sandbox.state()


# (HTTP method, path under /__sandbox__/) -> handler.
ROUTES: dict[tuple[str, str], ControlHandler] = {
    ("POST", "pages"): add_pages,
    ("POST", "forms"): add_forms,
    ("POST", "ads"): add_ads,
    ("POST", "leads"): add_leads,
    ("POST", "tokens"): set_tokens,
    ("POST", "faults"): add_faults,
    ("DELETE", "faults"): clear_faults,
    ("POST", "empty_pages"): add_empty_pages,
    ("POST", "export_options"): set_export_options,
    ("POST", "settings"): change_settings,
    ("POST", "reset"): reset,
    ("GET", "requests"): list_requests,
    ("DELETE", "requests"): clear_requests,
    ("GET", "events"): list_events,
    ("GET", "state"): state,
}


# ---- payload helpers ----------------------------------------------------------------


def _add_each(payload: JSON, add: Callable[..., dict], id_key: str, allowed: set[str]) -> JSON:
    """``add(id, **rest)`` for an object, or for each object of a list (all checked first).

    The id comes from ``id_key`` or ``id``; other keys must be in ``allowed``.
    """

    def one(item: dict) -> dict:
        item = dict(item)
        object_id = _pop_id(item, id_key)
        return add(object_id, **_only(item, allowed))

    if isinstance(payload, list):
        return [one(item) for item in _as_list(payload)]
    return one(payload)


def _pop_id(item: dict, name: str) -> str:
    return require_id(item.pop(name, None) or item.pop("id", None), name)


def _as_list(payload: JSON) -> list[dict]:
    items = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("expected a JSON object or a list of objects")
    return items


def _only(item: dict, allowed: frozenset[str] | set[str]) -> dict:
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    return item
