"""Sending conversion events to Meta's Conversions API, each exactly once, in full batches.

The send task (`send_coalesced`, queued after commit and by the minute schedule) runs as
the one sender: it takes the sender's lease (capi.lease) or, if another run holds it, ends
at once. While it holds the lease it sends in a loop, and before each claim it lets a batch
fill: when fewer than CAPI_MAX_BATCH events are due and the oldest was written less than
CAPI_BATCH_WINDOW seconds ago, it waits (never longer than the window; a full batch goes
at once). So a burst of moves leaves full batches, and a lone move goes about a window
after it was made. The loop ends when nothing is due, or after its time budget (well below
django-q's task timeout), when it queues its own continuation.

One run (`send_pending`), inside that loop or from `manage.py send_conversions` (no lease,
no window: it sends at once):

1. releases claims of runs that died, expires events too old for Meta (7 days), and
   resumes a paused sender whose dataset or token has changed since Meta refused it;
2. stops there, with the reason recorded, while no dataset or token is configured or the
   sender is paused; events wait as `pending`;
3. claims due pending events with a conditional UPDATE (`pending` -> `sending` with this
   run's claim token), so two runs never take the same row, and POSTs them per dataset,
   at most CAPI_MAX_BATCH (1000) to a request;
4. classifies Meta's answer:
   - accepted: the batch is `sent`, linked to its SendAttempt (a trigger keeps it so);
   - one bad event (code 100 and the like): Meta refuses the whole batch, so it is split,
     around the index Meta names (`data[3]`) when it names one, else in halves, until the
     good events have gone and the bad one, alone, is `failed` with Meta's message;
   - transient (5xx, timeouts, throttling): back to `pending` with exponential back-off;
     after CAPI_MAX_ATTEMPTS transient failures, `failed` (throttling never counts);
   - token refused (190), dataset missing or no permission: the sender pauses with the
     reason visible in the admin, and the events wait.

Every POST is recorded as a SendAttempt. Whatever ends a run early (an error, the time
budget, a lapsed lease), its remaining claims are handed back in `finally`.

The one gap in "exactly once" is a POST whose outcome we cannot know: a read timeout, or a
worker killed between Meta's 200 and our UPDATE. Such events are sent again (Meta does not
deduplicate server events), which we accept over losing them.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.utils import timezone

from capi.lease import Lease, clear_send_request
from capi.models import ConversionEvent, SendAttempt, SenderState
from capi.outbox import CHUNK
from capi.user_data import LEAD_FIELDS, build_user_data
from leads import crypto
from leads.graph import (
    BadParameterError,
    GraphClient,
    GraphError,
    PermissionDeniedError,
    RetryableError,
    ThrottledError,
    TokenError,
)
from leads.models import Lead
from leads.redaction import redact

logger = logging.getLogger(__name__)

Status = ConversionEvent.Status
Outcome = SendAttempt.Outcome

META_BATCH_LIMIT = 1000  # Meta's own limit per request
# django-q2 kills a task after its `timeout`; a claim older than that (plus slack) belongs
# to a run that died. A task run stops claiming after half the timeout, so it finishes
# (and hands back what it holds) well before it could be killed.
STALE_CLAIM = dt.timedelta(seconds=int(settings.Q_CLUSTER["timeout"]) + 60)  # type: ignore[call-overload]
TASK_TIME_BUDGET = float(settings.Q_CLUSTER["timeout"]) / 2  # type: ignore[arg-type]
# An event this close to the 7-day limit is expired rather than sent: Meta refuses the
# whole batch for one event past the limit, and the POST takes time.
EXPIRY_MARGIN = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=1)
# Meta names the offending event as `data[3]` in the error message.
BAD_EVENT_INDEX_RE = re.compile(r"\bdata\[(\d+)\]")
TIMESTAMP_TOO_OLD_SUBCODE = 2804003
OBJECT_MISSING_SUBCODE = 33
# How often a sender waiting for a batch to fill looks at the outbox again.
WINDOW_POLL = 0.05


@dataclass
class SendSummary:
    posts: int = 0
    sent: int = 0
    failed: int = 0
    expired: int = 0
    retrying: int = 0
    released: int = 0
    # Pending events left after the run (not yet due, or waiting for `reason`).
    waiting: int = 0
    reason: str = ""
    # The run stopped for its time budget with events still due.
    more: bool = False
    # The run stopped early for Meta's answer (an outage, throttling, a pause) or because
    # its lease lapsed: the sender does not loop on it.
    interrupted: bool = False
    # Another sender held the lease: this run did nothing.
    skipped: bool = False
    # Seconds spent letting batches fill (CAPI_BATCH_WINDOW).
    waited: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: SendSummary) -> None:
        """Fold a later run of the same sender into this summary."""
        for name in ("posts", "sent", "failed", "expired", "retrying", "released", "waited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.waiting, self.reason = other.waiting, other.reason
        self.more = other.more
        self.interrupted = self.interrupted or other.interrupted


# --- Configuration and pause -----------------------------------------------------------------


def max_batch() -> int:
    return max(1, min(int(settings.CAPI_MAX_BATCH), META_BATCH_LIMIT))


def batch_window() -> float:
    return max(0.0, float(getattr(settings, "CAPI_BATCH_WINDOW", 0.0)))


def batch_quiet() -> float:
    """Seconds without a new event after which a part-full batch goes (0: no such rule)."""
    return max(0.0, float(getattr(settings, "CAPI_BATCH_QUIET", 0.0)))


def config_fingerprint(dataset: str, token: str) -> str:
    """Identifies the dataset and token Meta refused, without storing the token."""
    return crypto.fingerprint(f"{dataset}\x00{token}")


def missing_configuration() -> str:
    missing = [
        name for name in ("META_DATASET_ID", "META_ACCESS_TOKEN") if not getattr(settings, name, "")
    ]
    if not missing:
        return ""
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"{' and '.join(missing)} {verb} not set: conversion events wait (pending) until "
        "a dataset and a token are configured."
    )


def blocker(state: SenderState | None = None) -> str:
    """Why pending events cannot be sent right now; '' when they can."""
    missing = missing_configuration()
    if missing:
        return missing
    state = state or SenderState.current()
    if state.paused_fingerprint and state.paused_fingerprint == config_fingerprint(
        settings.META_DATASET_ID, settings.META_ACCESS_TOKEN
    ):
        return state.paused_reason or "Sending is paused."
    return ""


def pause(*, reason: str, dataset: str, token: str) -> None:
    now = timezone.now()
    SenderState.current()
    SenderState.objects.filter(pk=SenderState.SINGLETON_ID).update(
        paused_reason=reason,
        paused_at=now,
        paused_fingerprint=config_fingerprint(dataset, token),
        updated_at=now,
    )
    logger.warning("Conversions API sending paused: %s", reason)


def resume() -> bool:
    """Clear a pause (an admin fixed the token's permissions, say). True if one was set."""
    return bool(
        SenderState.objects.filter(pk=SenderState.SINGLETON_ID)
        .exclude(paused_fingerprint="")
        .update(paused_reason="", paused_at=None, paused_fingerprint="", updated_at=timezone.now())
    )


def _resume_if_reconfigured(state: SenderState) -> SenderState:
    dataset, token = settings.META_DATASET_ID, settings.META_ACCESS_TOKEN
    if (
        state.paused_fingerprint
        and dataset
        and token
        and state.paused_fingerprint != config_fingerprint(dataset, token)
    ):
        logger.info("Conversions API: dataset or token changed since the pause; resuming")
        resume()
        state.refresh_from_db()
    return state


# --- The event as Meta sees it ---------------------------------------------------------------


def meta_event(event: ConversionEvent) -> dict[str, Any]:
    """The exact shape of SPEC.md ("Pipeline and conversion events")."""
    return {
        "event_name": event.event_name,
        "event_time": int(event.event_time.timestamp()),
        "action_source": "system_generated",
        "event_id": event.event_id,
        "user_data": event.user_data,
        "custom_data": {"event_source": "crm", "lead_event_source": settings.CRM_NAME},
    }


# --- Row transitions (every one a conditional UPDATE) ---------------------------------------


def expiry_cutoff(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=settings.CAPI_EVENT_MAX_AGE_DAYS) + EXPIRY_MARGIN


def _expired_message() -> str:
    return (
        f"Not sent: older than {settings.CAPI_EVENT_MAX_AGE_DAYS} days, and Meta refuses "
        "events that old."
    )


def expire_old_events(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    return ConversionEvent.objects.filter(
        status=Status.PENDING, event_time__lt=expiry_cutoff(now)
    ).update(status=Status.EXPIRED, last_error=_expired_message(), updated_at=now)


def release_stale_claims(*, now: dt.datetime | None = None) -> int:
    """Hand back events claimed by a run that died (killed worker). They are sent again:
    if that run's POST did reach Meta, this is the one case of a duplicate, which we
    accept over losing the event."""
    now = now or timezone.now()
    return ConversionEvent.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - STALE_CLAIM
    ).update(status=Status.PENDING, claim_token="", claimed_at=None, updated_at=now)


def retry_failed(ids: Iterable[int]) -> int:
    """Re-pend failed events (an admin fixed the lead's data, or Meta's outage is over).
    Only `failed` rows move: a sent event is never sent again, and an expired one would be
    refused by Meta."""
    return ConversionEvent.objects.filter(pk__in=list(ids), status=Status.FAILED).update(
        status=Status.PENDING,
        failures=0,
        next_attempt_at=None,
        last_error="",
        updated_at=timezone.now(),
    )


def due_events(*, due_before: dt.datetime) -> QuerySet[ConversionEvent]:
    return (
        ConversionEvent.objects.filter(status=Status.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=due_before))
        .order_by("event_time", "pk")
    )


