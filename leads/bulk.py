"""Bulk read: every lead Meta still holds for a form (or an ad), stored page by page.

This is the safety net under the webhook. Meta drops a delivery it could not make after
36 hours, and a lead fetch can fail for good; the bulk read (`manage.py sync_leads`, and
the scheduled reconciliation in `leads.tasks.reconcile_leads`) asks Meta for the leads
themselves:

    GET /{form-id}/leads?fields=<every Lead field>&limit=500
        &filtering=[{"field":"time_created","operator":"GREATER_THAN","value":<mark>}]

and follows `paging.next` until it is absent (an empty page with a `next` link is not the
end). Each page is stored in one transaction with a fixed number of queries, whatever its
size: new leads are inserted complete (`source=bulk`); leads we already have but could
not complete (pending, fetching, failed, parked: their webhook fetch did not happen or
failed) are completed with the row; complete leads are left alone. Every lead that
becomes complete enters the first stage of the pipeline, and its entry is recorded
(`leads.pipeline.record_entries`): new leads are inserted in that stage.

The form's high-water mark (`Form.leads_synced_until`) is what makes the next run cheap.
It advances only when a run has read every page of the form (a run that stops early
leaves it, so the next run reads the same leads again; storing is idempotent), and only
to a time up to which every lead is stored. See `_new_mark` for the safety lag.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.db import fastjson, sqlite
from core.db.inserts import insert_rows, pks_by
from core.db.sqlite import whole_page_statements
from core.ids import meta_id
from core.meta import LEAD_FIELDS
from leads import fetching, redaction
from leads.graph import (
    GraphClient,
    GraphError,
    RetryableError,
    ThrottledError,
    TokenError,
)
from leads.keys import ensure_forms
from leads.lead_data import LEAD_COLUMNS, MAX_DEPTH, lead_columns, within_depth
from leads.models import Form, Lead, Page
from leads.pages import sync_forms
from leads.pipeline import Entry, record_entries, stage_waiting_leads
from leads.redaction import redact

logger = logging.getLogger(__name__)

Status = Lead.FetchStatus

# A failing page (5xx, timeout, transient Graph error) is asked again this many times,
# after 2, 4, 8 and 16 seconds; then the form's run stops with its mark unchanged.
PAGE_RETRIES = 4
RETRY_BACKOFF = 2.0
# A throttling answer that asks for at most this long is waited out in place (a bulk read
# runs outside any request, and a minute is Meta's usual window); a longer one stops the
# run so that it is rescheduled, rather than holding a worker for an hour.
THROTTLE_MAX_WAIT = 60.0
# ...and a page waits out at most this many throttling answers before the run gives up.
THROTTLE_MAX_WAITS = 3
# Forms Meta deleted answer every read with an error; archived forms may still hold leads.
SKIPPED_FORM_STATUSES = ("DELETED",)
# Leads that exist but have no data yet: a bulk read completes them. FETCHING is included
# on purpose: the worker's own result is then dropped by its conditional release, which is
# harmless (same Graph data), whereas skipping it could leave it failed behind the mark.
INCOMPLETE = (Status.PENDING, Status.FETCHING, Status.FAILED, Status.PARKED)
# Columns a completed lead gets from its bulk-read row (one UPDATE for the whole page).
COMPLETION_FIELDS = (
    "page",
    "form",
    *LEAD_COLUMNS,
    "fetch_status",
    "fetch_error",
    "fetch_after",
    "fetched_at",
    "updated_at",
)
# What a webhook already told us about a lead; kept when the row leaves a key out.
KEPT_FROM_WEBHOOK = ("created_time", "ad_id")


class SyncError(Exception):
    """The read cannot start: unknown page or form, no token, contradictory options."""


class RunStatus(enum.StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"  # stopped at a deadline (reconciliation task); resumable
    THROTTLED = "throttled"  # Meta asked us to wait longer than we wait in place
    FAILED = "failed"  # a page kept failing, or a final Graph error
    # The token was rejected (190/102): the page is marked invalid.
    UNAUTHORIZED = "unauthorized"
    SKIPPED = "skipped"  # not started (an earlier form was throttled, or no token)


# --- Results -------------------------------------------------------------------------------


@dataclass
class PageCounts:
    """What storing one page did."""

    rows: int = 0
    created: int = 0
    completed: int = 0
    unchanged: int = 0
    skipped: int = 0  # rows without a usable lead id (never seen from Meta; kept safe)
    newest: dt.datetime | None = None
    oldest: dt.datetime | None = None
    # True when rows came newest first, as Meta lists them (resuming relies on it).
    ordered: bool = True
    created_pks: list[int] = field(default_factory=list)
    completed_pks: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Resume:
    """Where a run stopped at its deadline continues: leads older than `until`.

    Meta lists leads newest first, so when a run stops, every lead created after the
    oldest one it read is stored; the continuation reads `time_created < until` only. The
    mark advances when the continuation reaches the end, to what the whole run saw.
    """

    until: int  # unix seconds; LESS_THAN (the oldest second read is read again)
    newest: int | None  # newest created_time stored by the earlier parts
    started: int  # when the first part started (the safety lag counts from there)

    def as_dict(self) -> dict[str, int | None]:
        return {"until": self.until, "newest": self.newest, "started": self.started}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resume:
        newest = data.get("newest")
        return cls(
            until=int(data["until"]),
            newest=None if newest is None else int(newest),
            started=int(data["started"]),
        )


@dataclass
class ReadResult:
    """One form's (or ad's) run."""

    label: str
    form_pk: int | None = None
    ad_id: str | None = None
    status: RunStatus = RunStatus.COMPLETE
    pages: int = 0
    rows: int = 0
    created: int = 0
    completed: int = 0
    unchanged: int = 0
    skipped: int = 0
    mark_before: dt.datetime | None = None
    mark_after: dt.datetime | None = None
    error: str = ""
    retry_after: float | None = None
    resume: Resume | None = None
    newest: dt.datetime | None = None
    oldest: dt.datetime | None = None
    ordered: bool = True

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.COMPLETE

    def add(self, counts: PageCounts) -> None:
        self.pages += 1
        self.rows += counts.rows
        self.created += counts.created
        self.completed += counts.completed
        self.unchanged += counts.unchanged
        self.skipped += counts.skipped
        if counts.newest is not None and (self.newest is None or counts.newest > self.newest):
            self.newest = counts.newest
        if counts.oldest is not None:
            if self.oldest is not None and counts.newest is not None:
                # Across pages too: the next page must not be newer than this one's end.
                self.ordered = self.ordered and counts.newest <= self.oldest
            if self.oldest is None or counts.oldest < self.oldest:
                self.oldest = counts.oldest
        self.ordered = self.ordered and counts.ordered


@dataclass
class SyncReport:
    results: list[ReadResult] = field(default_factory=list)
    # Page id -> error, for pages whose form list could not be refreshed.
    form_refresh_errors: dict[str, str] = field(default_factory=dict)
    forms_refreshed: int = 0

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def retry_after(self) -> float | None:
        waits = [r.retry_after for r in self.results if r.status == RunStatus.THROTTLED]
        return max((w for w in waits if w is not None), default=None) if waits else None

    def total(self, name: str) -> int:
        return sum(getattr(result, name) for result in self.results)

    def unfinished(self) -> list[ReadResult]:
        """Form runs that a later run must do again (or continue)."""
        return [
            r
            for r in self.results
            if r.form_pk is not None
            and r.status in (RunStatus.PARTIAL, RunStatus.THROTTLED, RunStatus.SKIPPED)
        ]


Progress = Callable[[ReadResult], None]


# --- Storing a page ------------------------------------------------------------------------


def store_page(
    rows: Iterable[Any],
    *,
    form: Form | None = None,
    page: Page | None = None,
    forms: dict[str, Form] | None = None,
) -> PageCounts:
    """Upsert one page of Graph lead rows in one transaction; see the module docstring.

    `form` (with its page) is the form being read; rows naming another form (ad reads) get
    theirs from `forms`, a cache filled through `ensure_forms` (pass the same dict for
    every page of a run). Queries: a fixed number per page, never one per lead.
    """
    counts = PageCounts()
    parsed: dict[str, dict[str, Any]] = {}
    previous: dt.datetime | None = None
    for row in rows:
        counts.rows += 1
        leadgen_id = meta_id(row.get("id")) if isinstance(row, Mapping) else None
        if leadgen_id is None:
            logger.warning("Bulk read: a row without a usable lead id was skipped")
            counts.skipped += 1
            continue
        if leadgen_id in parsed:
            counts.unchanged += 1  # the same lead twice on one page: stored once
            continue
        columns = lead_columns(dict(row))
        parsed[leadgen_id] = {"row": row, "columns": columns}
        created = columns.get("created_time")
        if created is not None:
            if previous is not None and created > previous:
                counts.ordered = False
            previous = created
            counts.newest = created if counts.newest is None else max(counts.newest, created)
            counts.oldest = created if counts.oldest is None else min(counts.oldest, created)
    if not parsed:
        return counts

    forms = forms if forms is not None else {}
    if form is not None:
        forms.setdefault(form.form_id, form)
    wanted = {
        fid
        for item in parsed.values()
        if (fid := meta_id(item["row"].get("form_id"))) and fid not in forms
    }
    if wanted:
        forms.update(ensure_forms(dict.fromkeys(wanted, page)))

    for attempt in range(3):
        # What an attempt wrote is counted afresh: a failed one was rolled back.
        counts.created = counts.completed = 0
        counts.created_pks, counts.completed_pks = [], []
        try:
            with whole_page_statements(), transaction.atomic():
                _upsert(parsed, counts, form=form, page=page, forms=forms)
            break
        except fastjson.TooDeep:
            # A row nested deeper than JSON can be written (never Meta's shape). Cutting
            # every row's nesting costs a walk of the page, so it is done only now.
            if attempt == 2:
                raise
            logger.warning("Bulk read: a lead nested too deeply was cut at %s levels", MAX_DEPTH)
            for item in parsed.values():
                item["columns"] = within_depth(item["columns"])
        except IntegrityError:
            # A webhook inserted one of these leads between our read and our insert
            # (PostgreSQL; SQLite's IMMEDIATE transactions serialise writers). Read again:
            # the lead is now "existing" and is completed instead.
            if attempt == 2:
                raise
    counts.unchanged += len(parsed) - counts.created - counts.completed
    return counts


def _form_of(item: dict[str, Any], *, form: Form | None, forms: dict[str, Form]) -> Form | None:
    fid = meta_id(item["row"].get("form_id"))
    return forms.get(fid, form) if fid else form


def _upsert(
    parsed: dict[str, dict[str, Any]],
    counts: PageCounts,
    *,
    form: Form | None,
    page: Page | None,
    forms: dict[str, Form],
) -> None:
    # Which of these leads we have: one plain statement (docs/performance.md#b9). Those
    # are then read under lock (PostgreSQL), so that a fetch worker's claim waits for us.
    stored = pks_by(Lead, "leadgen_id", parsed)
    existing = (
        {
            row["leadgen_id"]: row
            for row in Lead.objects.select_for_update()
            .filter(pk__in=list(stored.values()))
            .values("pk", "leadgen_id", "fetch_status", *KEPT_FROM_WEBHOOK)
        }
        if stored
        else {}
    )
    now = timezone.now()
    new: list[dict[str, Any]] = []
    completions: list[Lead] = []
    for leadgen_id, item in parsed.items():
        lead_form = _form_of(item, form=form, forms=forms)
        lead_page = (lead_form.page if lead_form is not None else None) or page
        known = existing.get(leadgen_id)
        if known is None:
            new.append(
                {
                    **item["columns"],
                    "leadgen_id": leadgen_id,
                    "form_id": lead_form.pk if lead_form is not None else None,
                    "page_id": lead_page.pk if lead_page is not None else None,
                }
            )
            continue
        values = {
            # Completions go through the ORM, whose JSON writer recurses: always cut.
            **within_depth(item["columns"]),
            "form": lead_form,
            "page": lead_page,
            "fetch_status": Status.COMPLETE,
            "fetched_at": now,
        }
        if known["fetch_status"] in INCOMPLETE:
            for name in KEPT_FROM_WEBHOOK:
                values.setdefault(name, known[name])
            # A fresh instance carries the defaults fetch_error="" and fetch_after=None;
            # bulk_update skips auto_now, hence updated_at.
            completions.append(
                Lead(pk=known["pk"], leadgen_id=leadgen_id, updated_at=now, **values)
            )
    if not new and not completions:
        return
    # Every lead that becomes complete enters the first stage: new ones are inserted
    # straight into it (one write per lead, not an INSERT then an UPDATE).
    entry = Entry.now()
    created: dict[str, int] = {}
    if new:
        created = insert_rows(
            Lead,
            new,
            key="leadgen_id",
            common={
                "source": Lead.Source.BULK,
                "fetch_status": Status.COMPLETE,
                "fetched_at": now,
                **entry.columns(),
            },
        )
        counts.created_pks = sorted(created.values())
    staged: list[int] = []
    if completions:
        Lead.objects.bulk_update(completions, COMPLETION_FIELDS)
        counts.completed_pks = [lead.pk for lead in completions]
        staged = stage_waiting_leads(counts.completed_pks, entry=entry)
    counts.created = len(new)
    counts.completed = len(completions)
    record_entries(
        [*counts.created_pks, *staged],
        entry=entry,
        created_times={created[row["leadgen_id"]]: row.get("created_time") for row in new},
    )


# --- Reading -------------------------------------------------------------------------------


def _call(request: Callable[[], dict], *, sleep: Callable[[float], None], what: str) -> dict:
    """One Graph page, with bounded retries: back-off for 5xx and timeouts, and waiting
    (never hammering) when Meta throttles. Raises what a retry cannot fix."""
    failures = throttles = 0
    while True:
        try:
            return request()
        except ThrottledError as exc:
            wait = exc.retry_after or THROTTLE_MAX_WAIT
            if wait > THROTTLE_MAX_WAIT or throttles >= THROTTLE_MAX_WAITS:
                raise
            throttles += 1
            logger.info("Bulk read %s: throttled, waiting %.0f s: %s", what, wait, exc)
            sleep(wait)
        except RetryableError as exc:
            if failures >= PAGE_RETRIES:
                raise
            wait = RETRY_BACKOFF * 2**failures
            failures += 1
            logger.info("Bulk read %s: %s; retrying in %.0f s", what, exc, wait)
            sleep(wait)


def _graph_pages(
    client: GraphClient,
    path: str,
    *,
    token: str,
    params: dict[str, Any],
    sleep: Callable[[float], None],
) -> Iterator[dict]:
    """`GraphClient.iter_pages` with a retry per page: a generator cannot be resumed after
    it raised, and a 500 on page 40 must not mean reading pages 1-39 again."""
    page = _call(lambda: client.get(path, token=token, params=params), sleep=sleep, what=path)
    previous: str | None = None
    while True:
        yield page
        paging = page.get("paging")
        next_url = paging.get("next") if isinstance(paging, dict) else None
        if not next_url:
            return
        if next_url == previous:
            raise GraphError("Graph paging returned the same next link twice")
        previous = next_url
        page = _call(lambda url=next_url: client.get_url(url, token=token), sleep=sleep, what=path)


def _now_unix() -> int:
    return int(time.time())


_END = object()


def prefetched(pages: Iterator[dict], *, ahead: int = 1) -> Iterator[dict]:
    """Iterate `pages` with the next page already being fetched in a thread.

    Storing a page and fetching the next one then overlap: the Graph round trip (Meta's
    time, the network, our JSON decoding) is hidden behind the database work, instead of
    adding to it. Pages and errors arrive in order; at most `ahead` pages wait in memory.
    The thread touches no database connection: it only runs the Graph client, whose
    retries and throttling waits (`_call`) happen there too.
    """
    slots: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=ahead)
    stopped = threading.Event()

    def offer(item: tuple[object, BaseException | None]) -> bool:
        while not stopped.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        # Errors made here are redacted with the page tokens loaded before the thread
        # started (below), without a query.
        with redaction.without_database():
            try:
                for page in pages:
                    if not offer((page, None)):
                        return
                offer((_END, None))
            except BaseException as exc:  # handed to the consumer, raised there
                offer((_END, exc))

    redaction.page_tokens()
    worker = threading.Thread(target=produce, name="leadloop-bulk-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        # The consumer stopped early (deadline, error): the worker finishes its current
        # request at most, then sees the flag.
        stopped.set()
        worker.join(timeout=float(settings.META_HTTP_TIMEOUT[1]) + 5)


def _unix(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _from_unix(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, tz=dt.UTC)


def lead_filtering(*, after: int | None, before: int | None) -> list[dict[str, Any]]:
    """Meta's `filtering` on `time_created`: strictly after `after`, before `before`."""
    filtering: list[dict[str, Any]] = []
    if after is not None:
        filtering.append({"field": "time_created", "operator": "GREATER_THAN", "value": after})
    if before is not None:
        filtering.append({"field": "time_created", "operator": "LESS_THAN", "value": before})
    return filtering


