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

The parts, each in its own module: capi.pausing (configuration and the pause),
capi.claims (claims and their release), capi.batching (batch size, the window, the payload,
splitting), capi.answers (reading Meta's answer, the attempt log), capi.settle (what
becomes of the events: sent, failed, expired, back-off). This module runs them; the names
the admin, the command and the tests call are importable from here (`__all__`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.utils import timezone

from capi import settle
from capi.answers import (
    TIMESTAMP_TOO_OLD_SUBCODE,
    describe,
    pause_reason,
    record_attempt,
    refuses_content,
)
from capi.batching import (
    WINDOW_POLL,
    batch_window,
    group_by_dataset,
    max_batch,
    meta_event,
    payload,
    split,
    wait_for_batch,
)
from capi.claims import (
    STALE_CLAIM,
    build_missing_user_data,
    claim,
    due_events,
    release_claims,
    release_stale_claims,
    take,
)
from capi.lease import Lease, clear_send_request
from capi.models import ConversionEvent, SendAttempt, SenderState
from capi.pausing import blocker, missing_configuration, pause, resume, resume_if_reconfigured
from capi.settle import expire_old_events, retry_failed
from leads.graph import GraphClient, GraphError, RetryableError, ThrottledError, TokenError

__all__ = [
    "STALE_CLAIM",
    "TASK_TIME_BUDGET",
    "WINDOW_POLL",
    "SendSummary",
    "blocker",
    "build_missing_user_data",
    "claim",
    "meta_event",
    "missing_configuration",
    "resume",
    "retry_failed",
    "send_coalesced",
    "send_pending",
    "take",
    "wait_for_batch",
]

logger = logging.getLogger(__name__)

Status = ConversionEvent.Status
Outcome = SendAttempt.Outcome

# A task run stops claiming after half of django-q2's task timeout, so it finishes (and
# hands back what it holds) well before it could be killed (capi.claims.STALE_CLAIM).
TASK_TIME_BUDGET = float(settings.Q_CLUSTER["timeout"]) / 2  # type: ignore[arg-type]


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
        events, expired, failed = settle.drop_unsendable(self.claim_token, events)
        self.summary.expired += expired
        self.summary.failed += failed
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
        data = payload(batch)
        started_at = timezone.now()
        started = time.monotonic()

        def record(outcome: str, **answer: Any) -> SendAttempt:
            self.summary.posts += 1
            return record_attempt(
                dataset=dataset,
                batch=batch,
                started_at=started_at,
                started=started,
                outcome=outcome,
                **answer,
            )

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
            record(Outcome.RETRY, error=exc)
            self.defer(batch, exc, count_failure=False, counted_post=True)
            raise _Stop from exc
        except RetryableError as exc:
            record(Outcome.RETRY, error=exc)
            self.defer(batch, exc, count_failure=True, counted_post=True)
            raise _Stop from exc
        except GraphError as exc:
            reason = pause_reason(exc, dataset)
            if reason and not isinstance(exc, TokenError) and dataset != settings.META_DATASET_ID:
                # Events claimed for a dataset that is no longer configured, which Meta now
                # refuses: pausing would stop the configured dataset for nothing. They fail
                # visibly instead (an admin can retry them).
                record(Outcome.REJECTED, error=exc)
                self.summary.failed += settle.refuse(
                    self.claim_token,
                    batch,
                    status=Status.FAILED,
                    message=f"Meta refused dataset {dataset}: {describe(exc)}",
                )
                return []
            if reason:
                record(Outcome.PAUSED, error=exc)
                settle.hand_back(self.claim_token, batch, counted_post=True)
                pause(reason=reason, dataset=dataset, token=self.token)
                self.summary.reason = reason
                raise _Stop from exc
            if not refuses_content(exc):
                # Not a Graph error about what we sent (no answer at all, a proxy's HTML
                # page, a reply that is not JSON): not the events' fault, and splitting the
                # batch would only multiply it. Retried like an outage.
                record(Outcome.RETRY, error=exc)
                self.defer(batch, exc, count_failure=True, counted_post=True)
                raise _Stop from exc
            record(Outcome.REJECTED, error=exc)
            return self.rejected(batch, exc)
        attempt = record(Outcome.ACCEPTED, reply=reply)
        self.accepted(batch, attempt, reply)
        return []

    # -- outcomes (capi.settle makes the changes; the run counts them)

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
        self.summary.sent += settle.mark_sent(batch, attempt)

    def rejected(
        self, batch: list[ConversionEvent], exc: GraphError
    ) -> list[list[ConversionEvent]]:
        if len(batch) > 1:
            settle.count_post(self.claim_token, batch)
            return split(batch, exc)
        # Alone, so this event is the one Meta refuses.
        expired = exc.subcode == TIMESTAMP_TOO_OLD_SUBCODE
        self.summary.expired += int(expired)
        self.summary.failed += int(not expired)
        logger.warning("Conversion event %s refused by Meta: %s", batch[0].event_id, describe(exc))
        settle.refuse(
            self.claim_token,
            batch,
            status=Status.EXPIRED if expired else Status.FAILED,
            message=f"Meta refused this event: {describe(exc)}",
        )
        return []

    def defer(
        self,
        batch: list[ConversionEvent],
        exc: GraphError,
        *,
        count_failure: bool,
        counted_post: bool,
    ) -> None:
        gave_up, retrying = settle.defer(
            self.claim_token, batch, exc, count_failure=count_failure, counted_post=counted_post
        )
        self.summary.failed += gave_up
        self.summary.retrying += retrying


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
    state = resume_if_reconfigured(SenderState.current())
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
                for dataset, events in group_by_dataset(batch).items():
                    run.send_dataset(dataset, events)
            else:
                summary.more = due_events(due_before=now).exists()
        except _Stop:
            summary.interrupted = not summary.more
        finally:
            release_claims(run.claim_token)
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
