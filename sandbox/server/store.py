"""The in-memory Graph objects (pages, forms, ads, leads) and tokens, the in-process
helpers that seed them, and the token checks every endpoint makes.

One re-entrant lock (:attr:`GraphStore.lock`) guards all of the sandbox's state; the
helpers here take it, and request handling runs under it.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.ids import meta_id
from sandbox.server.errors import (
    DEFAULT_ERROR_MESSAGES,
    REVOKED_TOKEN_MESSAGES,
    GraphError,
    missing_object,
)
from sandbox.server.wire import JSON, format_meta_time, parse_meta_time

FORM_STATUSES = frozenset({"ACTIVE", "ARCHIVED", "DELETED", "DRAFT"})

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


@dataclass
class Page:
    id: str
    name: str
    tokens: set[str] = field(default_factory=set)
    subscribed_fields: list[str] = field(default_factory=list)


@dataclass
class Form:
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
class Ad:
    id: str
    page_id: str
    name: str = ""


@dataclass
class Lead:
    id: str
    page_id: str
    form_id: str
    created_ts: int
    data: dict[str, JSON]  # Graph shape, created_time already formatted

    def graph_fields(self, fields: Iterable[str]) -> dict[str, JSON]:
        """The lead as Graph answers it: the asked-for fields it has, and always its id."""
        row: dict[str, JSON] = {}
        for name in fields:
            if name in self.data:
                row[name] = copy.deepcopy(self.data[name])
        row["id"] = self.id
        return row


class GraphStore:
    """Pages, forms, ads, leads and tokens. Read the dicts under :attr:`lock`; change
    them through the helpers, which validate and keep them consistent."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._init_store()

    def _init_store(self) -> None:
        self.pages: dict[str, Page] = {}
        self.forms: dict[str, Form] = {}
        self.ads: dict[str, Ad] = {}
        self.leads: dict[str, Lead] = {}
        self._global_tokens: set[str] = set()
        self._revoked: dict[str, int] = {}  # token -> error subcode
        self._next_lead_id = 900_000_000_000_001
        # Meta stops returning leads 90 days after submission. Off by default so that
        # fixtures with fixed old dates keep working; set to 90 to test expiry handling.
        self.lead_retention_days: int | None = None

    def reset(self) -> None:
        """Forget every object and token."""
        with self.lock:
            self._init_store()

    # ---- seeding ---------------------------------------------------------------------

    def add_page(self, page_id: str, *, name: str = "", token: str | None = None) -> dict:
        """Create or update a page. ``token`` becomes its (only) page token if given."""
        page_id = require_id(page_id, "page_id")
        with self.lock:
            page = self.pages.get(page_id)
            if page is None:
                page = self.pages[page_id] = Page(page_id, name or f"Sandbox Page {page_id}")
            elif name:
                page.name = name
            if token is not None:
                self._set_page_token(page, token)
            return self.page_summary(page)

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
        form_id = require_id(form_id, "form_id")
        page_id = require_id(page_id, "page_id")
        status = str(status).upper()
        if status not in FORM_STATUSES:
            raise ValueError(f"status must be one of {sorted(FORM_STATUSES)}")
        if questions is None:
            questions = [{"key": key} for key in DEFAULT_QUESTION_KEYS]
        if not isinstance(questions, list):
            raise TypeError("questions must be a list")
        created = int(time.time()) if created_time is None else parse_meta_time(created_time)
        with self.lock:
            self._require_page(page_id)
            form = Form(
                id=form_id,
                page_id=page_id,
                name=name or f"Sandbox form {form_id}",
                questions=[normalize_question(q, form_id, i) for i, q in enumerate(questions)],
                status=status,
                locale=str(locale),
                created_ts=created,
                created_explicit=created_time is not None,
            )
            self.forms[form_id] = form
            return self.form_fields(
                form, ("id", "name", "status", "locale", "created_time", "questions", "page_id")
            )

    def add_ad(self, ad_id: str, *, page_id: str, name: str = "") -> dict:
        """Register an ad (so `/{ad_id}/leads` works before any lead uses it)."""
        ad_id = require_id(ad_id, "ad_id")
        page_id = require_id(page_id, "page_id")
        with self.lock:
            self._require_page(page_id)
            ad = self.ads[ad_id] = Ad(ad_id, page_id, name)
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
        form_id = require_id(data.get("form_id"), "form_id")
        for key in ("id", "ad_id", "adset_id", "campaign_id"):
            if data.get(key) not in (None, ""):
                data[key] = require_id(data[key], key)
        raw_time = data.get("created_time")
        created = int(time.time()) if raw_time in (None, "") else parse_meta_time(raw_time)
        data["created_time"] = format_meta_time(created)
        data["form_id"] = form_id
        data["field_data"] = normalize_field_data(data.get("field_data", []))
        data.setdefault("is_organic", False)
        with self.lock:
            form = self.forms.get(form_id)
            if form is None:
                raise ValueError(f"unknown form {form_id!r}; add_form() first")
            if not data.get("id"):
                data["id"] = str(self._next_lead_id)
                self._next_lead_id += 1
            lead_id = str(data["id"])
            if not form.created_explicit and created < form.created_ts:
                form.created_ts = created
            ad_id = data.get("ad_id")
            if isinstance(ad_id, str) and ad_id and ad_id not in self.ads:
                self.ads[ad_id] = Ad(ad_id, form.page_id, str(data.get("ad_name") or ""))
            self.leads[lead_id] = Lead(lead_id, form.page_id, form_id, created, data)
            return copy.deepcopy(data)

    def set_token(self, page_id: str, token: str | None) -> None:
        """Make ``token`` the page's only page token (None: the page has none)."""
        page_id = require_id(page_id, "page_id")
        with self.lock:
            page = self._require_page(page_id)
            if token is None:
                page.tokens.clear()
            else:
                self._set_page_token(page, token)

    def add_token(self, token: str) -> None:
        """A token valid for every object, like a system user token."""
        token = require_token(token)
        with self.lock:
            self._global_tokens.add(token)
            self._revoked.pop(token, None)

    def revoke_token(self, token: str, *, subcode: int = 460) -> None:
        """Further use of ``token`` fails with code 190 and ``subcode`` (460 by default;
        463 simulates expiry, 458 a removed app)."""
        token = require_token(token)
        with self.lock:
            self._revoked[token] = int(subcode)

    @property
    def subscriptions(self) -> dict[str, list[str]]:
        """page id -> subscribed fields, for pages that installed the app."""
        with self.lock:
            return {
                p.id: list(p.subscribed_fields) for p in self.pages.values() if p.subscribed_fields
            }

    def _require_page(self, page_id: str) -> Page:
        page = self.pages.get(page_id)
        if page is None:
            raise ValueError(f"unknown page {page_id!r}; add_page() first")
        return page

    def _set_page_token(self, page: Page, token: str) -> None:
        token = require_token(token)
        page.tokens = {token}
        self._revoked.pop(token, None)

    # ---- reading (callers hold the lock) ---------------------------------------------

    def visible_leads(self, predicate: Callable[[Lead], bool]) -> list[Lead]:
        """The leads matching ``predicate`` that Meta still returns (see retention)."""
        cutoff = None
        if self.lead_retention_days is not None:
            cutoff = time.time() - self.lead_retention_days * 86400
        return [
            lead
            for lead in self.leads.values()
            if predicate(lead) and (cutoff is None or lead.created_ts >= cutoff)
        ]

    def page_summary(self, page: Page) -> dict:
        summary: dict[str, JSON] = {"id": page.id, "name": page.name}
        if page.tokens:
            summary["access_token"] = min(page.tokens)
        return summary

    def form_fields(self, form: Form, fields: Iterable[str]) -> dict[str, JSON]:
        """The form as Graph answers it: the asked-for fields, and always its id."""
        page = self.pages.get(form.page_id)
        values: dict[str, JSON] = {
            "id": form.id,
            "name": form.name,
            "status": form.status,
            "locale": form.locale,
            "created_time": format_meta_time(form.created_ts),
            "questions": copy.deepcopy(form.questions),
            "page_id": form.page_id,
            "page": {"id": form.page_id, "name": page.name if page else ""},
            "leads_count": sum(1 for lead in self.leads.values() if lead.form_id == form.id),
        }
        row = {name: values[name] for name in fields if name in values}
        row["id"] = form.id
        return row

    # ---- tokens (callers hold the lock) ----------------------------------------------

    def check_token(self, token: str | None) -> str:
        """The token if it is valid for anything; a Meta token error (190) if not."""
        if not token:
            raise GraphError("An access token is required to request this resource.", code=190)
        if token in self._revoked:
            subcode = self._revoked[token]
            raise GraphError(
                REVOKED_TOKEN_MESSAGES.get(subcode, "Error validating access token."),
                code=190,
                subcode=subcode,
            )
        if token in self._global_tokens or any(token in p.tokens for p in self.pages.values()):
            return token
        raise GraphError(DEFAULT_ERROR_MESSAGES[190], code=190, subcode=460)

    def authorize(self, token: str | None, page_id: str, object_id: str, *, method: str) -> str:
        """Check the token may see objects of ``page_id``; unknown-object error if not."""
        token = self.check_token(token)
        page = self.pages.get(page_id)
        if token in self._global_tokens or (page is not None and token in page.tokens):
            return token
        raise missing_object(object_id, method)

    def manages(self, token: str, page: Page) -> bool:
        """Whether ``token`` (already checked) opens ``page``."""
        return token in self._global_tokens or token in page.tokens


def require_id(value: Any, name: str) -> str:
    """A Meta id by Leadloop's own rule (`core.ids`): the sandbox mints and accepts only
    ids that Leadloop would take, so a seeded lead is never one that Leadloop skips."""
    if value is None or isinstance(value, bool) or str(value).strip() == "":
        raise ValueError(f"{name} is required")
    canonical = meta_id(value if isinstance(value, int | str) else str(value))
    if canonical is None:
        raise ValueError(f"{name} must be a Meta id (a positive integer below 2**63)")
    return canonical


def require_token(token: Any) -> str:
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    return token


def normalize_question(question: Any, form_id: str, index: int) -> dict[str, JSON]:
    if not isinstance(question, Mapping) or not question.get("key"):
        raise ValueError("each question needs a 'key'")
    q = copy.deepcopy(dict(question))
    key = str(q["key"])
    q["key"] = key
    q.setdefault("label", key.replace("_", " ").capitalize())
    q.setdefault("type", STANDARD_QUESTION_TYPES.get(key, "CUSTOM"))
    q.setdefault("id", f"{form_id}{index:03d}")
    return q


def normalize_field_data(value: Any) -> list[dict[str, JSON]]:
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