def _sleep(seconds: float) -> None:
    """The sender's only sleep (tests replace it to run on a fake clock)."""
    time.sleep(seconds)


def wait_for_batch(
    *,
    window: float,
    due_before: dt.datetime,
    keep_going: Callable[[], bool] = lambda: True,
    quiet: float | None = None,
) -> float:
    """Hold the next claim back while a batch is still filling: fewer than a full batch is
    due, the oldest due event was written less than `window` seconds ago, and (with a
    `quiet`, CAPI_BATCH_QUIET by default) a new event came within the last `quiet`
    seconds. Returns the seconds waited, which never exceed `window`: a full batch goes at
    once, a lone event about `quiet` (else `window`) seconds after it was written, and a
    steady stream fills batches up to the window. `keep_going` is asked before each pause
    (the run's time budget and lease); False ends the wait."""
    if window <= 0:
        return 0.0
    quiet = batch_quiet() if quiet is None else quiet
    full = max_batch()
    give_up_at = timezone.now() + dt.timedelta(seconds=window)
    waited = 0.0
    seen, grew_at = -1, timezone.now()
    while True:
        due = due_events(due_before=due_before).order_by()
        count = due[:full].count()
        if count == 0 or count >= full:
            return waited
        oldest = due.order_by("created_at").values_list("created_at", flat=True).first()
        if oldest is None:
            return waited
        now = timezone.now()
        if count != seen:
            seen, grew_at = count, now
        send_at = min(oldest + dt.timedelta(seconds=window), give_up_at)
        if quiet > 0:
            send_at = min(send_at, grew_at + dt.timedelta(seconds=quiet))
        remaining = (send_at - now).total_seconds()
        if remaining <= 0 or not keep_going():
            return waited
        pause = min(WINDOW_POLL, remaining)
        _sleep(pause)
        waited += pause