def _new_mark(*, newest: int | None, started: int) -> int | None:
    """Where the mark may go after a complete run that stored leads up to `newest`.

    Not simply the newest lead stored: Meta can list a lead a few minutes after its
    `created_time` (its own pipeline lags, as webhooks do), so a lead created at 10:00
    may appear at 10:04, after a run at 10:02 stored a lead of 10:01. A mark of 10:01
    would skip it forever. Capping the mark at the run's start minus LEAD_SYNC_SAFETY_LAG
    makes the next run read those last minutes again; storing is idempotent, so the cost
    is a few rows read twice.
    """
    if newest is None:
        return None
    return min(newest, started - int(settings.LEAD_SYNC_SAFETY_LAG))


def _read(
    result: ReadResult,
    *,
    path: str,
    token: str,
    after: int | None,
    before: int | None,
    form: Form | None,
    page: Page | None,
    client: GraphClient,
    sleep: Callable[[float], None],
    progress: Progress | None,
    deadline: float | None,
) -> None:
    """Read every page of `path` into `result`; Graph errors propagate to the caller."""
    params = {
        "fields": ",".join(LEAD_FIELDS),
        "limit": int(settings.LEAD_SYNC_PAGE_SIZE),
        "filtering": lead_filtering(after=after, before=before) or None,
    }
    try:
        _read_pages(
            result,
            client,
            path,
            params=params,
            token=token,
            form=form,
            page=page,
            sleep=sleep,
            progress=progress,
            deadline=deadline,
        )
    finally:
        if result.created >= sqlite.STATISTICS_AFTER_ROWS:
            sqlite.refresh_statistics()  # the lead table grew: keep the planner's view true


