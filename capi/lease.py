"""Coalesced sending: one sender at a time, and at most one send task waiting in the queue.

Both live on the SenderState row and change only through conditional UPDATEs, which are
atomic on SQLite and PostgreSQL alike and need no shared cache (the default cache is a
directory per host, and the test cache one per process):

- The **lease** (`lease_token`, `lease_until`): a send run takes it before it claims
  anything and renews it while it works; a second run that finds it taken ends at once.
  It expires by itself LEASE seconds after the last renewal, so a killed worker holds up
  sending for at most that long (the minute schedule then takes over). The lease is about
  batching, not correctness: claims (capi.sending) keep each event to one run even if two
  runs ever overlap.
- The **queued mark** (`send_queued_at`): a commit queues the send task only when no task
  is already queued or running, so a burst of 10,000 moves queues a handful of tasks, not
  10,000. The lease holder clears the mark when it lets go of the lease and then looks for
  due events once more; so an event committed while the mark was set (its own commit
  queued nothing) is always seen, either by that last look or by the task its commit
  queued. The mark expires after QUEUED_TTL, so a task lost by the broker costs a delay,
  never an event; the minute schedule sends meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.db.models import Q
from django.utils import timezone

from capi.models import SenderState
from core.db import tasks
from core.db.queries import set_after

logger = logging.getLogger(__name__)

SEND_TASK = "capi.tasks.send_pending"
# A live sender renews its lease before every claim and POST (one POST takes at most the
# Graph connect and read timeouts, 25 s by default), so only a dead one lets it lapse.
LEASE = dt.timedelta(seconds=60)
# A queued mark this old belongs to a task that was lost (broker flushed, worker killed
# before it started): the next commit queues a new one.
QUEUED_TTL = dt.timedelta(seconds=60)

_ROW = SenderState.SINGLETON_ID


def _state() -> Q:
    return Q(pk=_ROW)


class Lease:
    """The one running sender's lease. `acquire()` returns None when another run holds it."""

    def __init__(self, token: str, until: dt.datetime) -> None:
        self.token = token
        self.until = until
        self.held = True

    @classmethod
    def acquire(cls) -> Lease | None:
        now = timezone.now()
        token = uuid.uuid4().hex
        until = now + LEASE
        free = SenderState.objects.filter(_state()).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lte=now)
        )
        taken = free.update(lease_token=token, lease_until=until)
        if not taken and not SenderState.objects.filter(_state()).exists():
            SenderState.current()  # a fresh database: the row is created on first use
            taken = free.update(lease_token=token, lease_until=until)
        return cls(token, until) if taken else None

    def renew(self) -> bool:
        """Extend the lease; False if it lapsed and another run took it (this run should
        stop claiming). Writes only once half of the lease has gone by."""
        if not self.held:
            return False
        now = timezone.now()
        if self.until - now > LEASE / 2:
            return True
        until = now + LEASE
        if SenderState.objects.filter(_state(), lease_token=self.token).update(lease_until=until):
            self.until = until
        else:
            logger.warning("Conversions API: this sender's lease lapsed and was taken over")
            self.held = False
        return self.held

    def release(self) -> None:
        if self.held:
            SenderState.objects.filter(_state(), lease_token=self.token).update(
                lease_token="", lease_until=None
            )
            self.held = False


def _queued_since(time: dt.datetime) -> bool:
    """Whether the queued mark was set after `time`. Asked after every commit that wrote
    events (each page of a bulk read), without the ORM's compiling
    (docs/performance.md#b11)."""
    return set_after(SenderState, pk=_ROW, field="send_queued_at", time=time)


def request_send() -> bool:
    """Queue the send task unless one is already queued or running; True if queued.

    The usual case in a burst, a task already queued, costs one indexed SELECT."""
    now = timezone.now()
    stale = now - QUEUED_TTL
    if _queued_since(stale):
        return False
    state = SenderState.objects.filter(_state())
    unmarked = state.filter(Q(send_queued_at__isnull=True) | Q(send_queued_at__lte=stale))
    if not unmarked.update(send_queued_at=now):
        if state.exists():
            return False  # another process marked it (and queued the task) just now
        SenderState.current()
        if not unmarked.update(send_queued_at=now):
            return False
    try:
        tasks.push(SEND_TASK)
    except Exception:  # the broker is unavailable; the minute schedule sends meanwhile
        logger.exception("Could not queue %s; the minute schedule will send", SEND_TASK)
        state.filter(send_queued_at=now).update(send_queued_at=None)
        return False
    return True


def clear_send_request() -> None:
    """Called by the lease holder as it lets go, before its last look for due events."""
    SenderState.objects.filter(_state(), send_queued_at__isnull=False).update(send_queued_at=None)