def take(ids: Iterable[int], *, claim_token: str, dataset: str, now: dt.datetime) -> int:
    """The claim itself: only rows still pending change hands, so of two runs that picked
    the same ids, each row goes to exactly one. An event keeps the dataset of its first
    claim, so its retries go where its first attempt went."""
    return ConversionEvent.objects.filter(pk__in=list(ids), status=Status.PENDING).update(
        status=Status.SENDING,
        claim_token=claim_token,
        claimed_at=now,
        dataset_id=Case(When(dataset_id="", then=Value(dataset)), default=F("dataset_id")),
        updated_at=now,
    )


def claim(
    *, claim_token: str, dataset: str, limit: int, due_before: dt.datetime
) -> list[ConversionEvent]:
    now = timezone.now()
    with transaction.atomic():
        candidates = due_events(due_before=due_before)
        # PostgreSQL: a concurrent run skips the rows this one is taking instead of
        # queueing behind our lock only to find them gone. (SQLite has no row locks;
        # Django ignores select_for_update there, its IMMEDIATE transaction serialises.)
        candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if not ids or not take(ids, claim_token=claim_token, dataset=dataset, now=now):
            return []
    events = list(
        ConversionEvent.objects.filter(claim_token=claim_token, status=Status.SENDING, pk__in=ids)
        .order_by("event_time", "pk")
        .only(
            "pk", "lead_id", "event_id", "event_name", "event_time", "user_data",
            "dataset_id", "failures",
        )
    )  # fmt: skip
    build_missing_user_data(events)
    return events