def _read_pages(
    result: ReadResult,
    client: GraphClient,
    path: str,
    *,
    params: dict[str, Any],
    token: str,
    form: Form | None,
    page: Page | None,
    sleep: Callable[[float], None],
    progress: Progress | None,
    deadline: float | None,
) -> None:
    forms: dict[str, Form] = {}
    pages = _graph_pages(client, path, token=token, params=params, sleep=sleep)
    for data in prefetched(pages):
        rows = data.get("data")
        counts = store_page(
            rows if isinstance(rows, list) else [], form=form, page=page, forms=forms
        )
        result.add(counts)
        if progress is not None:
            progress(result)
        paging = data.get("paging")
        more = isinstance(paging, dict) and bool(paging.get("next"))
        if more and deadline is not None and time.monotonic() >= deadline:
            result.status = RunStatus.PARTIAL
            return


def _fail(result: ReadResult, exc: GraphError, *, page: Page | None, token: str) -> None:
    """Classify a Graph error that ended a run; the caller keeps the mark unchanged."""
    if isinstance(exc, ThrottledError):
        result.status = RunStatus.THROTTLED
        result.retry_after = exc.retry_after or THROTTLE_MAX_WAIT
        result.error = f"Meta is throttling lead reads; retry in {result.retry_after:.0f} s: {exc}"
    elif isinstance(exc, TokenError):
        result.status = RunStatus.UNAUTHORIZED
        result.error = f"Meta rejected the token: {exc}"
        if page is not None:
            fetching.reject_page_token(page, reason=str(exc), token=token)
    elif isinstance(exc, RetryableError):
        result.status = RunStatus.FAILED
        result.error = f"A page kept failing after {PAGE_RETRIES + 1} attempts: {exc}"
    else:
        result.status = RunStatus.FAILED
        result.error = str(exc)
    result.error = redact(result.error, token)
    logger.warning("Bulk read of %s stopped: %s", result.label, result.error)


