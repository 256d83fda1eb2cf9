"""The heartbeat of `make run`: one line saying what the running app is doing.

    12:04:05  leads: 42, 3 in the last minute, 1 waiting for fetch | events: 40 sent,
    2 pending, 0 failed                               (one line; cut here to fit the page)

On a terminal the line is rewritten in place every few seconds; otherwise (output to a
file or a pipe) a new line is printed every HEARTBEAT_INTERVAL seconds, so that a log stays
readable. The counts are three queries, each answered from an index (the table's
smallest for the total, `lead_fetch_due` and the events' status index for the others).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from capi.models import ConversionEvent
from core.db import queries
from leads.models import Lead

# A terminal's line is rewritten this often; its cost is the three counts.
TERMINAL_REFRESH = 2.0
MINUTE = 60.0


@dataclass(frozen=True)
class Counts:
    leads: int
    waiting: int  # announced, not yet fetched: pending, being fetched, or parked
    fetch_failed: int
    sent: int
    pending: int  # waiting to be sent, or being sent
    failed: int
    expired: int


def read_counts() -> Counts:
    """What the heartbeat shows, read now."""
    Status = Lead.FetchStatus
    # `exclude(complete)` is the condition of the partial index lead_fetch_due, so this
    # reads that index only: the leads not yet complete, a handful once fetches catch up.
    fetch = dict(
        Lead.objects.exclude(fetch_status=Status.COMPLETE)
        .order_by()
        .values_list("fetch_status")
        .annotate(Count("pk"))
    )
    events = dict(ConversionEvent.objects.order_by().values_list("status").annotate(Count("pk")))
    Event = ConversionEvent.Status
    return Counts(
        leads=Lead.objects.count(),
        waiting=sum(fetch.get(s, 0) for s in (Status.PENDING, Status.FETCHING, Status.PARKED)),
        fetch_failed=fetch.get(Status.FAILED, 0),
        sent=events.get(Event.SENT, 0),
        pending=events.get(Event.PENDING, 0) + events.get(Event.SENDING, 0),
        failed=events.get(Event.FAILED, 0),
        expired=events.get(Event.EXPIRED, 0),
    )


def leads_since(moment: dt.datetime) -> int:
    return Lead.objects.filter(created_at__gte=moment).count()


@dataclass
class LastMinute:
    """Leads received in the last minute: how much the total grew since the newest total
    read at least a minute ago. A count by `created_at` reads every lead (that column has
    no index, and one is not worth its cost on every webhook's insert for the heartbeat's
    sake), so it is done once, to `seed` the minute before the first total."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def seed(self, now: float, *, total: int, recent: int) -> None:
        """`total` leads now, `recent` of them received in the minute before."""
        self.samples.append((now - MINUTE, total - recent))

    def add(self, now: float, total: int) -> int:
        self.samples.append((now, total))
        while len(self.samples) > 1 and self.samples[1][0] <= now - MINUTE:
            self.samples.popleft()
        # Deleted leads shrink the total; they are not negative arrivals.
        return max(0, total - self.samples[0][1])


def render(counts: Counts, *, last_minute: int, at: dt.datetime) -> str:
    leads = (
        f"leads: {counts.leads}, {last_minute} in the last minute, "
        f"{counts.waiting} waiting for fetch"
    )
    if counts.fetch_failed:
        leads += f", {counts.fetch_failed} failed to fetch"
    events = f"events: {counts.sent} sent, {counts.pending} pending, {counts.failed} failed"
    if counts.expired:
        events += f", {counts.expired} expired"
    return f"{at:%H:%M:%S}  {leads} | {events}"


class Heartbeat:
    """Writes the line to `stream`: rewritten in place on a terminal (`tty`), else a new
    line every `every` seconds. `every` 0 turns it off."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool,
        every: float,
        read: Callable[[], Counts] = read_counts,
        recent: Callable[[dt.datetime], int] = leads_since,
    ) -> None:
        self.stream = stream
        self.tty = tty
        self.every = (TERMINAL_REFRESH if tty else every) if every > 0 else 0.0
        self.read = read
        self.recent = recent
        self.last_minute = LastMinute()
        self.next_at = 0.0
        self.open_line = False  # a terminal line without its newline yet

    def tick(self, now: float | None = None) -> None:
        """Show the line if it is due."""
        now = time.monotonic() if now is None else now
        if not self.every or now < self.next_at:
            return
        self.next_at = now + self.every
        at = dt.datetime.now()
        try:
            counts = self.read()
            if not self.last_minute.samples:
                since = timezone.now() - dt.timedelta(seconds=MINUTE)
                self.last_minute.seed(now, total=counts.leads, recent=self.recent(since))
        except DatabaseError as exc:
            # Say so and try again next time, on a new connection.
            queries.drop_connection()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            line = f"{at:%H:%M:%S}  database not answering: {reason}"
        else:
            line = render(counts, last_minute=self.last_minute.add(now, counts.leads), at=at)
        if self.tty:
            width = shutil.get_terminal_size((120, 24)).columns
            # A line longer than the terminal wraps, and `\r` would then rewrite only its
            # last part: cut it to fit. `\x1b[K` clears what a longer line left.
            self.stream.write("\r" + line[: max(width - 1, 20)] + "\x1b[K")
            self.open_line = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def end_line(self) -> None:
        """Finish a terminal line, so that what is printed next starts on its own."""
        if self.open_line:
            self.stream.write("\n")
            self.stream.flush()
            self.open_line = False