def build_missing_user_data(events: Sequence[ConversionEvent]) -> None:
    """Hash the customer information of the events that have none yet, from their leads,
    and store it (so the admin shows what was sent). Only claimed events come here, so
    no other run writes them meanwhile; building is deterministic, so doing it twice
    (a claim released and taken again) is harmless."""
    missing = [event for event in events if event.user_data is None]
    if not missing:
        return
    lead_ids = sorted({event.lead_id for event in missing})
    leads = {}
    for start in range(0, len(lead_ids), CHUNK):
        leads.update(Lead.objects.only(*LEAD_FIELDS).in_bulk(lead_ids[start : start + CHUNK]))
    for event in missing:
        event.user_data = build_user_data(leads[event.lead_id])
    ConversionEvent.objects.bulk_update(missing, ["user_data"], batch_size=CHUNK)


def _ours(claim_token: str, events: Sequence[ConversionEvent]) -> QuerySet[ConversionEvent]:
    return ConversionEvent.objects.filter(
        pk__in=[event.pk for event in events], status=Status.SENDING, claim_token=claim_token
    )


def backoff(failures: int, retry_after: float | None = None) -> dt.timedelta:
    """Exponential, with jitter so that events failed together do not retry together;
    never shorter than what Meta asked for."""
    base = float(settings.CAPI_BACKOFF) * (2 ** max(failures - 1, 0))
    seconds = min(base, MAX_BACKOFF.total_seconds()) * random.uniform(0.8, 1.2)  # noqa: S311
    return dt.timedelta(seconds=max(seconds, retry_after or 0.0))


# --- The run ---------------------------------------------------------------------------------


class _Stop(Exception):
    """Ends the run: the remaining claims are handed back."""


