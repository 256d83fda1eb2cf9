"""Completing a lead from the Graph API, with the lead row as the unit of work.

A lead row's `fetch_status` says what happens next:

    pending ──claim──▶ fetching ──▶ complete
       ▲                  │ retryable: back to pending with `fetch_after` (back-off), or
       │                  │            failed after LEAD_FETCH_MAX_ATTEMPTS
       │                  │ token rejected (190): parked, with every pending lead of the page
       └──── resume ◀── parked            (a new token resumes them)
                          failed: bad request / permission / attempts exhausted; visible to
                          admins, and reconciliation (bulk read) completes it later.

Claims are conditional UPDATEs, so a duplicate task or a second worker never fetches a
lead that another already holds. A claim left behind by a killed worker goes stale and is
released by `release_stale_claims`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from core.db import tasks
from core.ids import meta_id
from leads import crypto
from leads.crypto import TokenDecryptionError
from leads.graph import GraphClient, GraphError, RetryableError, ThrottledError, TokenError
from leads.keys import ensure_forms
from leads.lead_data import lead_columns, within_depth
from leads.models import Lead, Page
from leads.pipeline import enter_pipeline
from leads.redaction import redact

logger = logging.getLogger(__name__)

Status = Lead.FetchStatus

# A claim older than this belongs to a worker that died: django-q2 kills a task after its
# `timeout`, so nothing legitimate holds a claim much longer.
# Lead ids per fetch task: small enough that workers share a large delivery, large enough
# that a 1000-lead delivery does not write 1000 broker rows inside the webhook request.
FETCH_CHUNK = 25
STALE_CLAIM = dt.timedelta(seconds=int(settings.Q_CLUSTER["timeout"]) + 60)  # type: ignore[call-overload]
MAX_DEFERRAL = dt.timedelta(hours=1)


def claim(lead_pk: int) -> Lead | None:
    """Take a pending, due lead for fetching; None if it is not pending or not due."""
    now = timezone.now()
    taken = (
        Lead.objects.filter(pk=lead_pk, fetch_status=Status.PENDING)
        .filter(Q(fetch_after__isnull=True) | Q(fetch_after__lte=now))
        .update(
            fetch_status=Status.FETCHING,
            fetch_claimed_at=now,
            fetch_attempts=F("fetch_attempts") + 1,
            updated_at=now,
        )
    )
    if not taken:
        return None
    return Lead.objects.select_related("page").get(pk=lead_pk)


def _still_ours(lead: Lead) -> Q:
    # A claim is ours while the row is FETCHING with our claim time; if a stale-claim sweep
    # handed it to another worker meanwhile, our result is dropped.
    return Q(pk=lead.pk, fetch_status=Status.FETCHING, fetch_claimed_at=lead.fetch_claimed_at)


def _release(lead: Lead, **values: object) -> bool:
    return bool(Lead.objects.filter(_still_ours(lead)).update(updated_at=timezone.now(), **values))


def deferral(attempt: int, retry_after: float | None = None) -> dt.timedelta:
    """Exponential back-off with jitter, never shorter than what Meta asked for."""
    base = settings.LEAD_FETCH_BACKOFF * (2 ** max(attempt - 1, 0))
    seconds = min(base, MAX_DEFERRAL.total_seconds()) * random.uniform(0.8, 1.2)  # noqa: S311
    return dt.timedelta(seconds=max(seconds, retry_after or 0))


def fetch_lead(
    lead_pk: int,
    *,
    client: GraphClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Lead | None:
    """Fetch one lead if it is due. Returns the lead (any outcome) or None if not claimed."""
    lead = claim(lead_pk)
    if lead is None:
        return None
    page = lead.page
    try:
        token = page.effective_token() if page else settings.META_ACCESS_TOKEN
    except TokenDecryptionError as exc:
        _park_page(lead, page, reason=str(exc), token="")
        return lead
    if not token:
        _park_page(
            lead,
            page,
            reason="No access token: run connect_page for this page or set META_ACCESS_TOKEN.",
            token="",
        )
        return lead

    client = client or GraphClient()
    inline_retries = settings.LEAD_FETCH_INLINE_RETRIES
    for attempt in range(inline_retries + 1):
        try:
            data = client.get_lead(lead.leadgen_id, token=token)
        except ThrottledError as exc:
            # Over a rate limit, retrying now only extends the block: wait as told.
            _defer(lead, exc)
            return lead
        except RetryableError as exc:
            if attempt < inline_retries:
                # Most 5xx and timeouts are blips: a second or two usually clears them.
                sleep(settings.LEAD_FETCH_INLINE_BACKOFF * (2**attempt))
                continue
            _defer(lead, exc)
            return lead
        except TokenError as exc:
            _park_page(lead, page, reason=str(exc), token=token)
            return lead
        except GraphError as exc:
            # Bad parameter (100), permission (10, 2xx) and other 4xx: retrying cannot help.
            _fail(lead, exc)
            return lead
        else:
            complete(lead, data)
            return lead
    return lead  # unreachable: every path of the last attempt returns


def complete(lead: Lead, data: dict) -> bool:
    """Store the Graph answer on a claimed lead and put it in the pipeline, atomically."""
    # One lead: cutting any absurd nesting costs nothing next to the request for it.
    columns = within_depth(lead_columns(data))
    form_id = meta_id(data.get("form_id")) or ""
    with transaction.atomic():
        if form_id and (lead.form is None or lead.form.form_id != form_id):
            columns["form"] = ensure_forms({form_id: lead.page})[form_id]
        now = timezone.now()
        if not _release(
            lead,
            **columns,
            fetch_status=Status.COMPLETE,
            fetch_error="",
            fetch_after=None,
            fetched_at=now,
        ):
            logger.info("Lead %s was released by another worker; result dropped", lead.pk)
            return False
        for name, value in columns.items():
            setattr(lead, name, value)
        lead.fetch_status = Status.COMPLETE
        lead.fetched_at = now
        enter_pipeline(lead)
    return True


def _defer(lead: Lead, exc: GraphError) -> None:
    if lead.fetch_attempts >= settings.LEAD_FETCH_MAX_ATTEMPTS:
        _fail(lead, exc, note=f"gave up after {lead.fetch_attempts} attempts")
        return
    wait = deferral(lead.fetch_attempts, exc.retry_after)
    logger.warning("Lead %s fetch deferred %.0fs: %s", lead.pk, wait.total_seconds(), exc)
    _release(
        lead,
        fetch_status=Status.PENDING,
        fetch_after=timezone.now() + wait,
        fetch_error=redact(f"Attempt {lead.fetch_attempts}: {exc}"),
    )
    lead.fetch_status = Status.PENDING


def _fail(lead: Lead, exc: GraphError, *, note: str = "") -> None:
    logger.warning("Lead %s fetch failed: %s", lead.pk, exc)
    message = redact(f"{exc} ({note})" if note else str(exc))
    _release(lead, fetch_status=Status.FAILED, fetch_error=message, fetch_after=None)
    lead.fetch_status = Status.FAILED
    lead.fetch_error = message


def _park_page(lead: Lead, page: Page | None, *, reason: str, token: str) -> None:
    """The token cannot be used: mark the page, and park its waiting leads until a new one."""
    reason = redact(reason, token)
    with transaction.atomic():
        _release(lead, fetch_status=Status.PARKED, fetch_error=reason, fetch_after=None)
        lead.fetch_status = Status.PARKED
        lead.fetch_error = reason
        if page is not None:
            reject_page_token(page, reason=reason, token=token)


def reject_page_token(page: Page, *, reason: str, token: str) -> int:
    """Meta rejected `token` (190/102), or there is none: show it on the page and park the
    page's pending leads until a new token arrives. Returns how many leads were parked.

    Shared by the lead fetch and the bulk read, so both react to a dead token the same
    way. With an empty `token` (none configured, or undecryptable) the page is not marked
    invalid: there is no token to blame, and any new one resumes the leads.
    """
    now = timezone.now()
    reason = redact(reason, token)
    values: dict[str, object] = {"token_error": reason, "token_checked_at": now}
    if token:
        values |= {
            "token_status": Page.TokenStatus.INVALID,
            "rejected_token_fingerprint": crypto.fingerprint(token),
        }
    with transaction.atomic():
        Page.objects.filter(pk=page.pk).update(updated_at=now, **values)
        parked = Lead.objects.filter(page=page, fetch_status=Status.PENDING).update(
            fetch_status=Status.PARKED, fetch_error=reason, fetch_after=None, updated_at=now
        )
    for name, value in values.items():
        setattr(page, name, value)
    logger.warning("Page %s: token unusable; %d more leads parked", page.page_id, parked)
    return parked


def usable_token(page: Page | None) -> str:
    """The token to read `page` with, or '' when there is none worth trying: none is
    configured, it cannot be decrypted, or it is the very token Meta rejected last."""
    if page is None:
        return settings.META_ACCESS_TOKEN
    try:
        token = page.effective_token()
    except TokenDecryptionError:
        return ""
    if (
        token
        and page.token_status == Page.TokenStatus.INVALID
        and crypto.fingerprint(token) == page.rejected_token_fingerprint
    ):
        return ""
    return token


def enqueue_fetches_on_commit(lead_ids: Iterable[int]) -> None:
    """Queue the fetch of these leads, FETCH_CHUNK to a task, with the commit."""
    for chunk in tasks.chunks(lead_ids, FETCH_CHUNK):
        tasks.enqueue_on_commit("leads.tasks.fetch_leads", chunk)


def resume_page(page: Page) -> int:
    """Requeue the page's parked leads (after a new token). Returns how many."""
    with transaction.atomic():
        ids = list(
            Lead.objects.filter(page=page, fetch_status=Status.PARKED).values_list("pk", flat=True)
        )
        Lead.objects.filter(pk__in=ids).update(
            fetch_status=Status.PENDING,
            fetch_attempts=0,
            # Due now: if the queued task is lost, the next sweep picks them up.
            fetch_after=timezone.now(),
            fetch_error="",
            updated_at=timezone.now(),
        )
        enqueue_fetches_on_commit(ids)
    return len(ids)


