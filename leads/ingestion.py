"""Webhook ingestion: store the raw delivery, verify it, turn leadgen changes into lead rows.

No Graph call happens here: a lead row is created from the change alone and its fetch is
queued after commit, so Meta gets its 200 in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from leads import queue
from leads.dblock import serialized_writes
from leads.lead_data import parse_meta_time
from leads.models import Form, Lead, Page, WebhookDelivery
from leads.webhooks import (
    LeadgenChange,
    MalformedPayload,
    leadgen_changes,
    parse_payload,
    signature_is_valid,
)

logger = logging.getLogger(__name__)

# Request headers kept with a delivery, for inspection. Cookies and auth never are.
KEPT_HEADERS = (
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_USER_AGENT",
    "HTTP_X_HUB_SIGNATURE_256",
    "HTTP_X_HUB_SIGNATURE",
    "HTTP_X_FORWARDED_FOR",
    "REMOTE_ADDR",
)


def kept_headers(meta: Mapping[str, object]) -> dict[str, str]:
    return {key: str(meta[key]) for key in KEPT_HEADERS if key in meta}


def receive_delivery(*, body: bytes, headers: Mapping[str, str], signature: str) -> WebhookDelivery:
    """Store one POST and, when its signature is valid, create a lead row per new leadgen id.

    The delivery row and its leads commit together; if processing fails, its savepoint is
    rolled back and the delivery is kept with the error (status MALFORMED or FAILED), so
    nothing is half-written and the failure stays visible. The view answers FAILED with a
    5xx so Meta retries; database errors propagate for the same reason.
    """
    # On SQLite, wait for the write lock here (woken at once) rather than in SQLite's
    # sleeping busy handler; the on-commit enqueue runs inside it too.
    with serialized_writes(), transaction.atomic():
        delivery = WebhookDelivery.objects.create(body=body, headers=dict(headers))
        # Verify the bytes we stored, not a copy that could differ from them.
        if not signature_is_valid(bytes(delivery.body), signature, settings.META_APP_SECRET):
            delivery.status = WebhookDelivery.Status.INVALID_SIGNATURE
            delivery.save(update_fields=["status"])
            return delivery
        delivery.signature_valid = True
        _process_signed(delivery)
    return delivery


class NotReprocessable(ValueError):
    """The delivery cannot be processed again: its signature does not verify."""


def reprocess_delivery(delivery: WebhookDelivery) -> WebhookDelivery:
    """Process a stored delivery's leadgen changes again (after a bug fix, or when it failed
    midway); returns the updated delivery.

    Only a delivery stored as validly signed whose stored bytes still verify against its
    stored signature header is processed: an unsigned or tampered one never is
    (NotReprocessable). Safe to repeat: a leadgen id that already has a lead is not created
    again, and only leads created by this run are queued for a fetch, so a complete lead is
    never fetched a second time on a reprocess's account. `leads_created` accumulates.
    """
    with transaction.atomic():
        # Locked so two admins reprocessing the same delivery run one after the other.
        delivery = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        headers = delivery.headers if isinstance(delivery.headers, dict) else {}
        signature = headers.get("HTTP_X_HUB_SIGNATURE_256")
        if not delivery.signature_valid or not signature_is_valid(
            bytes(delivery.body), signature, settings.META_APP_SECRET
        ):
            raise NotReprocessable(
                f"Delivery {delivery.pk} is not validly signed; it is never processed."
            )
        _process_signed(delivery)
    return delivery


def _process_signed(delivery: WebhookDelivery) -> None:
    """Process a verified delivery in a savepoint and save its outcome. On failure the
    savepoint is rolled back and the delivery keeps the error (MALFORMED or FAILED)."""
    already = delivery.leads_created
    try:
        with transaction.atomic():
            created = _process(delivery)
    except MalformedPayload as exc:
        delivery.status = WebhookDelivery.Status.MALFORMED
        delivery.error = str(exc)
        created = 0
    except DatabaseError:
        # The connection itself may be gone: let the request fail (5xx) so Meta retries.
        raise
    except Exception as exc:  # a bug must not lose the delivery: keep it with the error
        logger.exception("Processing webhook delivery %s failed", delivery.pk)
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.error = f"{exc.__class__.__name__}: {exc}"
        delivery.changes_count = 0
        created = 0
    delivery.leads_created = already + created
    delivery.processed_at = timezone.now()
    delivery.save(
        update_fields=[
            "signature_valid",
            "status",
            "error",
            "changes_count",
            "leads_created",
            "processed_at",
        ]
    )


def _process(delivery: WebhookDelivery) -> int:
    """Turn the delivery's leadgen changes into lead rows; returns how many were new."""
    payload = parse_payload(bytes(delivery.body))
    changes, problems = leadgen_changes(payload)
    delivery.changes_count = len(changes)
    delivery.error = "\n".join(problems)
    if not changes:
        delivery.status = (
            WebhookDelivery.Status.PROCESSED if problems else WebhookDelivery.Status.IGNORED
        )
        return 0
    created = create_webhook_leads(changes, delivery=delivery)
    delivery.status = WebhookDelivery.Status.PROCESSED
    queue.enqueue_fetches_on_commit(created)
    return len(created)