class _Run:
    def __init__(
        self,
        *,
        client: GraphClient,
        summary: SendSummary,
        deadline: float | None,
        lease: Lease | None = None,
    ) -> None:
        self.client = client
        self.summary = summary
        self.deadline = deadline
        self.lease = lease
        self.claim_token = uuid.uuid4().hex
        self.token = settings.META_ACCESS_TOKEN

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def keep_lease(self) -> bool:
        """Renew the lease (if this run has one); False once another sender took it over."""
        return self.lease is None or self.lease.renew()

    def may_wait(self) -> bool:
        return not self.out_of_time() and self.keep_lease()

    def send_dataset(self, dataset: str, events: list[ConversionEvent]) -> None:
        now = timezone.now()
        cutoff = expiry_cutoff(now)
        too_old = [event for event in events if event.event_time < cutoff]
        if too_old:
            self.summary.expired += _ours(self.claim_token, too_old).update(
                status=Status.EXPIRED, last_error=_expired_message(), claim_token="", updated_at=now
            )
            events = [event for event in events if event.event_time >= cutoff]
        # Meta refuses an event without any customer information, and would refuse its
        # whole batch for it: such an event fails here, visibly, without a POST.
        unmatchable = [event for event in events if not event.user_data]
        if unmatchable:
            self.summary.failed += _ours(self.claim_token, unmatchable).update(
                status=Status.FAILED,
                last_error="Not sent: the lead has no leadgen id or answer Meta could match on.",
                claim_token="",
                updated_at=now,
            )
            events = [event for event in events if event.user_data]
        # Depth first, left part first: events go in event_time order.
        stack: list[list[ConversionEvent]] = [events] if events else []
        while stack:
            if self.out_of_time():
                self.summary.more = True
                raise _Stop
            # Claimed events are sent even if the lease lapsed meanwhile: the claim, not
            # the lease, is what keeps them to this run.
            self.keep_lease()
            batch = stack.pop()
            parts = self.post(dataset, batch)
            stack.extend(reversed(parts))

    def post(self, dataset: str, batch: list[ConversionEvent]) -> list[list[ConversionEvent]]:
        """POST one batch and settle what can be settled; returns the parts still to send."""
        data: dict[str, Any] = {"data": [meta_event(event) for event in batch]}
        test_code = settings.META_TEST_EVENT_CODE
        if test_code:
            data["test_event_code"] = test_code
        started_at = timezone.now()
        started = time.monotonic()
        try:
            reply = self.client.post(
                f"{quote(dataset, safe='')}/events", token=self.token, data=data
            )
        except ThrottledError as exc:
            if exc.status is None:
                # Our own shared pause (usage headers said to slow down): nothing was sent,
                # so nothing is recorded and no attempt is counted.
                self.defer(batch, exc, count_failure=False, counted_post=False)
                raise _Stop from exc
            self.record(dataset, batch, started_at, started, Outcome.RETRY, error=exc)
            self.defer(batch, exc, count_failure=False, counted_post=True)
            raise _Stop from exc
        except RetryableError as exc:
            self.record(dataset, batch, started_at, started, Outcome.RETRY, error=exc)
            self.defer(batch, exc, count_failure=True, counted_post=True)
            raise _Stop from exc
        except GraphError as exc:
            reason = pause_reason(exc, dataset)
            if reason and not isinstance(exc, TokenError) and dataset != settings.META_DATASET_ID:
                # Events claimed for a dataset that is no longer configured, which Meta now
                # refuses: pausing would stop the configured dataset for nothing. They fail
                # visibly instead (an admin can retry them).
                self.record(dataset, batch, started_at, started, Outcome.REJECTED, error=exc)
                self.fail(batch, f"Meta refused dataset {dataset}: {describe(exc)}")
                return []
            if reason:
                self.record(dataset, batch, started_at, started, Outcome.PAUSED, error=exc)
                self.hand_back(batch, counted_post=True)
                pause(reason=reason, dataset=dataset, token=self.token)
                self.summary.reason = reason
                raise _Stop from exc
            if not refuses_content(exc):
                # Not a Graph error about what we sent (no answer at all, a proxy's HTML
                # page, a reply that is not JSON): not the events' fault, and splitting the
                # batch would only multiply it. Retried like an outage.
                self.record(dataset, batch, started_at, started, Outcome.RETRY, error=exc)
                self.defer(batch, exc, count_failure=True, counted_post=True)
                raise _Stop from exc
            attempt = self.record(dataset, batch, started_at, started, Outcome.REJECTED, error=exc)
            return self.rejected(batch, exc, attempt)
        attempt = self.record(dataset, batch, started_at, started, Outcome.ACCEPTED, reply=reply)
        self.accepted(batch, attempt, reply)
        return []

    # -- outcomes

    def accepted(
        self, batch: list[ConversionEvent], attempt: SendAttempt, reply: dict[str, Any]
    ) -> None:
        received = reply.get("events_received")
        if received != len(batch):
            logger.warning(
                "Meta accepted a batch of %d events but reports %r received (attempt %s)",
                len(batch),
                received,
                attempt.pk,
            )
        now = timezone.now()
        # Accepted means sent, whoever holds the claim now: if a stale-claim release handed
        # these rows back meanwhile, marking them sent is what stops a second POST.
        sent = ConversionEvent.objects.filter(
            pk__in=[event.pk for event in batch], status__in=[Status.SENDING, Status.PENDING]
        ).update(
            status=Status.SENT,
            sent_at=now,
            sent_in=attempt,
            attempts=F("attempts") + 1,
            claim_token="",
            last_error="",
            next_attempt_at=None,
            updated_at=now,
        )
        self.summary.sent += sent
        SenderState.objects.filter(pk=SenderState.SINGLETON_ID).update(last_sent_at=now)

    def rejected(
        self, batch: list[ConversionEvent], exc: GraphError, attempt: SendAttempt
    ) -> list[list[ConversionEvent]]:
        now = timezone.now()
        if len(batch) > 1:
            _ours(self.claim_token, batch).update(attempts=F("attempts") + 1, updated_at=now)
            return split(batch, exc)
        # Alone, so this event is the one Meta refuses.
        expired = exc.subcode == TIMESTAMP_TOO_OLD_SUBCODE
        self.summary.expired += int(expired)
        self.summary.failed += int(not expired)
        logger.warning("Conversion event %s refused by Meta: %s", batch[0].event_id, describe(exc))
        _ours(self.claim_token, batch).update(
            status=Status.EXPIRED if expired else Status.FAILED,
            last_error=f"Meta refused this event: {describe(exc)}",
            attempts=F("attempts") + 1,
            claim_token="",
            next_attempt_at=None,
            updated_at=now,
        )
        return []

    def fail(self, batch: list[ConversionEvent], message: str) -> None:
        self.summary.failed += _ours(self.claim_token, batch).update(
            status=Status.FAILED,
            last_error=message,
            attempts=F("attempts") + 1,
            claim_token="",
            next_attempt_at=None,
            updated_at=timezone.now(),
        )

    def defer(
        self,
        batch: list[ConversionEvent],
        exc: GraphError,
        *,
        count_failure: bool,
        counted_post: bool,
    ) -> None:
        """Back to pending, due after a back-off; failed once transient failures run out.
        Throttling is Meta asking us to wait, not a failure of these events: it never
        counts towards giving up (the 7-day expiry bounds the wait)."""
        now = timezone.now()
        ours = _ours(self.claim_token, batch)
        post: dict[str, Any] = {"attempts": F("attempts") + 1} if counted_post else {}
        gave_up = 0
        if count_failure:
            gave_up = ours.filter(failures__gte=settings.CAPI_MAX_ATTEMPTS - 1).update(
                status=Status.FAILED,
                failures=F("failures") + 1,
                last_error=(
                    f"Gave up after {settings.CAPI_MAX_ATTEMPTS} failed attempts: {describe(exc)}"
                ),
                claim_token="",
                next_attempt_at=None,
                updated_at=now,
                **post,
            )
            wait = backoff(max(event.failures for event in batch) + 1, exc.retry_after)
        else:
            wait = dt.timedelta(seconds=exc.retry_after or float(settings.CAPI_BACKOFF))
        retrying = ours.update(
            status=Status.PENDING,
            failures=F("failures") + int(count_failure),
            last_error=describe(exc),
            next_attempt_at=now + wait,
            claim_token="",
            claimed_at=None,
            updated_at=now,
            **post,
        )
        self.summary.failed += gave_up
        self.summary.retrying += retrying
        logger.warning(
            "Conversions API: %d events retry in %.0f s, %d gave up: %s",
            retrying,
            wait.total_seconds(),
            gave_up,
            exc,
        )

    def hand_back(self, batch: Sequence[ConversionEvent], *, counted_post: bool) -> int:
        post = {"attempts": F("attempts") + 1} if counted_post else {}
        return _ours(self.claim_token, batch).update(
            status=Status.PENDING,
            claim_token="",
            claimed_at=None,
            updated_at=timezone.now(),
            **post,
        )

    def release_all(self) -> int:
        """Whatever this run still holds goes back to pending, untouched otherwise."""
        return ConversionEvent.objects.filter(
            status=Status.SENDING, claim_token=self.claim_token
        ).update(status=Status.PENDING, claim_token="", claimed_at=None, updated_at=timezone.now())

    def record(
        self,
        dataset: str,
        batch: Sequence[ConversionEvent],
        started_at: dt.datetime,
        started: float,
        outcome: str,
        *,
        reply: dict[str, Any] | None = None,
        error: GraphError | None = None,
    ) -> SendAttempt:
        self.summary.posts += 1
        attempt = SendAttempt(
            dataset_id=dataset,
            started_at=started_at,
            duration_ms=int((time.monotonic() - started) * 1000),
            event_count=len(batch),
            event_ids=[event.event_id for event in batch],
            test_event_code=settings.META_TEST_EVENT_CODE or "",
            outcome=outcome,
        )
        if reply is not None:
            # Graph answers errors with 4xx/5xx; anything the client returns is a 200.
            attempt.http_status = 200
            received = reply.get("events_received")
            # Stored as Meta's count only when it can be one (the column is 32-bit, >= 0).
            countable = isinstance(received, int) and not isinstance(received, bool)
            attempt.events_received = received if countable and 0 <= received < 2**31 else None
            messages = reply.get("messages")
            attempt.messages = messages if isinstance(messages, list) else []
            attempt.fbtrace_id = str(reply.get("fbtrace_id") or "")[:64]
        if error is not None:
            attempt.http_status = error.status
            attempt.error = describe(error)
            attempt.error_code = error.code
            attempt.error_subcode = error.subcode
            attempt.fbtrace_id = (error.fbtrace_id or "")[:64]
        attempt.save()
        return attempt