def read_form(
    form: Form,
    *,
    token: str,
    since: int | None = None,
    until: int | None = None,
    client: GraphClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
    deadline: float | None = None,
    resume: Resume | None = None,
) -> ReadResult:
    """Read a form's leads after its high-water mark (or after `since`) and before `until`.

    The mark advances only when every page was read, and only if the run covered
    everything after the old mark: with a `since` later than the mark, the leads in
    between were not read, so the mark stays. A run stopped by `deadline` (a monotonic
    time) returns a `resume` point for a continuation.
    """
    client = client or GraphClient(max_wait=THROTTLE_MAX_WAIT)
    started = resume.started if resume else _now_unix()
    mark = _unix(form.leads_synced_until)
    result = ReadResult(
        label=f"form {form}",
        form_pk=form.pk,
        mark_before=form.leads_synced_until,
        mark_after=form.leads_synced_until,
    )
    after = since if since is not None else mark
    # A gap between the mark and `since` was not read: the mark must not jump over it.
    covers_from_mark = since is None or (mark is not None and since <= mark)
    before = until
    if resume is not None:
        before = resume.until if before is None else min(before, resume.until)
    try:
        _read(
            result,
            path=f"{form.form_id}/leads",
            token=token,
            after=after,
            before=before,
            form=form,
            page=form.page,
            client=client,
            sleep=sleep,
            progress=progress,
            deadline=deadline,
        )
    except GraphError as exc:
        _fail(result, exc, page=form.page, token=token)

    newest = _unix(result.newest)
    if resume is not None and resume.newest is not None:
        newest = resume.newest if newest is None else max(newest, resume.newest)
    if result.status == RunStatus.PARTIAL:
        if result.ordered and result.oldest is not None:
            oldest = _unix(result.oldest)
            assert oldest is not None  # noqa: S101 - for the type checker
            result.resume = Resume(
                until=oldest + 1 if before is None else min(before, oldest + 1),
                newest=newest,
                started=started,
            )
    elif result.ok and covers_from_mark:
        target = _new_mark(newest=newest, started=started)
        if target is not None and (mark is None or target > mark):
            new_mark = _from_unix(target)
            # Conditional: a concurrent run that got further is never moved back.
            Form.objects.filter(pk=form.pk).filter(
                Q(leads_synced_until__isnull=True) | Q(leads_synced_until__lt=new_mark)
            ).update(leads_synced_until=new_mark)
            form.leads_synced_until = result.mark_after = new_mark
    if result.status != RunStatus.PARTIAL:
        form.leads_sync_at = timezone.now()
        form.leads_sync_error = result.error
        Form.objects.filter(pk=form.pk).update(
            leads_sync_at=form.leads_sync_at, leads_sync_error=form.leads_sync_error
        )
    return result


