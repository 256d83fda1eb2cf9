"""Storing parsed rows: in chunks of a fixed number of queries, inside one transaction;
a lead is keyed by its leadgen id, and data fetched from the Graph API is never overwritten
(see the package's docstring for the rules)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.db.sqlite import whole_page_statements
from leads.csv_import.mapping import ParsedRow, Rejection, parse_row
from leads.csv_import.reading import NotALeadExport, decode, read_rows
from leads.keys import ensure_forms
from leads.lead_data import LEAD_COLUMNS
from leads.models import Form, Lead, Page
from leads.pipeline import enter_pipeline_many

Status = Lead.FetchStatus

# Rows stored per transaction step: a fixed number of queries each, bounded memory.
CHUNK = 500
# Columns a CSV row may write on a lead; compared to decide between updated and unchanged.
# An export has no disclaimers: a lead keeps the ones it has.
CSV_FIELDS = (
    "page",
    "form",
    *(name for name in LEAD_COLUMNS if name != "custom_disclaimer_responses"),
)
COMPLETION_FIELDS = ("fetch_status", "fetch_error", "fetch_after", "updated_at")


@dataclass
class ImportReport:
    encoding: str = ""
    delimiter: str = ""
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    # Of the unchanged: leads whose data came from the Graph API and was kept.
    kept_graph_data: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    form_ids: list[str] = field(default_factory=list)

    @property
    def delimiter_name(self) -> str:
        return {"\t": "tab", ",": "comma", ";": "semicolon"}.get(self.delimiter, self.delimiter)


def import_export(
    data: bytes, *, form_id: str | None = None, pages: QuerySet[Page] | None = None
) -> ImportReport:
    """Import a lead export (bytes of the file). Raises NotALeadExport, changing nothing,
    when the file is not one; otherwise returns the report (rejected rows included).
    `pages` limits the import to leads of those pages (see the package docstring); None
    means every page.

    All or nothing at the database level: the rows are stored in chunks inside one
    transaction, so a failure midway (a lost database connection) leaves no half import.
    """
    text, encoding = decode(data)
    header, delimiter, rows = read_rows(text)
    if "form_id" not in {name.lower() for name in header} and form_id is None:
        raise NotALeadExport("The file has no form_id column: give the form with --form.")
    report = ImportReport(encoding=encoding, delimiter=delimiter)
    seen: dict[str, int] = {}
    forms: dict[str, Form] = {}
    chunk: list[ParsedRow] = []
    # An importer sees a handful of pages: their ids are read once.
    scope = None if pages is None else frozenset(pages.values_list("pk", flat=True))
    with transaction.atomic():
        for number, values in rows:
            parsed = parse_row(number, values, header, default_form_id=form_id)
            if parsed is None:
                continue
            report.rows += 1
            if isinstance(parsed, Rejection):
                report.rejected.append(parsed)
                continue
            if parsed.leadgen_id in seen:
                report.rejected.append(
                    Rejection(
                        number,
                        f"the same lead as row {seen[parsed.leadgen_id]}",
                        parsed.leadgen_id,
                    )
                )
                continue
            seen[parsed.leadgen_id] = number
            chunk.append(parsed)
            if len(chunk) >= CHUNK:
                _store(chunk, report, forms, scope=scope)
                chunk = []
        if chunk:
            _store(chunk, report, forms, scope=scope)
    report.form_ids = sorted(forms)
    # Rows refused when stored come after the parse's refusals of later rows.
    report.rejected.sort(key=lambda rejection: rejection.row)
    return report


def _resolve_forms(
    chunk: Sequence[ParsedRow], forms: dict[str, Form], *, scope: frozenset[int] | None
) -> None:
    """Form rows for the chunk: existing ones keep their page; new ones (page unknown)
    are created, named after the export's form_name. Within a scope, only existing forms
    of its pages are found and none is created."""
    wanted = {row.form_id for row in chunk if row.form_id and row.form_id not in forms}
    if not wanted:
        return
    if scope is not None:
        found = {
            form.form_id: form
            for form in Form.objects.filter(form_id__in=wanted, page_id__in=scope)
        }
    else:
        found = ensure_forms(dict.fromkeys(wanted))
    names = {row.form_id: row.form_name for row in chunk if row.form_name}
    for fid, form in found.items():
        if not form.name and names.get(fid):
            form.name = names[fid][:255]
            Form.objects.filter(pk=form.pk, name="").update(name=form.name)
    forms.update(found)


def _store(
    chunk: Sequence[ParsedRow],
    report: ImportReport,
    forms: dict[str, Form],
    *,
    scope: frozenset[int] | None,
) -> None:
    _resolve_forms(chunk, forms, scope=scope)
    if scope is not None:
        chunk = _within(chunk, report, forms)
        if not chunk:
            return
    with whole_page_statements(), transaction.atomic():
        existing = {
            values["leadgen_id"]: values
            for values in Lead.objects.select_for_update()
            .filter(leadgen_id__in=[row.leadgen_id for row in chunk])
            .values("pk", "leadgen_id", "fetch_status", "fetched_at", *_db_names(CSV_FIELDS))
        }
        now = timezone.now()
        new: list[Lead] = []
        updates: list[Lead] = []
        completed: list[int] = []
        for row in chunk:
            form = forms.get(row.form_id) if row.form_id else None
            known = existing.get(row.leadgen_id)
            if scope is not None and known is not None and known["page_id"] not in scope:
                report.rejected.append(
                    Rejection(row.number, "the lead is on a page you cannot see", row.leadgen_id)
                )
                continue
            values = {**row.columns, "form": form}
            if known is None:
                values["page"] = form.page if form is not None else None
                new.append(
                    Lead(
                        leadgen_id=row.leadgen_id,
                        source=Lead.Source.CSV,
                        fetch_status=Status.COMPLETE,
                        **values,
                    )
                )
                continue
            # A lead being fetched right now is left to its worker (richer data).
            if known["fetch_status"] == Status.FETCHING or known["fetched_at"] is not None:
                report.unchanged += 1
                report.kept_graph_data += known["fetched_at"] is not None
                continue
            values.pop("form")
            values["form_id"] = form.pk if form is not None else known["form_id"]
            # Keep the page a webhook told us when the form's page is unknown.
            values["page_id"] = (
                form.page_id if form is not None and form.page_id else known["page_id"]
            )
            if known["fetch_status"] == Status.COMPLETE and _same(known, values):
                report.unchanged += 1
                continue
            lead = Lead(pk=known["pk"], leadgen_id=row.leadgen_id, updated_at=now, **values)
            lead.fetch_status = Status.COMPLETE  # fetch_error/fetch_after: fresh defaults
            if known["fetch_status"] != Status.COMPLETE:
                completed.append(known["pk"])
            updates.append(lead)
        if new:
            Lead.objects.bulk_create(new)
        if updates:
            Lead.objects.bulk_update(updates, [*CSV_FIELDS, *COMPLETION_FIELDS])
        report.created += len(new)
        report.updated += len(updates)
        new_pks = [lead.pk for lead in new]
        if None in new_pks:  # backends that cannot return ids from a bulk insert
            new_pks = list(
                Lead.objects.filter(leadgen_id__in=[lead.leadgen_id for lead in new])
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        enter_pipeline_many([*new_pks, *completed])


def _within(
    chunk: Sequence[ParsedRow], report: ImportReport, forms: dict[str, Form]
) -> list[ParsedRow]:
    """The rows of a scoped import whose form was found (a form of the scope's pages); the
    others are rejected."""
    kept = []
    for row in chunk:
        if row.form_id in forms:
            kept.append(row)
        else:
            report.rejected.append(
                Rejection(
                    row.number,
                    f"form_id {row.form_id} is not a form of a page you can see",
                    row.leadgen_id,
                )
            )
    return kept


def _db_names(fields: Sequence[str]) -> list[str]:
    return [f"{name}_id" if name in ("page", "form") else name for name in fields]


def _same(known: dict[str, Any], values: dict[str, Any]) -> bool:
    """Whether a row would change a lead an earlier import stored (only the columns the
    file has are compared: aware datetimes compare across offsets)."""
    return all(known[name] == value for name, value in values.items() if name in known)