_REPEATED_CODE_RE = re.compile(r"^\(#(\d+)(/\d+)?\) \(#\1\) ")


def describe(exc: GraphError) -> str:
    """Meta's error as admins read it: `(#100) param data[3][event_time] is ... [trace]`.
    Meta's messages often start with their own `(#code)`, which str() would repeat. Every
    stored error of the sender (attempts, events, the pause) is made here, so no token or
    secret is stored."""
    return redact(_REPEATED_CODE_RE.sub(lambda m: f"(#{m[1]}{m[2] or ''}) ", str(exc)))


def pause_reason(exc: GraphError, dataset: str) -> str:
    """A refusal that no retry or split can fix: the token, or access to the dataset."""
    if isinstance(exc, TokenError):
        return (
            f"Meta refused the access token: {describe(exc)}. Sending is paused until "
            "META_ACCESS_TOKEN is replaced."
        )
    if isinstance(exc, PermissionDeniedError) or (
        isinstance(exc, BadParameterError) and exc.subcode == OBJECT_MISSING_SUBCODE
    ):
        return (
            f"Meta refused access to dataset {dataset}: {describe(exc)}. Sending is paused until "
            "META_DATASET_ID or META_ACCESS_TOKEN changes, or an admin resumes it."
        )
    return ""


def refuses_content(exc: GraphError) -> bool:
    """Meta answered with a Graph error about the request itself (code 100 and other 4xx),
    which is what one invalid event causes: the whole batch is refused for it."""
    if exc.code is None:
        return False
    return isinstance(exc, BadParameterError) or 400 <= (exc.status or 0) < 500