def read_ad(
    ad_id: str,
    *,
    token: str,
    page: Page | None = None,
    since: int | None = None,
    until: int | None = None,
    client: GraphClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> ReadResult:
    """Read an ad's leads (`/{ad-id}/leads`). There is no mark per ad: an ad's leads are
    also its form's, and the form's reads keep the mark."""
    client = client or GraphClient(max_wait=THROTTLE_MAX_WAIT)
    result = ReadResult(label=f"ad {ad_id}", ad_id=ad_id)
    try:
        _read(
            result,
            path=f"{ad_id}/leads",
            token=token,
            after=since,
            before=until,
            form=None,
            page=page,
            client=client,
            sleep=sleep,
            progress=progress,
            deadline=None,
        )
    except GraphError as exc:
        _fail(result, exc, page=page, token=token)
    return result


# --- Which forms -------------------------------------------------------------------------


def connected_pages() -> list[Page]:
    """Pages we can read: their own usable token, or META_ACCESS_TOKEN."""
    return [page for page in Page.objects.order_by("pk") if fetching.usable_token(page)]


def refresh_forms(pages: Sequence[Page], *, client: GraphClient | None = None) -> SyncReport:
    """Reload each page's forms with their questions, so a form created on Meta since the
    last run is read too, without anyone reconfiguring anything."""
    client = client or GraphClient(max_wait=THROTTLE_MAX_WAIT)
    report = SyncReport()
    for page in pages:
        token = fetching.usable_token(page)
        if not token:
            continue
        try:
            created, updated = sync_forms(page, token=token, client=client)
        except TokenError as exc:
            fetching.reject_page_token(page, reason=str(exc), token=token)
            report.form_refresh_errors[page.page_id] = f"Meta rejected the token: {exc}"
        except GraphError as exc:
            # The forms we know are still read; the list is refreshed next time.
            logger.warning("Could not refresh the forms of page %s: %s", page.page_id, exc)
            report.form_refresh_errors[page.page_id] = str(exc)
        else:
            report.forms_refreshed += created + updated
    return report


def _forms_of(pages: Sequence[Page]) -> list[Form]:
    return list(
        Form.objects.filter(page__in=pages)
        .exclude(status__in=SKIPPED_FORM_STATUSES)
        .select_related("page")
        .order_by("page_id", "pk")
    )


def _check_window(since: int | None, until: int | None) -> None:
    if since is not None and until is not None and since >= until:
        raise SyncError(f"--since ({since}) must be before --until ({until}).")


def plan_forms(*, page_id: str | None = None, form_id: str | None = None) -> list[Form]:
    """The forms a run reads; raises SyncError with a message meant for a person."""
    if form_id is not None:
        form = Form.objects.select_related("page").filter(form_id=form_id).first()
        if form is None:
            raise SyncError(
                f"Unknown form {form_id}: run connect_page for its page, which loads its "
                "forms (or wait for its first lead)."
            )
        if page_id is not None and (form.page is None or form.page.page_id != page_id):
            raise SyncError(f"Form {form_id} does not belong to page {page_id}.")
        if not fetching.usable_token(form.page):
            raise SyncError(
                f"No usable token for form {form_id}: run connect_page for its page or set "
                "META_ACCESS_TOKEN."
            )
        return [form]
    return _forms_of(plan_pages(page_id=page_id))


def plan_pages(*, page_id: str | None = None) -> list[Page]:
    """The pages a run reads: one (which must be usable) or every connected page."""
    if page_id is None:
        return connected_pages()
    page = Page.objects.filter(page_id=page_id).first()
    if page is None:
        raise SyncError(f"Unknown page {page_id}: run connect_page {page_id} first.")
    if not fetching.usable_token(page):
        raise SyncError(
            f"No usable token for page {page_id} ({page.get_token_status_display()}): "
            "run connect_page with a new token or set META_ACCESS_TOKEN."
        )
    return [page]


def sync_leads(
    *,
    page_id: str | None = None,
    form_id: str | None = None,
    ad_id: str | None = None,
    since: int | None = None,
    until: int | None = None,
    refresh: bool = True,
    client: GraphClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
    on_start: Callable[[ReadResult], None] | None = None,
) -> SyncReport:
    """`manage.py sync_leads`: read one ad, one form, a page's forms, or every connected
    form. Raises SyncError before any Graph call when the options make no sense."""
    _check_window(since, until)
    client = client or GraphClient(max_wait=THROTTLE_MAX_WAIT)
    if ad_id is not None:
        if form_id is not None:
            raise SyncError("--ad and --form cannot be combined: an ad's leads span its forms.")
        return SyncReport(
            results=[
                _sync_ad(
                    ad_id,
                    page_id=page_id,
                    since=since,
                    until=until,
                    client=client,
                    sleep=sleep,
                    progress=progress,
                    on_start=on_start,
                )
            ]
        )
    report = SyncReport()
    if form_id is None:
        pages = plan_pages(page_id=page_id)
        if refresh:
            # Before listing the forms, so a form created on Meta since the last run is
            # read too without anyone reconfiguring anything.
            report = refresh_forms(pages, client=client)
        forms = _forms_of(pages)
    else:
        forms = plan_forms(page_id=page_id, form_id=form_id)
    report.results.extend(
        run_forms(
            forms,
            since=since,
            until=until,
            client=client,
            sleep=sleep,
            progress=progress,
            on_start=on_start,
        )
    )
    return report


def _sync_ad(
    ad_id: str,
    *,
    page_id: str | None,
    since: int | None,
    until: int | None,
    client: GraphClient,
    sleep: Callable[[float], None],
    progress: Progress | None,
    on_start: Callable[[ReadResult], None] | None,
) -> ReadResult:
    page: Page | None = None
    if page_id is not None:
        page = Page.objects.filter(page_id=page_id).first()
        if page is None:
            raise SyncError(f"Unknown page {page_id}: run connect_page {page_id} first.")
    else:
        # The page of a lead we already have from this ad gives the token to use.
        known = Lead.objects.filter(ad_id=ad_id, page__isnull=False).select_related("page")
        first = known.order_by("-pk").first()
        page = first.page if first is not None else None
    token = fetching.usable_token(page)
    if not token:
        raise SyncError(
            f"No usable token to read ad {ad_id}: pass --page with a connected page or set "
            "META_ACCESS_TOKEN."
        )
    if on_start is not None:
        on_start(ReadResult(label=f"ad {ad_id}", ad_id=ad_id))
    return read_ad(
        ad_id,
        token=token,
        page=page,
        since=since,
        until=until,
        client=client,
        sleep=sleep,
        progress=progress,
    )


def run_forms(
    forms: Sequence[Form],
    *,
    since: int | None = None,
    until: int | None = None,
    client: GraphClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
    on_start: Callable[[ReadResult], None] | None = None,
    deadline: float | None = None,
    resume: Mapping[int, Resume] | None = None,
) -> list[ReadResult]:
    """Read each form in turn. A form whose run fails does not stop the others, except:
    once Meta throttles beyond the bound, the remaining forms are not started (they would
    only meet the same limit), and a rejected token skips the rest of that page's forms."""
    client = client or GraphClient(max_wait=THROTTLE_MAX_WAIT)
    results: list[ReadResult] = []
    dead_pages: set[int] = set()
    stop: ReadResult | None = None
    for form in forms:
        # Out of time only after one form ran: every task makes progress.
        out_of_time = bool(results) and deadline is not None and time.monotonic() >= deadline
        if stop is not None or out_of_time:
            skipped = ReadResult(
                label=f"form {form}",
                form_pk=form.pk,
                status=RunStatus.SKIPPED if stop is None else RunStatus.THROTTLED,
                mark_before=form.leads_synced_until,
                mark_after=form.leads_synced_until,
                retry_after=stop.retry_after if stop is not None else None,
                error="not started: " + (stop.error if stop is not None else "out of time"),
            )
            results.append(skipped)
            continue
        token = fetching.usable_token(form.page)
        if not token or (form.page_id is not None and form.page_id in dead_pages):
            results.append(
                ReadResult(
                    label=f"form {form}",
                    form_pk=form.pk,
                    status=RunStatus.UNAUTHORIZED,
                    mark_before=form.leads_synced_until,
                    mark_after=form.leads_synced_until,
                    error="no usable token for its page",
                )
            )
            continue
        if on_start is not None:
            on_start(ReadResult(label=f"form {form}", form_pk=form.pk))
        result = read_form(
            form,
            token=token,
            since=since,
            until=until,
            client=client,
            sleep=sleep,
            progress=progress,
            deadline=deadline,
            resume=(resume or {}).get(form.pk),
        )
        results.append(result)
        if result.status == RunStatus.THROTTLED:
            stop = result
        elif result.status == RunStatus.UNAUTHORIZED and form.page_id is not None:
            dead_pages.add(form.page_id)
    return results


def reconcile(
    *,
    form_pks: Sequence[int] | None = None,
    resume: Mapping[int, Resume] | None = None,
    client: GraphClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
) -> SyncReport:
    """The scheduled reconciliation: refresh every connected page's forms, then read every
    connected form after its mark. With `form_pks` (a continuation), only those forms."""
    client = client or GraphClient(max_wait=THROTTLE_MAX_WAIT)
    if form_pks is None:
        report = refresh_forms(connected_pages(), client=client)
        forms = _forms_of(connected_pages())
    else:
        report = SyncReport()
        by_pk = Form.objects.select_related("page").in_bulk(list(form_pks))
        forms = [by_pk[pk] for pk in form_pks if pk in by_pk]
    report.results.extend(
        run_forms(forms, client=client, sleep=sleep, deadline=deadline, resume=resume)
    )
    return report
