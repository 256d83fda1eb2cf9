"""Connecting pages: checking and storing their tokens, and keeping their forms current."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from core.ids import meta_id
from leads import fetching
from leads.graph import GraphClient
from leads.keys import ensure_pages
from leads.lead_data import parse_meta_time
from leads.models import Form, Page
from leads.redaction import forget_page_tokens


@dataclass(frozen=True)
class ConnectResult:
    page: Page
    forms_created: int
    forms_updated: int
    leads_resumed: int
    subscribed: bool


def set_page_token(page: Page, *, token: str) -> int:
    """Store a checked token (encrypted) and resume the page's parked leads. Returns how
    many leads were resumed. The caller has verified the token against the Graph API."""
    with transaction.atomic():
        page.token = token
        page.token_status = Page.TokenStatus.VALID
        page.token_error = ""
        page.token_checked_at = timezone.now()
        page.rejected_token_fingerprint = ""
        page.save(
            update_fields=[
                "token_encrypted",
                "token_status",
                "token_error",
                "token_checked_at",
                "rejected_token_fingerprint",
                "updated_at",
            ]
        )
        # After commit: a process reloading before it would cache the old tokens again.
        transaction.on_commit(forget_page_tokens)
        return fetching.resume_page(page)


def sync_forms(page: Page, *, token: str, client: GraphClient | None = None) -> tuple[int, int]:
    """Load the page's lead forms with their questions; returns (created, updated)."""
    client = client or GraphClient()
    remote = client.leadgen_forms(page.page_id, token=token)
    now = timezone.now()
    created = updated = 0
    with transaction.atomic():
        ids = [form_id for row in remote if (form_id := meta_id(row.get("id")))]
        existing = {f.form_id: f for f in Form.objects.filter(form_id__in=ids)}
        for row in remote:
            form_id = meta_id(row.get("id"))
            if form_id is None:
                continue
            values = {
                "page": page,
                "name": str(row.get("name") or "")[:255],
                "status": str(row.get("status") or "")[:16],
                "locale": str(row.get("locale") or "")[:16],
                "questions": row.get("questions") if isinstance(row.get("questions"), list) else [],
                "meta_created_time": parse_meta_time(row.get("created_time")),
                "synced_at": now,
            }
            form = existing.get(form_id)
            if form is None:
                # get_or_create: a webhook may create the same form row concurrently.
                form, was_created = Form.objects.get_or_create(form_id=form_id, defaults=values)
                if was_created:
                    created += 1
                    continue
            for name, value in values.items():
                setattr(form, name, value)
            form.save(update_fields=[*values, "updated_at"])
            updated += 1
    return created, updated


def connect_page(
    page_id: str, *, token: str, subscribe: bool = False, client: GraphClient | None = None
) -> ConnectResult:
    """Check `token` against the Graph API, store it encrypted, load the page's forms and
    optionally subscribe the app to the page's leadgen webhooks.

    Graph errors propagate (TokenError for a rejected token): nothing is stored then.
    """
    client = client or GraphClient()
    info = client.page_info(page_id, token=token)
    subscribed = False
    if subscribe:
        subscribed = bool(client.subscribe_page(page_id, token=token).get("success"))
    page = ensure_pages([page_id])[page_id]
    name = str(info.get("name") or "")[:255]
    with transaction.atomic():
        page.name = name or page.name
        page.connected_at = page.connected_at or timezone.now()
        page.save(update_fields=["name", "connected_at", "updated_at"])
        resumed = set_page_token(page, token=token)
    created, updated = sync_forms(page, token=token, client=client)
    return ConnectResult(
        page=page,
        forms_created=created,
        forms_updated=updated,
        leads_resumed=resumed,
        subscribed=subscribed,
    )