def _ensure_rows(
    model: type[Page] | type[Form],
    field: str,
    wanted: Mapping[str, dict[str, object]],
    read: Callable[[QuerySet], dict[str, Any]],
) -> dict[str, Any]:
    """Rows keyed by a Meta id (`read` shapes them: instances or pks), inserting the missing
    ones first with their `wanted` values. Safe under concurrency: the unique constraint
    absorbs a race and the rows are read back."""
    if not wanted:
        return {}
    rows = read(model.objects.filter(**{f"{field}__in": wanted}).order_by())
    missing = wanted.keys() - rows.keys()
    if missing:
        model.objects.bulk_create(
            [model(**{field: meta_id}, **wanted[meta_id]) for meta_id in missing],
            ignore_conflicts=True,
        )
        rows.update(read(model.objects.filter(**{f"{field}__in": missing}).order_by()))
    return rows


def _instances(field: str) -> Callable[[QuerySet], dict[str, Any]]:
    return lambda rows: {getattr(row, field): row for row in rows}


def _pks(field: str) -> Callable[[QuerySet], dict[str, Any]]:
    # Ids only: the webhook's hot path builds no model instances.
    return lambda rows: dict(rows.values_list(field, "pk"))


def ensure_pages(page_ids: Iterable[str]) -> dict[str, Page]:
    """Page rows for these ids, created on first sight."""
    return _ensure_rows(Page, "page_id", {pid: {} for pid in page_ids}, _instances("page_id"))


def ensure_forms(form_pages: Mapping[str, Page | None]) -> dict[str, Form]:
    """Form rows for these ids (each with its page), created on first sight."""
    wanted: dict[str, dict[str, object]] = {
        fid: {"page": page} for fid, page in form_pages.items() if fid
    }
    return _ensure_rows(Form, "form_id", wanted, _instances("form_id"))


def create_webhook_leads(
    changes: Iterable[LeadgenChange], *, delivery: WebhookDelivery
) -> list[int]:
    """Create a pending lead per leadgen id not seen before; return the ids created here.

    The unique leadgen_id is the guard against duplicates (Meta retries for 36 hours and
    two deliveries may race): rows are inserted with ignore_conflicts and the ones this
    delivery really created are found by `first_delivery`, so a lead that another delivery
    or a bulk read created first is never fetched twice on our account.

    This runs inside the webhook request, so it works with ids and values only (a
    single-lead delivery is six short statements).
    """
    by_id: dict[str, LeadgenChange] = {}
    for change in changes:
        by_id.setdefault(change.leadgen_id, change)
    existing = set(
        Lead.objects.filter(leadgen_id__in=by_id).order_by().values_list("leadgen_id", flat=True)
    )
    new = [c for lid, c in by_id.items() if lid not in existing]
    if not new:
        return []
    pages = _ensure_rows(Page, "page_id", {c.page_id: {} for c in new}, _pks("page_id"))
    forms = _ensure_rows(
        Form,
        "form_id",
        {c.form_id: {"page_id": pages[c.page_id]} for c in new if c.form_id},
        _pks("form_id"),
    )
    Lead.objects.bulk_create(
        [
            Lead(
                leadgen_id=c.leadgen_id,
                page_id=pages[c.page_id],
                form_id=forms.get(c.form_id),
                created_time=parse_meta_time(c.created_time),
                ad_id=c.ad_id,
                source=Lead.Source.WEBHOOK,
                fetch_status=Lead.FetchStatus.PENDING,
                first_delivery=delivery,
            )
            for c in new
        ],
        ignore_conflicts=True,
    )
    return list(
        Lead.objects.filter(first_delivery=delivery, leadgen_id__in=[c.leadgen_id for c in new])
        .order_by()
        .values_list("pk", flat=True)
    )


__all__ = [
    "MalformedPayload",
    "NotReprocessable",
    "ensure_forms",
    "ensure_pages",
    "kept_headers",
    "receive_delivery",
    "reprocess_delivery",
]
