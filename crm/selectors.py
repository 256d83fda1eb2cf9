"""Read paths of the sales workspace.

Every function takes a lead queryset that the caller built from `crm.access.visible_leads`
(usually narrowed by a filter), so nothing here can widen what a user sees. Each runs a
fixed number of queries whatever the number of leads: the board and the list are asserted
to cost the same with 10 leads as with 1,000.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Page, Paginator
from django.db.models import Count, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from crm.models import Note
from leads.models import Lead, PipelineStage, StageChange

BOARD_COLUMN_SIZE = 25
LIST_PAGE_SIZE = 50
# Counting every match of a broad filter over 100,000 leads costs more than the page
# itself; past this many the list says "10,000+" instead.
LIST_COUNT_CAP = 10_000

# The board's card order: newest lead first. It is the (stage, -created_time) index order,
# so each column's first cards are read straight from the index.
CARD_ORDER = ("-created_time", "-id")

# Only what a card shows: leads carry their raw Graph answer and field_data (kilobytes of
# JSON each), which a board of 150 cards must not load.
_CARD_FIELDS = (
    "id",
    "leadgen_id",
    "full_name",
    "email",
    "phone",
    "created_time",
    "stage_changed_at",
    "fetch_status",
    "stage__id",
    "stage__slug",
    "form__id",
    "form__name",
    "form__form_id",
    "campaign_name",
    "assignment__lead_id",
    "assignment__owner__id",
    "assignment__owner__username",
    "assignment__owner__first_name",
    "assignment__owner__last_name",
)
_ROW_FIELDS = (
    *_CARD_FIELDS,
    "platform",
    "is_organic",
    "page__id",
    "page__name",
    "page__page_id",
    "stage__name",
    "stage__position",
)


def card_queryset(leads: QuerySet[Lead]) -> QuerySet[Lead]:
    return leads.select_related("stage", "form", "assignment__owner").only(*_CARD_FIELDS)


def row_queryset(leads: QuerySet[Lead]) -> QuerySet[Lead]:
    return leads.select_related("form", "page", "stage", "assignment__owner").only(*_ROW_FIELDS)


@dataclass
class Column:
    stage: PipelineStage
    count: int
    cards: list[Lead] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return max(self.count - len(self.cards), 0)


def stage_counts(leads: QuerySet[Lead]) -> dict[int, int]:
    """Leads per stage in one aggregate query, summed here over pages.

    Grouped by page and stage, so that the (page, stage) index answers it alone, in its
    own order, whether or not the planner has statistics: grouped by stage only, SQLite
    with statistics preferred the stage index and read every lead row for its page (4x
    slower for a salesperson at 100,000 leads, bench/ui).
    """
    rows = (
        leads.filter(stage__isnull=False)
        .values("page_id", "stage_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["stage_id"]] = counts.get(row["stage_id"], 0) + row["n"]
    return counts


def board_columns(leads: QuerySet[Lead], *, per_column: int = BOARD_COLUMN_SIZE) -> list[Column]:
    """One column per pipeline stage with its count and first cards, in three queries:
    stages, counts, and the cards of every column at once.

    The cards come from one query whose WHERE is an OR of one small "first N of this
    stage" subquery per stage, each walking the (stage, -created_time) index. A window
    function (ROW_NUMBER per stage) would number all 100,000 leads to keep 150.
    """
    stages = list(PipelineStage.objects.order_by("position", "id"))
    counts = stage_counts(leads)
    columns = {stage.pk: Column(stage=stage, count=counts.get(stage.pk, 0)) for stage in stages}
    firsts = Q()
    for stage in stages:
        if columns[stage.pk].count:
            head = leads.filter(stage=stage).order_by(*CARD_ORDER).values("pk")[:per_column]
            firsts |= Q(pk__in=head)
    if firsts:
        cards = card_queryset(leads.filter(firsts)).order_by("stage_id", *CARD_ORDER)
        for lead in with_owner(cards):
            columns[lead.stage_id].cards.append(lead)
    return list(columns.values())


def column_cards(
    leads: QuerySet[Lead], *, stage: PipelineStage, offset: int, limit: int = BOARD_COLUMN_SIZE
) -> list[Lead]:
    """The next cards of one column ("load more")."""
    cards = card_queryset(leads.filter(stage=stage)).order_by(*CARD_ORDER)
    return with_owner(cards[offset : offset + limit])


def with_owner(leads: Iterable[Lead]) -> list[Lead]:
    """Set `lead.owner` (a user or None) from the select_related assignment, once, rather
    than have templates read `lead.assignment`, which raises where there is none.

    Also sets `lead.next_task`, the card's "next task" line: None until tasks exist (the
    card template shows the line only when it is set)."""
    result = []
    for lead in leads:
        try:
            lead.owner = lead.assignment.owner  # type: ignore[attr-defined]
        except ObjectDoesNotExist:
            lead.owner = None  # type: ignore[attr-defined]
        lead.next_task = None  # type: ignore[attr-defined]
        result.append(lead)
    return result


class CappedPaginator(Paginator):
    """A paginator for leads whose count stops at `cap` (the list then says "10,000+"):
    the page is cheap at any size, counting a broad filter over every lead is not.

    A page is read in two steps: the ids of its rows (sorted and sliced on the lead table
    and its indexes alone), then those rows with their page, form, stage and owner. Joined
    first, the database would join every match before sorting them to keep 50. The rows
    are read from `visible` (the user's leads, which the filtered list narrows) by id:
    the filters (a search scans indexes) are not evaluated a third time.
    """

    def __init__(
        self, object_list: QuerySet[Lead], per_page: int, *, cap: int, visible: QuerySet[Lead]
    ) -> None:
        super().__init__(object_list, per_page)
        self.cap = cap
        self.visible = visible

    @cached_property
    def count(self) -> int:
        # Unordered: counting needs no sort, and an ORDER BY inside the capped subquery
        # would make the database sort every match before counting 10,001 of them.
        return self.object_list.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap

    def get_page(self, number: Any) -> Page:
        """The page `number`: the last one when past the end, the first when not a number.
        The count always runs (capped), so every list costs the same number of queries."""
        try:
            number = max(int(number), 1)
        except (TypeError, ValueError):
            number = 1
        number = min(number, self.num_pages)
        bottom = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        rows = {lead.pk: lead for lead in row_queryset(self.visible.filter(pk__in=ids))}
        return Page(with_owner(rows[pk] for pk in ids if pk in rows), number, self)


def paginate_leads(
    leads: QuerySet[Lead], page_number: Any, *, visible: QuerySet[Lead]
) -> tuple[CappedPaginator, Page]:
    """A page of `leads`, a filtered subset of `visible` (what the user may see)."""
    paginator = CappedPaginator(leads, LIST_PAGE_SIZE, cap=LIST_COUNT_CAP, visible=visible)
    return paginator, paginator.get_page(page_number)


# --- Live refresh ----------------------------------------------------------------------
#
# The board, the list and a lead's page are rendered with a cursor: the id of the newest
# stage change. Every lead enters the pipeline with a stage change and every move records
# one, so "what changed since" is a range of that table's primary key, and an idle refresh
# is one indexed read. Counts are read whole (never summed from deltas), so they heal even
# when a change is missed: on PostgreSQL a transaction that took its ids before another
# and commits after it is behind the cursor when it lands (its card shows on the next
# load, its count on the next refresh that sees any change).

# Stage changes read per refresh: a bulk read that stages 5,000 leads at once is taken
# in steps, the cursor advancing by at most this many each time.
LIVE_BATCH = 500
# Changed cards (or rows) sent per refresh: the page updates those it shows.
LIVE_MOVED = 50
# The "n new leads" notice stops counting here ("99+").
LIVE_NEW_CAP = 99


def latest_change_id() -> int:
    """The cursor a page is rendered with (0 for an empty pipeline)."""
    return StageChange.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


Change = tuple[int, int, int | None]  # (stage change id, lead id, from stage id)


def changes_since(since: int) -> list[Change]:
    """The next stage changes after `since`, of every lead (empty: nothing changed)."""
    return list(
        StageChange.objects.filter(pk__gt=since)
        .order_by("pk")
        .values_list("pk", "lead_id", "from_stage_id")[:LIVE_BATCH]
    )


@dataclass
class LiveChanges:
    """What `changes` did to a page's leads: `cursor` is where the next refresh starts,
    `entered` counts the leads that entered the pipeline (new leads), `changed` holds the
    leads changed (entered or moved) as they now are, most recently changed first."""

    cursor: int
    entered: int = 0
    changed: list[Lead] = field(default_factory=list)


def live_changes(
    leads: QuerySet[Lead],
    changes: list[Change],
    *,
    shape: Callable[[QuerySet[Lead]], QuerySet[Lead]] = card_queryset,
) -> LiveChanges:
    """Apply `changes` (non-empty, from `changes_since`) to `leads`, the page's visible
    and filtered leads, in one query: which of the changed leads `leads` holds, read as
    `shape` reads them. A lead the user may not see, or that the filter leaves out, is
    neither counted nor sent."""
    shaped = shape(leads.filter(pk__in={lead for _, lead, _ in changes}).order_by())
    found = {lead.pk: lead for lead in shaped}
    result = LiveChanges(cursor=changes[-1][0])
    last_change: dict[int, int] = {}
    for pk, lead, from_stage in changes:
        if lead in found:
            last_change[lead] = pk
            if from_stage is None:
                result.entered += 1
    newest = sorted(last_change, key=last_change.__getitem__, reverse=True)[:LIVE_MOVED]
    result.changed = with_owner(found[pk] for pk in newest)
    return result


def with_live_cursors(leads: QuerySet[Lead]) -> QuerySet[Lead]:
    """Annotate each lead with its newest stage change and note ids (`last_change`,
    `last_note`; 0 for none): a lead's page is refreshed when either moves on."""
    return leads.annotate(
        last_change=Coalesce(
            Subquery(
                StageChange.objects.filter(lead=OuterRef("pk")).order_by("-pk").values("pk")[:1]
            ),
            0,
        ),
        last_note=Coalesce(
            Subquery(Note.objects.filter(lead=OuterRef("pk")).order_by("-pk").values("pk")[:1]),
            0,
        ),
    )


# --- The lead detail ------------------------------------------------------------------

# Labels for Meta's standard question keys (META.md), for answers whose form we do not
# know (a form not synced yet) or whose question carries no label.
STANDARD_LABELS: dict[str, Any] = {
    "email": _("Email"),
    "work_email": _("Work email"),
    "full_name": _("Full name"),
    "first_name": _("First name"),
    "last_name": _("Last name"),
    "phone_number": _("Phone number"),
    "work_phone_number": _("Work phone number"),
    "city": _("City"),
    "state": _("State"),
    "province": _("Province"),
    "zip_code": _("ZIP code"),
    "post_code": _("Postal code"),
    "country": _("Country"),
    "date_of_birth": _("Date of birth"),
    "gender": _("Gender"),
    "street_address": _("Street address"),
    "company_name": _("Company name"),
    "job_title": _("Job title"),
}


@dataclass(frozen=True)
class Answer:
    key: str
    label: str
    values: tuple[str, ...]

    @property
    def answered(self) -> bool:
        return any(value.strip() for value in self.values)


@dataclass(frozen=True)
class Disclaimer:
    key: str
    checked: bool


def _values(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, list):
        return tuple("" if value is None else str(value) for value in raw)
    if raw is None:
        return ()
    return (str(raw),)


def lead_answers(lead: Lead) -> tuple[list[Answer], list[Answer]]:
    """(answers to the form's questions, in the form's order and with its labels — an
    unanswered question included as empty; then every other answer as Meta sent it:
    custom field ids, store-locator numbers such as `selected_dealer`, anything the form's
    question list does not name). `field_data` is read defensively: it is stored as sent.
    """
    sent: dict[str, tuple[str, ...]] = {}
    order: list[str] = []
    for item in lead.field_data if isinstance(lead.field_data, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            if item["name"] not in sent:
                order.append(item["name"])
            sent[item["name"]] = _values(item.get("values"))
    questions = lead.form.questions if lead.form and isinstance(lead.form.questions, list) else []
    in_form: list[Answer] = []
    asked: set[str] = set()
    for question in questions:
        if not isinstance(question, dict) or not isinstance(question.get("key"), str):
            continue
        key = question["key"]
        if key in asked:
            continue
        asked.add(key)
        label = str(question.get("label") or STANDARD_LABELS.get(key) or key)
        values = sent.get(key, ())
        options = {
            str(option.get("key")): str(option.get("value"))
            for option in question.get("options") or []
            if isinstance(option, dict) and option.get("key") and option.get("value")
        }
        if options:
            # Multiple-choice answers may come as option keys; show what the lead saw.
            values = tuple(options.get(value, value) for value in values)
        in_form.append(Answer(key=key, label=label, values=values))
    others = [
        Answer(key=name, label=str(STANDARD_LABELS.get(name, name)), values=sent[name])
        for name in order
        if name not in asked
    ]
    return in_form, others


def lead_disclaimers(lead: Lead) -> list[Disclaimer]:
    """Custom disclaimer checkboxes: Meta sends `is_checked` as "1" or ""."""
    result = []
    responses = lead.custom_disclaimer_responses
    for item in responses if isinstance(responses, list) else []:
        if not isinstance(item, dict):
            continue
        checked = item.get("is_checked")
        is_checked = checked is True or str(checked).strip().lower() in ("1", "true")
        result.append(Disclaimer(key=str(item.get("checkbox_key") or "?"), checked=is_checked))
    return result


def conversion_events(lead: Lead) -> list[Model] | None:
    """The lead's conversion events (capi's outbox), found through the reverse relation so
    that crm never imports capi. None when no such relation is installed."""
    for relation in Lead._meta.related_objects:
        related = relation.related_model
        if related._meta.app_label == "capi" and related._meta.model_name == "conversionevent":
            manager = getattr(lead, relation.get_accessor_name())
            return list(manager.all().order_by("-pk"))
    return None


def stage_history(lead: Lead) -> Iterable[Any]:
    return lead.stage_changes.select_related("from_stage", "to_stage", "changed_by").order_by(
        "-changed_at", "-id"
    )
