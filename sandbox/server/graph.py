"""The Graph API endpoints for pages, forms, ads and leads: nodes by id, the ``/leads``
and ``/leadgen_forms`` edges (cursors, ``filtering``), ``/me``, ``/me/accounts`` and
``/subscribed_apps``. Each is a function of a :class:`GraphContext` and the path's groups,
called under the sandbox's lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from core import meta
from sandbox.server.errors import bad_param, missing_object
from sandbox.server.paging import paginate, sort_key
from sandbox.server.params import parse_filtering, parse_list_param, requested_fields
from sandbox.server.routing import GraphContext
from sandbox.server.store import Form, Lead
from sandbox.server.wire import JSON

# Fields Meta's Lead node knows. Asking for anything else is an error (#100), which is how
# a typo such as `form_name` (not a Lead field) shows up against the real API too.
LEAD_FIELDS = frozenset(meta.LEAD_FIELDS)
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

APP_ID = "100000000000001"
APP_NAME = "Leadloop (sandbox)"
SYSTEM_USER = {"id": "100000000000002", "name": "Sandbox System User"}


def get_me(ctx: GraphContext) -> JSON:
    token = ctx.check_token()
    for page in ctx.sandbox.pages.values():
        if token in page.tokens:
            return {"id": page.id, "name": page.name}
    return dict(SYSTEM_USER)


def get_my_accounts(ctx: GraphContext) -> JSON:
    """Pages the token manages, with their page tokens (the connect flow's source)."""
    sandbox = ctx.sandbox
    token = ctx.check_token()
    pages = [p for p in sandbox.pages.values() if sandbox.manages(token, p)]
    rows = [dict(sandbox.page_summary(p), tasks=["MANAGE", "ADVERTISE"]) for p in pages]
    items = [(sort_key(0, row["id"]), row) for row in rows]
    return paginate(ctx, items, page_key=lambda row: (0, row["id"]), token=token)


def get_node(ctx: GraphContext, object_id: str) -> JSON:
    sandbox = ctx.sandbox
    lead = sandbox.leads.get(object_id)
    if lead is not None:
        ctx.authorize(lead.page_id, object_id)
        if sandbox.visible_leads(lambda candidate: candidate.id == object_id):
            return lead.graph_fields(lead_fields(ctx))
        raise missing_object(object_id)
    form = sandbox.forms.get(object_id)
    if form is not None:
        ctx.authorize(form.page_id, object_id)
        return sandbox.form_fields(form, form_fields(ctx))
    page = sandbox.pages.get(object_id)
    if page is not None:
        ctx.authorize(page.id, object_id)
        # Pages have hundreds of fields; unknown ones are left out, not rejected.
        fields = requested_fields(ctx.params, ("id", "name"), None, "Page")
        row: dict[str, JSON] = {"id": page.id}
        if "name" in fields:
            row["name"] = page.name
        if "access_token" in fields and page.tokens:
            row["access_token"] = min(page.tokens)
        return row
    ad = sandbox.ads.get(object_id)
    if ad is not None:
        ctx.authorize(ad.page_id, object_id)
        fields = requested_fields(ctx.params, ("id",), None, "Ad")
        row = {"id": ad.id}
        if "name" in fields and ad.name:
            row["name"] = ad.name
        return row
    raise ctx.unknown(object_id)


def get_leadgen_forms(ctx: GraphContext, object_id: str) -> JSON:
    sandbox = ctx.sandbox
    page = sandbox.pages.get(object_id)
    if page is None:
        raise ctx.unknown(object_id)
    token = ctx.authorize(page.id, object_id)
    fields = form_fields(ctx)
    forms = [f for f in sandbox.forms.values() if f.page_id == page.id]
    return newest_first(ctx, forms, render=lambda f: sandbox.form_fields(f, fields), token=token)


def get_leads(ctx: GraphContext, object_id: str) -> JSON:
    """A form's or an ad's leads."""
    sandbox = ctx.sandbox
    if object_id in sandbox.forms:
        form = sandbox.forms[object_id]
        token = ctx.authorize(form.page_id, object_id)
        leads = sandbox.visible_leads(lambda lead: lead.form_id == object_id)
    elif object_id in sandbox.ads:
        ad = sandbox.ads[object_id]
        token = ctx.authorize(ad.page_id, object_id)
        leads = sandbox.visible_leads(lambda lead: lead.data.get("ad_id") == object_id)
    else:
        raise ctx.unknown(object_id)
    fields = lead_fields(ctx)
    for check in parse_filtering(ctx.params.get("filtering")):
        leads = [lead for lead in leads if check(lead.created_ts)]
    return newest_first(ctx, leads, render=lambda lead: lead.graph_fields(fields), token=token)


def subscribed_apps(ctx: GraphContext, object_id: str) -> JSON:
    """GET lists the app if the page installed it; POST subscribes; DELETE removes it."""
    page = ctx.sandbox.pages.get(object_id)
    if page is None:
        raise ctx.unknown(object_id)
    ctx.authorize(page.id, object_id)
    method = ctx.request.method
    if method == "GET":
        if not page.subscribed_fields:
            return {"data": []}
        app = {"id": APP_ID, "name": APP_NAME, "subscribed_fields": list(page.subscribed_fields)}
        return {"data": [app]}
    if method == "DELETE":
        page.subscribed_fields = []
        return {"success": True}
    wanted = parse_list_param(ctx.params.get("subscribed_fields"))
    if not wanted:
        raise bad_param("The parameter subscribed_fields is required")
    for name in wanted:
        if name not in page.subscribed_fields:
            page.subscribed_fields.append(name)
    return {"success": True}


def lead_fields(ctx: GraphContext) -> list[str]:
    """The Lead fields the request asks for (#100 for one Meta does not know)."""
    return requested_fields(ctx.params, LEAD_DEFAULT_FIELDS, LEAD_FIELDS, "Lead")


def form_fields(ctx: GraphContext) -> list[str]:
    return requested_fields(ctx.params, FORM_DEFAULT_FIELDS, FORM_FIELDS, "LeadgenForm")


def newest_first(
    ctx: GraphContext,
    records: Iterable[Form | Lead],
    *,
    render: Callable[[Any], JSON],
    token: str,
) -> JSON:
    """One page of forms or leads, newest first, keyed by creation time and id."""
    items = [(sort_key(record.created_ts, record.id), record) for record in records]
    return paginate(ctx, items, page_key=_created_and_id, render=render, token=token)


def _created_and_id(record: Form | Lead) -> tuple[int, str]:
    return (record.created_ts, record.id)