def refetch(leads: QuerySet[Lead], *, include_complete: bool = False) -> int:
    """Queue a fresh fetch of `leads` (the admin's "re-fetch from Meta"); returns how many.

    Pending, failed and parked leads go back to pending, due now, with their attempts
    reset. A complete lead is fetched again only with `include_complete` (an explicit
    refresh of data Meta already gave us); a lead a worker holds (fetching) is left to it.
    Safe to repeat: a lead already queued and still pending is queued again, but the claim
    lets only one task fetch it, and a task arriving after the fetch finds it complete.
    """
    statuses = [Status.PENDING, Status.FAILED, Status.PARKED]
    if include_complete:
        statuses.append(Status.COMPLETE)
    with transaction.atomic():
        chosen = leads.order_by().filter(fetch_status__in=statuses)
        ids = list(chosen.values_list("pk", flat=True))
        now = timezone.now()
        # Conditional on the status again: a lead claimed meanwhile stays with its worker.
        Lead.objects.filter(pk__in=ids, fetch_status__in=statuses).update(
            fetch_status=Status.PENDING,
            fetch_attempts=0,
            # Due now: if the queued task is lost, the next sweep picks the lead up.
            fetch_after=now,
            fetch_error="",
            updated_at=now,
        )
        enqueue_fetches_on_commit(ids)
    return len(ids)


