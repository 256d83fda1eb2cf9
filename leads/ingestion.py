"""Webhook ingestion: store the raw delivery, verify it, turn leadgen changes into lead rows.

No Graph call happens here: a lead row is created from the change alone and its fetch is
queued after commit, so Meta gets its 200 in milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from leads import queue, sql, throttle
from leads.dblock import immediate_transaction, serialized_writes
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
    lead row. This is the webhook's hot path (see `leads.sql`): no savepoint, and single
    statements while the write lock is held.
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
        forget_known_pks()  # in case a remembered page or form is what failed
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
    # Every value, and the fetch tasks' packages, are built before anything is written, so
    # that on SQLite other writers wait only for the statements themselves.
    new_delivery = sql.PreparedInstance(delivery)  # with the outcome `_read` expects
    new_leads = prepare_remembered_leads(changes) if changes else None
    # For the usual case: every leadgen id is new (`_read` counted them).
    fetches = _fetch_tasks([c.leadgen_id for c in _distinct(changes)]) if changes else []
    if new_leads is not None and len(fetches) == 1 and connection.vendor == "postgresql":
        _store_in_one_statement(new_delivery, new_leads, fetches[0])
        return
    if connection.vendor == "sqlite" and not connection.in_atomic_block and new_leads is not None:
        _store_under_the_write_lock(delivery, new_delivery, new_leads, changes, fetches)
        return
    # On SQLite, wait for the write lock here (woken at once) rather than in SQLite's
    # sleeping busy handler.
    with serialized_writes(), transaction.atomic():
        new_delivery.execute()
        if changes:
            created = create_webhook_leads(changes, delivery=delivery, prepared=new_leads)
            if len(created) != delivery.leads_created:  # some leadgen ids were stored already
                delivery.leads_created = len(created)
                delivery.save(update_fields=["leads_created"])
                fetches = _fetch_tasks(list(created))
            for task in fetches:
                task.enqueue_on_commit()


def _store_in_one_statement(
    new_delivery: sql.PreparedInstance,
    new_leads: sql.PreparedInsert,
    fetch: queue.PreparedTask,
) -> None:
    """PostgreSQL: the delivery, its new leads and (ORM broker) their fetch task in one
    statement, atomic on its own, instead of a transaction of five round trips.

    The task row is written when any lead was new. It names every leadgen id of the
    delivery, so when some were stored already it names those too: a fetch claims only
    pending, due leads, so they are not fetched on its account (their own task, or the
    sweep, has them).
    """
    created = sql.insert_with_parent(
        new_leads, new_delivery, link="first_delivery_id", count="leads_created", then=fetch.row
    )
    if fetch.row is None and created:  # a broker outside the database: pushed after commit
        tasks = [fetch] if len(created) == len(new_leads.params) else _fetch_tasks(list(created))
        for task in tasks:
            task.enqueue_on_commit()


def _store_under_the_write_lock(
    delivery: WebhookDelivery,
    new_delivery: sql.PreparedInstance,
    new_leads: sql.PreparedInsert,
    changes: list[LeadgenChange],
    fetches: list[queue.PreparedTask],
) -> None:
    """SQLite, pages and forms known: the delivery, its new leads and (ORM broker) their
    fetch tasks between BEGIN IMMEDIATE and COMMIT on one cursor, while holding the write
    lock (`immediate_transaction`: no `atomic()`, no cursor per statement). Tasks for
    another broker are pushed once that COMMIT is done."""
    after_commit: list[queue.PreparedTask] = []
    with immediate_transaction() as cursor:
        new_delivery.execute(cursor)
        created = create_webhook_leads(
            changes, delivery=delivery, prepared=new_leads, cursor=cursor
        )
        if len(created) != delivery.leads_created:  # some leadgen ids were stored already
            delivery.leads_created = len(created)
            delivery.save(update_fields=["leads_created"])  # an UPDATE, in this transaction
            fetches = _fetch_tasks(list(created))
        for task in fetches:
            if task.row is not None:
                task.row.execute(cursor)
            else:
                after_commit.append(task)
    for task in after_commit:
        task.enqueue()


# Fetch tasks of webhook leads name them by leadgen id, not primary key: their packages
# are built before the rows (and their keys) exist.
FETCH_TASK = "leads.tasks.fetch_leads_by_leadgen_id"


def _fetch_tasks(leadgen_ids: list[str]) -> list[queue.PreparedTask]:
    return [queue.prepare(FETCH_TASK, chunk) for chunk in queue.chunks(leadgen_ids)]


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
    """Create the changes' new leads in a savepoint and queue their fetch; returns how many
    were new. A bug rolls the savepoint back and marks the delivery FAILED (returns 0).
    For reprocessing, where the delivery row exists already."""
    try:
        with transaction.atomic():
            created = create_webhook_leads(changes, delivery=delivery)
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


def _ensure_rows(
    model: type[Page] | type[Form],
    field: str,
    wanted: Mapping[str, dict[str, object]],
    read: Callable[[Any, str, Collection[str]], dict[str, Any]],
) -> dict[str, Any]:
    """Rows keyed by a Meta id (`read` shapes them: instances or pks), inserting the missing
    ones first with their `wanted` values. Safe under concurrency: the unique constraint
    absorbs a race and the rows are read back."""
    if not wanted:
        return {}
    rows = read(model, field, wanted.keys())
    missing = wanted.keys() - rows.keys()
    if missing:
        model.objects.bulk_create(
            [model(**{field: meta_id}, **wanted[meta_id]) for meta_id in missing],
            ignore_conflicts=True,
        )
        rows.update(read(model, field, missing))
    return rows


def _instances(model: Any, field: str, values: Collection[str]) -> dict[str, Any]:
    rows = model.objects.filter(**{f"{field}__in": values}).order_by()
    return {getattr(row, field): row for row in rows}


# {(model, Meta id): pk} of pages and forms this process has seen committed, so that a
# webhook from a known page and form does not look them up again. Rows are never given
# another Meta id and keys are never reused; a row deleted since (only possible while it
# has no leads) makes the lead INSERT fail its foreign key at COMMIT: the webhook answers
# 503, this is emptied (`forget_known_pks`), and Meta's retry looks the row up afresh.
_known: dict[tuple[type[Page] | type[Form], str], int] = {}
KNOWN_MAX = 10_000


def _known_pks(
    model: type[Page] | type[Form], field: str, wanted: Mapping[str, dict[str, object]]
) -> dict[str, int]:
    found = {meta_id: _known[model, meta_id] for meta_id in wanted if (model, meta_id) in _known}
    missing = {meta_id: values for meta_id, values in wanted.items() if meta_id not in found}
    if missing:
        looked_up = _ensure_rows(model, field, missing, sql.pks_by)
        found.update(looked_up)

        def remember() -> None:  # only rows that are committed
            if len(_known) > KNOWN_MAX:
                _known.clear()
            _known.update({(model, meta_id): pk for meta_id, pk in looked_up.items()})

        transaction.on_commit(remember)
    return found


def forget_known_pks() -> None:
    _known.clear()


def ensure_pages(page_ids: Iterable[str]) -> dict[str, Page]:
    """Page rows for these ids, created on first sight."""
    return _ensure_rows(Page, "page_id", {pid: {} for pid in page_ids}, _instances)


def ensure_forms(form_pages: Mapping[str, Page | None]) -> dict[str, Form]:
    """Form rows for these ids (each with its page), created on first sight."""
    wanted: dict[str, dict[str, object]] = {
        fid: {"page": page} for fid, page in form_pages.items() if fid
    }
    return _ensure_rows(Form, "form_id", wanted, _instances)


def _distinct(changes: Iterable[LeadgenChange]) -> list[LeadgenChange]:
    by_id: dict[str, LeadgenChange] = {}
    for change in changes:
        by_id.setdefault(change.leadgen_id, change)
    return list(by_id.values())


def _leads_insert(
    changes: list[LeadgenChange], pages: Mapping[str, int], forms: Mapping[str, int]
) -> sql.PreparedInsert:
    return sql.PreparedInsert(
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


def prepare_webhook_leads(changes: Iterable[LeadgenChange]) -> sql.PreparedInsert:
    """The INSERT of a pending lead per distinct leadgen id, its values adapted now (see
    `create_webhook_leads`); pages and forms seen for the first time are created."""
    distinct = _distinct(changes)
    pages = _known_pks(Page, "page_id", {c.page_id: {} for c in distinct})
    forms = _known_pks(
        Form, "form_id", {c.form_id: {"page_id": pages[c.page_id]} for c in distinct if c.form_id}
    )
    return _leads_insert(distinct, pages, forms)


def prepare_remembered_leads(changes: Iterable[LeadgenChange]) -> sql.PreparedInsert | None:
    """`prepare_webhook_leads` without touching the database, when this process remembers
    every page and form of the changes; else None. The webhook prepares its rows so
    before it takes the write lock."""
    distinct = _distinct(changes)
    try:
        pages = {c.page_id: _known[Page, c.page_id] for c in distinct}
        forms = {c.form_id: _known[Form, c.form_id] for c in distinct if c.form_id}
    except KeyError:
        return None
    return _leads_insert(distinct, pages, forms)


def create_webhook_leads(
    changes: Iterable[LeadgenChange],
    *,
    delivery: WebhookDelivery,
    prepared: sql.PreparedInsert | None = None,
    cursor: Any = None,
) -> dict[str, int]:
    """Create a pending lead per leadgen id not seen before; return {leadgen id: pk} of the
    leads created here.

    The unique leadgen_id is the guard against duplicates (Meta retries for 36 hours and
    two deliveries may race): the INSERT skips ids already stored and reports the rows it
    really inserted, so a lead that another delivery or a bulk read created first is never
    fetched twice on our account.

    This runs inside the webhook request, holding the write lock, so it sends single
    statements (`leads.sql`): a single-lead delivery from a known page and form is one,
    `prepared` ahead by `prepare_webhook_leads`.
    """
    insert = prepared or prepare_webhook_leads(changes)
    insert.set("first_delivery_id", delivery.pk)
    return insert.execute(cursor)


__all__ = [
    "MalformedPayload",
    "NotReprocessable",
    "Throttled",
    "ensure_forms",
    "ensure_pages",
    "kept_headers",
    "receive_delivery",
    "reprocess_delivery",
]
