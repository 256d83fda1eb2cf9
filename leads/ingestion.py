"""Webhook ingestion: store the raw delivery, verify it, turn leadgen changes into lead rows.

No Graph call happens here: a lead row is created from the change alone and its fetch is
queued after commit, so Meta gets its 200 in milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from core.db import tasks
from core.db.inserts import PreparedInsert, PreparedInstance
from core.db.writes import WriteTransaction, write_transaction
from leads import throttle
from leads.fetching import FETCH_CHUNK
from leads.keys import KEYS
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
    "HTTP_TRANSFER_ENCODING",
    "HTTP_USER_AGENT",
    "HTTP_X_HUB_SIGNATURE_256",
    "HTTP_X_HUB_SIGNATURE",
    "HTTP_X_FORWARDED_FOR",
    "REMOTE_ADDR",
)
# Each kept header is cut to this many characters: their values are the sender's to choose
# (a valid signature header has 71).
HEADER_MAX_CHARS = 1024
# Of a delivery whose signature fails, the first bytes kept (with its size and SHA-256):
# enough to tell what it was, and little enough that such posts cannot fill the disk.
INVALID_BODY_KEPT_BYTES = 4096


def kept_headers(meta: Mapping[str, object]) -> dict[str, str]:
    return {key: str(meta[key])[:HEADER_MAX_CHARS] for key in KEPT_HEADERS if key in meta}


class Throttled(Exception):
    """A delivery whose signature fails, beyond the rate limits (`leads.throttle`): counted,
    not stored."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Retry after {retry_after} s")
        self.retry_after = retry_after


def receive_delivery(
    *, body: bytes, headers: Mapping[str, str], signature: str, client: str = ""
) -> WebhookDelivery:
    """Store one POST and, when its signature is valid, create a lead row per new leadgen id.

    A delivery whose signature fails is stored without its body beyond the first
    INVALID_BODY_KEPT_BYTES (its size and SHA-256 say what the rest was), and only within
    the rate limits of `leads.throttle` per `client` address and in total; beyond them
    nothing is written and Throttled is raised.

    The delivery row, its new leads and (with the ORM broker) their fetch task commit
    together, in one transaction. If creating the leads fails with a bug, that transaction
    rolls back and the delivery is stored alone with the error (status FAILED), so nothing
    is half-written and the failure stays visible. The view answers FAILED with a 5xx so
    Meta retries; database errors propagate for the same reason.

    The signature is checked, and the JSON read, on the very bytes object the INSERT stores,
    before the write: the delivery row is then written once, with its verdict, ahead of any
    lead row. This is the webhook's hot path: no savepoint (docs/performance.md#w6), and
    the statements of `core.db.writes`.
    """
    changes: list[LeadgenChange] = []
    if signature_is_valid(body, signature, settings.META_APP_SECRET):
        delivery = WebhookDelivery(
            body=body,
            headers=dict(headers),
            body_size=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
            signature_valid=True,
        )
        changes = _read(delivery)
    else:
        delivery = _invalid_delivery(body, headers=headers, client=client)
    try:
        _store(delivery, changes)
    except DatabaseError:
        KEYS.forget()  # in case a remembered page or form is what failed (a deleted row)
        raise
    except Exception as exc:  # a bug must not lose the delivery: keep it with the error
        logger.exception("Processing a webhook delivery failed")
        _failed(delivery, exc)
        delivery.pk = None  # its row was rolled back
        _store(delivery, [])
    return delivery


def _invalid_delivery(body: bytes, *, headers: Mapping[str, str], client: str) -> WebhookDelivery:
    retry_after = throttle.admit_invalid_delivery(client)
    if retry_after is not None:
        raise Throttled(retry_after)
    return WebhookDelivery(
        body=body[:INVALID_BODY_KEPT_BYTES],
        headers=dict(headers),
        body_size=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
        body_truncated=len(body) > INVALID_BODY_KEPT_BYTES,
        status=WebhookDelivery.Status.INVALID_SIGNATURE,
    )


def _store(delivery: WebhookDelivery, changes: list[LeadgenChange]) -> None:
    """The one write of a delivery, the same on every database: the delivery, a pending
    lead per new leadgen id and (when any was new) the fetch tasks, in one transaction
    (`core.db.writes`, which decides how each database runs it).

    Every value, and the fetch tasks' packages, are built before the transaction begins
    when this process knows the page and form (the usual case), so that on SQLite other
    writers wait only for the statements themselves. The tasks name every leadgen id of
    the delivery: they are built before anyone knows which are new, and a fetch claims
    only pending, due leads, so a stored lead is not fetched again on their account.
    """
    distinct = _distinct(changes)
    fetches = _fetch_tasks([change.leadgen_id for change in distinct])
    parent = PreparedInstance(delivery)  # with the outcome `_read` set
    with write_transaction() as write:
        leads = _lead_rows(distinct, write) if distinct else None
        write.write_delivery(
            parent=parent, children=leads, link="first_delivery_id", count="leads_created",
            tasks=fetches,
        )  # fmt: skip