def release_stale_claims() -> int:
    """Hand back leads whose worker died mid-fetch (e.g. killed); they are fetched again."""
    cutoff = timezone.now() - STALE_CLAIM
    now = timezone.now()
    return Lead.objects.filter(fetch_status=Status.FETCHING, fetch_claimed_at__lt=cutoff).update(
        # fetch_after=now makes them due for the sweep that follows at once.
        fetch_status=Status.PENDING,
        fetch_after=now,
        updated_at=now,
    )


def resume_pages_with_new_tokens() -> int:
    """Resume parked pages whose effective token changed since Meta rejected one (for
    instance META_ACCESS_TOKEN was rotated) or that had no token and now have one."""
    resumed = 0
    parked_pages = Page.objects.filter(leads__fetch_status=Status.PARKED).distinct()
    for page in parked_pages:
        try:
            token = page.effective_token()
        except TokenDecryptionError:
            continue
        if token and crypto.fingerprint(token) != page.rejected_token_fingerprint:
            resumed += resume_page(page)
    return resumed


def due_lead_ids(*, limit: int = 5000) -> list[int]:
    """Pending leads that are due and were not just queued by their webhook."""
    now = timezone.now()
    return list(
        Lead.objects.filter(fetch_status=Status.PENDING)
        .filter(
            Q(fetch_after__lte=now)
            | Q(fetch_after__isnull=True, created_at__lt=now - dt.timedelta(minutes=1))
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )


def lead_pks(leadgen_ids: Iterable[str]) -> list[int]:
    return list(
        Lead.objects.filter(leadgen_id__in=list(leadgen_ids))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def fetch_many(lead_pks: Iterable[int], *, client: GraphClient | None = None) -> None:
    client = client or GraphClient()
    for pk in lead_pks:
        fetch_lead(pk, client=client)
