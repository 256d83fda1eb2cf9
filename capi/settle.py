"""What becomes of claimed events: sent, failed or expired for good, or back to pending
(after a back-off, or as they were); and the sweeps that expire events too old for Meta
and re-pend failed ones.

Every change is a conditional UPDATE. Those that follow a POST go through the run's claim
(capi.claims.ours), except "sent": Meta accepted the events, so they are sent whoever holds
them now. The run (capi.sending) decides which of these Meta's answer calls for.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from capi.answers import describe
from capi.claims import ours, unclaimed
from capi.models import ConversionEvent, SendAttempt, SenderState
from leads.graph import GraphError

logger = logging.getLogger(__name__)

Status = ConversionEvent.Status

# An event this close to the 7-day limit is expired rather than sent: Meta refuses the
# whole batch for one event past the limit, and the POST takes time.
EXPIRY_MARGIN = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=1)
UNMATCHABLE = "Not sent: the lead has no leadgen id or answer Meta could match on."


def _ended(status: str, message: str, *, now: dt.datetime, **changes: Any) -> dict[str, Any]:
    """The UPDATE of events leaving a run for good (failed or expired), with the reason."""
    return {
        "status": status,
        "last_error": message,
        "claim_token": "",
        "updated_at": now,
        **changes,
    }


def _posted(counted_post: bool) -> dict[str, Any]:
    """The UPDATE that counts a POST that carried the events (the `attempts` column)."""
    return {"attempts": F("attempts") + 1} if counted_post else {}


# --- Expiry and the admin's retry -----------------------------------------------------------


def expiry_cutoff(now: dt.datetime) -> dt.datetime:
    return now - dt.timedelta(days=settings.CAPI_EVENT_MAX_AGE_DAYS) + EXPIRY_MARGIN


def expired_message() -> str:
    return (
        f"Not sent: older than {settings.CAPI_EVENT_MAX_AGE_DAYS} days, and Meta refuses "
        "events that old."
    )


def expire_old_events(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    return ConversionEvent.objects.filter(
        status=Status.PENDING, event_time__lt=expiry_cutoff(now)
    ).update(status=Status.EXPIRED, last_error=expired_message(), updated_at=now)


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


# --- Before the POST ------------------------------------------------------------------------


def drop_unsendable(
    claim_token: str, events: list[ConversionEvent]
) -> tuple[list[ConversionEvent], int, int]:
    """Settle the claimed events that must not be POSTed (too old by now, or nothing to
    match on); returns the others, and how many expired and how many failed."""
    now = timezone.now()
    cutoff = expiry_cutoff(now)
    expired = failed = 0
    too_old = [event for event in events if event.event_time < cutoff]
    if too_old:
        expired = ours(claim_token, too_old).update(
            **_ended(Status.EXPIRED, expired_message(), now=now)
        )
        events = [event for event in events if event.event_time >= cutoff]
    # Meta refuses an event without any customer information, and would refuse its
    # whole batch for it: such an event fails here, visibly, without a POST.
    unmatchable = [event for event in events if not event.user_data]
    if unmatchable:
        failed = ours(claim_token, unmatchable).update(
            **_ended(Status.FAILED, UNMATCHABLE, now=now)
        )
        events = [event for event in events if event.user_data]
    return events, expired, failed


# --- After Meta's answer --------------------------------------------------------------------


def mark_sent(batch: Sequence[ConversionEvent], attempt: SendAttempt) -> int:
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
    SenderState.objects.filter(pk=SenderState.SINGLETON_ID).update(last_sent_at=now)
    return sent


def count_post(claim_token: str, batch: Sequence[ConversionEvent]) -> None:
    """A refused batch about to be split: the POST counts for each of its events."""
    ours(claim_token, batch).update(attempts=F("attempts") + 1, updated_at=timezone.now())


def refuse(claim_token: str, batch: Sequence[ConversionEvent], *, status: str, message: str) -> int:
    """Failed (or expired) for good after a POST: Meta refused these events."""
    return ours(claim_token, batch).update(
        **_ended(
            status, message, now=timezone.now(), attempts=F("attempts") + 1, next_attempt_at=None
        )
    )


def backoff(failures: int, retry_after: float | None = None) -> dt.timedelta:
    """Exponential, with jitter so that events failed together do not retry together;
    never shorter than what Meta asked for."""
    base = float(settings.CAPI_BACKOFF) * (2 ** max(failures - 1, 0))
    seconds = min(base, MAX_BACKOFF.total_seconds()) * random.uniform(0.8, 1.2)  # noqa: S311
    return dt.timedelta(seconds=max(seconds, retry_after or 0.0))


def defer(
    claim_token: str,
    batch: Sequence[ConversionEvent],
    exc: GraphError,
    *,
    count_failure: bool,
    counted_post: bool,
) -> tuple[int, int]:
    """Back to pending, due after a back-off; failed once transient failures run out.
    Throttling is Meta asking us to wait, not a failure of these events: it never
    counts towards giving up (the 7-day expiry bounds the wait). Returns how many gave up
    and how many will retry."""
    now = timezone.now()
    held = ours(claim_token, batch)
    post = _posted(counted_post)
    gave_up = 0
    if count_failure:
        gave_up = held.filter(failures__gte=settings.CAPI_MAX_ATTEMPTS - 1).update(
            **_ended(
                Status.FAILED,
                f"Gave up after {settings.CAPI_MAX_ATTEMPTS} failed attempts: {describe(exc)}",
                now=now,
                failures=F("failures") + 1,
                next_attempt_at=None,
                **post,
            )
        )
        wait = backoff(max(event.failures for event in batch) + 1, exc.retry_after)
    else:
        wait = dt.timedelta(seconds=exc.retry_after or float(settings.CAPI_BACKOFF))
    retrying = held.update(
        **unclaimed(
            now=now,
            failures=F("failures") + int(count_failure),
            last_error=describe(exc),
            next_attempt_at=now + wait,
            **post,
        )
    )
    logger.warning(
        "Conversions API: %d events retry in %.0f s, %d gave up: %s",
        retrying,
        wait.total_seconds(),
        gave_up,
        exc,
    )
    return gave_up, retrying


def hand_back(claim_token: str, batch: Sequence[ConversionEvent], *, counted_post: bool) -> int:
    """Back to pending as they were (the sender pauses): not these events' fault."""
    return ours(claim_token, batch).update(**unclaimed(now=timezone.now(), **_posted(counted_post)))
