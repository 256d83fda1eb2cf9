"""django-q2 task entry points. They take ids only and delegate to services; each is safe
to run twice (claims and unique constraints make repeats no-ops)."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from core.db import sqlite, tasks
from leads import bulk, fetching, retention
from leads.models import Form, Page

logger = logging.getLogger(__name__)


def fetch_leads(lead_pks: list[int]) -> None:
    fetching.fetch_many(lead_pks)


def fetch_leads_by_leadgen_id(leadgen_ids: list[str]) -> None:
    """The fetch a webhook queues for the leads it created (see `leads.ingestion`)."""
    fetching.fetch_many(fetching.lead_pks(leadgen_ids))


def sweep_lead_fetches() -> dict[str, int]:
    """Scheduled safety net (every minute): release claims of dead workers, resume pages
    whose token changed, and queue every lead whose fetch is due (deferred retries, and
    leads whose task was lost because the broker was down)."""
    released = fetching.release_stale_claims()
    due = fetching.due_lead_ids()
    for chunk in tasks.chunks(due, fetching.FETCH_CHUNK):
        tasks.enqueue("leads.tasks.fetch_leads", chunk)
    # After the due list, so resumed leads (queued by resume itself) are not queued twice.
    resumed = fetching.resume_pages_with_new_tokens()
    if released or resumed or due:
        logger.info(
            "Lead fetch sweep: %d released, %d resumed, %d queued", released, resumed, len(due)
        )
    return {"released": released, "resumed": resumed, "queued": len(due)}


def sync_now(page_pks: list[int], form_pks: list[int]) -> dict[str, int]:
    """The admin's "sync now": refresh the forms of these pages, then bulk-read the leads of
    their forms and of `form_pks` after each form's mark. Runs in a worker because a read
    may page through thousands of leads or wait out Meta's throttling; what is left at the
    time budget continues in a reconciliation task. Idempotent (upserts, conditional mark).
    """
    pages = list(Page.objects.filter(pk__in=page_pks).order_by("pk"))
    report = bulk.refresh_forms(pages) if pages else bulk.SyncReport()
    forms = (
        Form.objects.filter(
            (Q(page__in=pages) & ~Q(status__in=bulk.SKIPPED_FORM_STATUSES)) | Q(pk__in=form_pks)
        )
        .select_related("page")
        .order_by("pk")
    )
    report.results.extend(
        bulk.run_forms(list(forms), deadline=time.monotonic() + _reconcile_budget())
    )
    _follow_up(report)
    return {
        "forms": len(report.results),
        "created": report.total("created"),
        "completed": report.total("completed"),
        "failed": sum(1 for r in report.results if r.status == bulk.RunStatus.FAILED),
    }


# One reconciliation at a time: a continuation or a rescheduled run may meet the next
# scheduled one, and two runs of the same form would only read it twice.
RECONCILE_LOCK = "leadloop:reconcile-leads"
RESCHEDULED_NAME = "leads: reconcile leads (after throttling)"


def _reconcile_budget() -> float:
    # Stop starting new pages well before django-q2 kills the task (`timeout`): one page
    # can still take its retries after the check. What is left goes to a continuation.
    return float(settings.Q_CLUSTER["timeout"]) / 2  # type: ignore[arg-type]


def reconcile_leads(
    form_pks: list[int] | None = None, resume: dict[str, dict] | None = None
) -> dict[str, Any]:
    """Scheduled every RECONCILE_MINUTES: refresh every connected page's forms, then read
    every connected form's leads after its high-water mark (leads.bulk). Stores the leads
    whose webhook never came and completes those whose fetch failed.

    Work left at the time budget is queued as a continuation (`form_pks`, and `resume`
    keyed by form pk as a string: task arguments travel as JSON-like data). When Meta
    throttles beyond what a run waits in place, the rest runs once the pause is over.
    """
    owner = uuid.uuid4().hex
    if not cache.add(RECONCILE_LOCK, owner, timeout=int(settings.Q_CLUSTER["timeout"])):  # type: ignore[call-overload]
        logger.info("Reconciliation already running; this run is skipped")
        return {"skipped": True}
    try:
        report = bulk.reconcile(
            form_pks=form_pks,
            resume={int(pk): bulk.Resume.from_dict(data) for pk, data in (resume or {}).items()},
            deadline=time.monotonic() + _reconcile_budget(),
        )
    finally:
        if cache.get(RECONCILE_LOCK) == owner:
            cache.delete(RECONCILE_LOCK)
    _follow_up(report)
    summary = {
        "forms": len(report.results),
        "created": report.total("created"),
        "completed": report.total("completed"),
        "failed": sum(1 for r in report.results if r.status == bulk.RunStatus.FAILED),
        "unfinished": len(report.unfinished()),
    }
    if summary["created"] or summary["completed"] or summary["failed"]:
        logger.info("Reconciliation: %s", summary)
    return summary


def _follow_up(report: bulk.SyncReport) -> None:
    unfinished = report.unfinished()
    if not unfinished:
        return
    pks = [r.form_pk for r in unfinished if r.form_pk is not None]
    resume = {str(r.form_pk): r.resume.as_dict() for r in unfinished if r.resume is not None}
    retry_after = report.retry_after
    if retry_after is None:
        # Out of time, not throttled: carry on at once in a new task.
        tasks.enqueue("leads.tasks.reconcile_leads", pks, resume)
        return
    from django_q.models import Schedule

    # One pending follow-up at most; the regular schedule keeps running meanwhile and
    # does not call Meta while the shared pause lasts.
    Schedule.objects.update_or_create(
        name=RESCHEDULED_NAME,
        defaults={
            "func": "leads.tasks.reconcile_leads",
            "args": repr((pks, resume)),
            "schedule_type": Schedule.ONCE,
            # -1: django-q2 deletes a ONCE schedule after it ran.
            "repeats": -1,
            "next_run": timezone.now() + dt.timedelta(seconds=math.ceil(retry_after) + 1),
        },
    )
    logger.warning(
        "Reconciliation throttled by Meta; %d forms resume in %.0f s", len(pks), retry_after
    )


def refresh_statistics() -> None:
    sqlite.refresh_statistics()


def prune_webhook_deliveries() -> dict[str, int]:
    """Scheduled hourly: delete the webhook deliveries past their retention
    (`leads.retention`); what the time budget leaves, the next run deletes."""
    pruned = retention.prune_deliveries(deadline=time.monotonic() + _reconcile_budget())
    if pruned:
        logger.info("Pruned %d webhook deliveries past their retention", pruned)
    return {"pruned": pruned}