def split(batch: list[ConversionEvent], exc: GraphError) -> list[list[ConversionEvent]]:
    """Parts of a refused batch to send separately. Around the event Meta names, if it
    names one in range (the others go at once, the named one alone); else halves. The
    hint is only a hint: if the named event is accepted alone, the other parts are still
    split further until the refused one is found."""
    match = BAD_EVENT_INDEX_RE.search(exc.message or "")
    index = int(match.group(1)) if match else -1
    if 0 <= index < len(batch):
        parts = [batch[:index], batch[index : index + 1], batch[index + 1 :]]
    else:
        middle = len(batch) // 2
        parts = [batch[:middle], batch[middle:]]
    return [part for part in parts if part]


def _group_by_dataset(events: Sequence[ConversionEvent]) -> dict[str, list[ConversionEvent]]:
    groups: dict[str, list[ConversionEvent]] = {}
    for event in events:
        groups.setdefault(event.dataset_id, []).append(event)
    return groups


def send_pending(
    *,
    client: GraphClient | None = None,
    time_budget: float | None = TASK_TIME_BUDGET,
    window: float = 0.0,
    lease: Lease | None = None,
) -> SendSummary:
    """Send every due pending event; see the module docstring. Safe to run concurrently
    (claims keep each event to one run). With a `window`, each claim first lets its batch
    fill (`wait_for_batch`); with a `lease`, the run renews it and stops claiming if it
    lapsed and another sender took over."""
    summary = SendSummary()
    now = timezone.now()
    summary.released = release_stale_claims(now=now)
    summary.expired = expire_old_events(now=now)
    state = _resume_if_reconfigured(SenderState.current())
    summary.reason = blocker(state)
    if not summary.reason:
        run = _Run(
            client=client or GraphClient(),
            summary=summary,
            deadline=None if time_budget is None else time.monotonic() + time_budget,
            lease=lease,
        )
        try:
            while not run.out_of_time():
                summary.waited += wait_for_batch(
                    window=window, due_before=now, keep_going=run.may_wait
                )
                if not run.keep_lease():
                    summary.interrupted = True
                    break
                batch = claim(
                    claim_token=run.claim_token,
                    dataset=settings.META_DATASET_ID,
                    limit=max_batch(),
                    due_before=now,
                )
                if not batch:
                    break
                for dataset, events in _group_by_dataset(batch).items():
                    run.send_dataset(dataset, events)
            else:
                summary.more = due_events(due_before=now).exists()
        except _Stop:
            summary.interrupted = not summary.more
        finally:
            run.release_all()
    summary.waiting = ConversionEvent.objects.filter(status=Status.PENDING).count()
    SenderState.objects.filter(pk=SenderState.SINGLETON_ID).update(
        waiting_reason=summary.reason if summary.waiting else "",
        last_run_at=timezone.now(),
    )
    if summary.posts or summary.expired or summary.released:
        logger.info("Conversions API run: %s", summary.as_dict())
    return summary