def _lead_rows(changes: list[LeadgenChange], write: WriteTransaction) -> PreparedInsert:
    """The INSERT of a pending lead per change (distinct leadgen ids), its page and form
    keys from this process's cache; those it does not know are looked up, and the rows
    created, in `write`'s transaction (and remembered once it commits)."""
    pages = _keys(write, Page, "page_id", {c.page_id: {} for c in changes})
    forms = _keys(
        write, Form, "form_id",
        {c.form_id: {"page_id": pages[c.page_id]} for c in changes if c.form_id},
    )  # fmt: skip
    return PreparedInsert(
        Lead,
        [
            {
                "leadgen_id": c.leadgen_id,
                "page_id": pages[c.page_id],
                "form_id": forms.get(c.form_id),
                "created_time": parse_meta_time(c.created_time),
                "ad_id": c.ad_id,
            }
            for c in changes
        ],
        key="leadgen_id",
        common={"source": Lead.Source.WEBHOOK, "fetch_status": Lead.FetchStatus.PENDING},
        skip_existing=True,
    )


def _keys(
    write: WriteTransaction, model: type[Page] | type[Form], field: str,
    wanted: dict[str, dict[str, object]],
) -> dict[str, int]:  # fmt: skip
    found = KEYS.get(model, wanted)
    if len(found) < len(wanted):
        looked_up = write.ensure_keys(
            model, field, {key: values for key, values in wanted.items() if key not in found}
        )
        KEYS.remember_after_commit(model, looked_up, on_commit=write.on_commit)
        found.update(looked_up)
    return found


# Fetch tasks of webhook leads name them by leadgen id, not primary key: their packages
# are built before the rows (and their keys) exist.
FETCH_TASK = "leads.tasks.fetch_leads_by_leadgen_id"


def _fetch_tasks(leadgen_ids: list[str]) -> list[tasks.PreparedTask]:
    return [tasks.prepare(FETCH_TASK, chunk) for chunk in tasks.chunks(leadgen_ids, FETCH_CHUNK)]


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
        already = delivery.leads_created
        changes = _read(delivery)
        delivery.leads_created = already + (_create_leads(delivery, changes) if changes else 0)
        delivery.save(update_fields=OUTCOME_FIELDS)
    return delivery


# What processing decides about a delivery.
OUTCOME_FIELDS = ["status", "error", "changes_count", "leads_created", "processed_at"]


def _read(delivery: WebhookDelivery) -> list[LeadgenChange]:
    """Parse a signed delivery's body into its leadgen changes and set the outcome it will
    have if every new lead is then created: status, notes, counts. Never raises: a bug in
    parsing keeps the delivery, as FAILED with the error."""
    delivery.processed_at = timezone.now()
    try:
        changes, problems = leadgen_changes(parse_payload(bytes(delivery.body)))
    except MalformedPayload as exc:
        delivery.status = WebhookDelivery.Status.MALFORMED
        delivery.error = str(exc)
        delivery.changes_count = delivery.leads_created = 0
        return []
    except Exception as exc:  # a bug must not lose the delivery: keep it with the error
        logger.exception("Parsing a webhook delivery failed")
        _failed(delivery, exc)
        return []
    delivery.changes_count = len(changes)
    delivery.error = "\n".join(problems)
    delivery.status = (
        WebhookDelivery.Status.PROCESSED if changes or problems else WebhookDelivery.Status.IGNORED
    )
    # Optimistic: each distinct leadgen id is new. Corrected below when some were not.
    delivery.leads_created = len({change.leadgen_id for change in changes})
    return changes


def _failed(delivery: WebhookDelivery, exc: Exception) -> None:
    delivery.status = WebhookDelivery.Status.FAILED
    delivery.error = f"{exc.__class__.__name__}: {exc}"
    delivery.changes_count = 0
    delivery.leads_created = 0


def _create_leads(delivery: WebhookDelivery, changes: list[LeadgenChange]) -> int:
    """Create the changes' new leads and queue their fetch, in a savepoint; returns how
    many were new. A bug rolls the savepoint back and marks the delivery FAILED (returns
    0). For reprocessing, where the delivery row exists already: only the leads created
    here are queued."""
    try:
        with write_transaction() as write:  # a savepoint of the reprocess's transaction
            leads = _lead_rows(_distinct(changes), write)
            leads.set("first_delivery_id", delivery.pk)
            created = write.insert(leads)
            for task in _fetch_tasks(list(created)):
                task.enqueue_on_commit()
    except DatabaseError:
        # The connection itself may be gone: let the request fail (5xx) so Meta retries.
        raise
    except Exception as exc:  # a bug must not lose the delivery: keep it with the error
        logger.exception("Processing webhook delivery %s failed", delivery.pk)
        _failed(delivery, exc)
        return 0
    return len(created)


def _distinct(changes: Iterable[LeadgenChange]) -> list[LeadgenChange]:
    by_id: dict[str, LeadgenChange] = {}
    for change in changes:
        by_id.setdefault(change.leadgen_id, change)
    return list(by_id.values())


__all__ = [
    "MalformedPayload",
    "NotReprocessable",
    "Throttled",
    "kept_headers",
    "receive_delivery",
    "reprocess_delivery",
]