def send_coalesced(
    *,
    client: GraphClient | None = None,
    time_budget: float = TASK_TIME_BUDGET,
    window: float | None = None,
) -> SendSummary:
    """The send task: run as the one sender, or end at once if another run is the sender.

    Holding the lease, it sends in a loop with the batch window (CAPI_BATCH_WINDOW by
    default) until nothing is due. Then it lets go of the lease, clears the queued mark and
    looks once more: an event committed while the mark was set queued no task of its own,
    so this last look is what sends it (the sender takes the lease again and carries on).
    `more` in the summary: the time budget ran out with events due (the task queues its
    continuation)."""
    window = batch_window() if window is None else window
    deadline = time.monotonic() + time_budget
    client = client or GraphClient()
    total = SendSummary()
    first = True
    while True:
        lease = Lease.acquire()
        if lease is None:
            # Another run is the sender, and it looks for due events once more after it
            # lets go of the lease: nothing is left behind by ending here.
            total.skipped = first
            break
        started = timezone.now()
        try:
            run = send_pending(
                client=client,
                time_budget=max(0.0, deadline - time.monotonic()),
                window=window,
                lease=lease,
            )
        finally:
            lease.release()
            clear_send_request()
        total.add(run)
        first = False
        if run.reason or run.more or run.interrupted:
            break
        # Due before this run started: new events, not the ones it just deferred.
        if not due_events(due_before=started).exists():
            break
        if time.monotonic() >= deadline:
            total.more = True
            break
    return total
