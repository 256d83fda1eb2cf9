"""Importing Meta's lead export (the CSV downloaded from Ads Manager, Leads Center or
`/ads/lead_gen/export_csv/`): the last resort for leads the Graph API no longer serves.

What real exports look like (META.md, "Lead export"): UTF-16 LE with a BOM and tabs (the
documented shape) or UTF-8 with commas; ids prefixed `l:`, `ag:`, `as:`, `c:`, `f:`,
phones `p:` and zip codes `z:` (see `unprefixed`); `is_organic` as 1/0 or true/false in
any case; `created_time` in ISO 8601 with the downloader's offset; one column per question
after the standard columns.

Rules:
- A file that is not a lead export (empty, binary, not UTF-8/UTF-16, no `id` or
  `created_time` column) changes nothing: `NotALeadExport` says why.
- A bad row is rejected with its row number (the header is row 1, as in a spreadsheet)
  and a reason; the other rows are imported.
- A lead is keyed by its leadgen id, so a lead that also came by webhook or bulk read
  stays one lead. Data Meta sent through the Graph API (a complete lead with
  `fetched_at`) is richer than an export (multi-answers flattened, no disclaimers) and is
  never overwritten. An export may complete a lead whose fetch is pending, failed or
  parked; such a lead keeps its source. New leads get `source=csv`.
- Importing the same file twice changes nothing the second time.
- Leads that become complete enter the pipeline through `enter_pipeline_many`.
- An import limited to some pages (`pages`: an importer who sees only those) creates and
  changes leads of those pages only: a row naming another page's form, a form not known
  yet (its page is unknown) or a lead already on another page is rejected, and no form
  is created.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.db.sqlite import whole_page_statements
from core.ids import meta_id
from leads import fetching
from leads.graph import TOKEN_CODES, redirect_refusal, send
from leads.keys import ensure_forms
from leads.lead_data import PHONE_KEYS, ZIP_KEYS, lead_columns, parse_bool, parse_meta_time
from leads.models import Form, Lead, Page
from leads.pipeline import enter_pipeline_many
from leads.redaction import redact

logger = logging.getLogger(__name__)

Status = Lead.FetchStatus

# Rows stored per transaction step: a fixed number of queries each, bounded memory.
CHUNK = 500
# An export of a few hundred thousand leads is tens of megabytes; anything far larger is
# not one, and reading it would only exhaust memory.
MAX_BYTES = 200 * 1024 * 1024
EXPORT_PATH = "/ads/lead_gen/export_csv/"

# Standard columns that hold an id (Meta writes them `l:…`, `ag:…`, `as:…`, `c:…`, `f:…`).
ID_COLUMNS = ("id", "ad_id", "adset_id", "campaign_id", "form_id")
TEXT_COLUMNS = {
    "ad_name": 255,
    "adset_name": 255,
    "campaign_name": 255,
    "platform": 32,
    "partner_name": 255,
    "retailer_item_id": 255,
}
# Columns of an export that are about the lead, not answers to the form's questions. Kept
# with the lead (graph_data["export_row"]) but never turned into field_data: `lead_status`
# is the stage in Meta's Leads Center, the rest are Leads Center extras seen in exports.
NOT_QUESTIONS = frozenset(
    {
        *ID_COLUMNS,
        *TEXT_COLUMNS,
        "created_time",
        "form_name",
        "is_organic",
        "lead_status",
        "inbox_url",
        "is_qualified",
        "is_quality",
        "is_converted",
        "page_id",
        "page_name",
        "home_listing",
        "vehicle",
    }
)
REQUIRED_COLUMNS = ("id", "created_time")
DELIMITERS = ("\t", ",", ";")
# Meta writes a short prefix and a colon before the values a spreadsheet would mangle:
# ids (`l:`, `ag:` ...: digits that would become 1.2E+17), phones (`p:`: the `+`) and zip
# codes (`z:`: the leading zero of `z:03581`). Any such prefix is taken off a column that
# carries one, and only when what follows is that column's kind of value, so an answer
# such as `Re: call me`, `12:30` or `http://example.com` stays as it was written.
EXPORT_PREFIX = re.compile(r"([a-zA-Z]{1,2}):(.+)", re.DOTALL)
PHONE_TEXT = re.compile(r"\+?[0-9][0-9 ().\-]*")
ZIP_TEXT = re.compile(r"[0-9a-zA-Z][0-9a-zA-Z \-]{1,11}")
VALUE_KINDS: dict[str, Callable[[str], object]] = {
    "id": meta_id,
    "phone": PHONE_TEXT.fullmatch,
    "zip": ZIP_TEXT.fullmatch,
}
# Questions whose answers carry a prefix, by their standard key; an answer `p:+34 …` is
# a phone whatever its question (custom questions can ask for one).
QUESTION_KINDS = {**dict.fromkeys(PHONE_KEYS, "phone"), **dict.fromkeys(ZIP_KEYS, "zip")}
# Columns a CSV row may write on a lead; compared to decide between updated and unchanged.
CSV_FIELDS = (
    "page",
    "form",
    "created_time",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "is_organic",
    "platform",
    "partner_name",
    "retailer_item_id",
    "field_data",
    "graph_data",
    "email",
    "phone",
    "full_name",
)
COMPLETION_FIELDS = ("fetch_status", "fetch_error", "fetch_after", "updated_at")


class NotALeadExport(Exception):
    """The file is not a lead export; nothing was imported."""


class DownloadError(Exception):
    """The export could not be downloaded from Meta."""


@dataclass(frozen=True)
class Rejection:
    row: int
    reason: str
    leadgen_id: str = ""


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


@dataclass
class _Row:
    number: int
    leadgen_id: str
    form_id: str | None
    form_name: str
    columns: dict[str, Any]


# --- Reading the file ----------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """The text of an export and the encoding found: the BOM decides (UTF-16 LE/BE,
    UTF-8), else a BOM-less UTF-16 is recognised by its zero bytes, else UTF-8."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise NotALeadExport("The file is empty.")
    if len(data) > MAX_BYTES:
        raise NotALeadExport(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    if data.startswith(b"\xff\xfe"):
        encoding, body = "utf-16-le", data[2:]
    elif data.startswith(b"\xfe\xff"):
        encoding, body = "utf-16-be", data[2:]
    elif data.startswith(b"\xef\xbb\xbf"):
        encoding, body = "utf-8-sig", data[3:]
    else:
        sample = data[:400]
        odd_zeros, even_zeros = sample[1::2].count(0), sample[0::2].count(0)
        if odd_zeros > len(sample) // 4 and not even_zeros:
            encoding, body = "utf-16-le", data
        elif even_zeros > len(sample) // 4 and not odd_zeros:
            encoding, body = "utf-16-be", data
        else:
            encoding, body = "utf-8", data
    try:
        text = body.decode(encoding.removesuffix("-sig"))
    except UnicodeDecodeError:
        raise NotALeadExport(
            "The file is not text (UTF-8 or UTF-16): is it a spreadsheet (.xlsx) or another "
            "binary file? Download the leads as CSV."
        ) from None
    if "\x00" in text:
        raise NotALeadExport("The file contains binary data, not CSV text.")
    return text, encoding


def sniff_delimiter(header_line: str) -> str:
    """Tab, comma or semicolon: whichever splits the header into the most columns."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header_key(name: str) -> str:
    return name.strip().strip("\ufeff").strip()


def read_rows(text: str) -> tuple[list[str], str, Iterator[tuple[int, list[str]]]]:
    """Header, delimiter, and the data rows with their spreadsheet row numbers."""
    first_line = text.split("\n", 1)[0]
    delimiter = sniff_delimiter(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [_header_key(name) for name in next(reader)]
    except StopIteration:
        raise NotALeadExport("The file is empty.") from None
    except csv.Error as exc:
        raise NotALeadExport(f"The header cannot be read as CSV: {exc}") from None
    lowered = [name.lower() for name in header]
    missing = [name for name in REQUIRED_COLUMNS if name not in lowered]
    if missing:
        shown = ", ".join(header[:8]) + (", ..." if len(header) > 8 else "")
        raise NotALeadExport(
            f"Not a lead export: no {' or '.join(missing)} column in the header "
            f"(found: {shown or 'nothing'})."
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            for values in reader:
                number += 1
                yield number, values
        except csv.Error as exc:
            raise NotALeadExport(f"Row {number + 1} cannot be read as CSV: {exc}") from None

    return header, delimiter, rows()


def unprefixed(value: str, kind: str) -> str | None:
    """The value without Meta's export prefix when it has one and the rest is a value of
    that kind (`id`, `phone`, `zip`); otherwise None."""
    match = EXPORT_PREFIX.fullmatch(value.strip())
    if match is None:
        return None
    rest = match.group(2).strip()
    return rest if VALUE_KINDS[kind](rest) else None


def _id_cell(value: str) -> str:
    return unprefixed(value, "id") or value.strip()


def _answer(name: str, value: str) -> str:
    kind = QUESTION_KINDS.get(name.lower())
    if kind is not None:
        found = unprefixed(value, kind)
    else:
        # A custom question may ask for a phone: `p:` before a number is Meta's marker.
        found = unprefixed(value, "phone") if value.strip()[:2].lower() == "p:" else None
    return value if found is None else found


def parse_row(
    number: int, values: Sequence[str], header: Sequence[str], *, default_form_id: str | None
) -> _Row | Rejection | None:
    """One data row as lead columns, a rejection with a reason, or None for a blank row."""
    if not any(value.strip() for value in values):
        return None
    overflow = len(values) > len(header) and any(v.strip() for v in values[len(header) :])
    cells = list(values) + [""] * (len(header) - len(values))
    standard: dict[str, str] = {}
    questions: list[tuple[str, str]] = []
    raw: dict[str, str] = {}
    for name, value in zip(header, cells, strict=False):
        raw[name] = value
        key = name.lower()
        if key in NOT_QUESTIONS:
            standard.setdefault(key, value)
        elif name:
            questions.append((name, value))

    leadgen_id = meta_id(_id_cell(standard.get("id", "")))
    if overflow:
        # Cells shifted by a stray delimiter: no column can be trusted.
        return Rejection(
            number,
            f"{len(values)} cells, but the header has {len(header)} columns",
            leadgen_id or "",
        )
    if leadgen_id is None:
        return Rejection(number, f"id {standard.get('id', '')!r} is not a lead id")
    node: dict[str, Any] = {"id": leadgen_id}
    for key in ID_COLUMNS:
        if key == "id" or key not in standard:
            continue
        text = _id_cell(standard[key])
        if text and meta_id(text) is None:
            return Rejection(number, f"{key} {standard[key]!r} is not an id", leadgen_id)
        node[key] = text
    created = parse_meta_time(standard.get("created_time", "").strip())
    if created is None:
        return Rejection(
            number,
            f"created_time {standard.get('created_time', '')!r} is not a date and time",
            leadgen_id,
        )
    node["created_time"] = created.isoformat()
    if "is_organic" in standard:
        organic_text = standard["is_organic"].strip()
        organic = parse_bool(organic_text) if organic_text else None
        if organic_text and organic is None:
            return Rejection(
                number, f"is_organic {organic_text!r} is not 1/0 or true/false", leadgen_id
            )
        node["is_organic"] = organic
    for key in TEXT_COLUMNS:
        if key in standard:
            node[key] = standard[key].strip()
    # Meta's {name, values} shape, in the file's column order; unanswered questions are
    # left out, as Meta leaves them out of field_data.
    node["field_data"] = [
        {"name": name, "values": [_answer(name, value)]}
        for name, value in questions
        if value.strip()
    ]

    form_id = node.pop("form_id", "") or None
    if form_id and default_form_id and form_id != default_form_id:
        return Rejection(
            number, f"form_id {form_id} is not the form given ({default_form_id})", leadgen_id
        )
    form_id = form_id or default_form_id
    if form_id is None:
        return Rejection(number, "no form_id (give the form with --form)", leadgen_id)
    columns = lead_columns(node)
    columns["graph_data"] = {"export_row": raw}
    return _Row(
        number=number,
        leadgen_id=leadgen_id,
        form_id=form_id,
        form_name=standard.get("form_name", "").strip(),
        columns=columns,
    )


# --- Storing -------------------------------------------------------------------------------


def import_export(
    data: bytes, *, form_id: str | None = None, pages: QuerySet[Page] | None = None
) -> ImportReport:
    """Import a lead export (bytes of the file). Raises NotALeadExport, changing nothing,
    when the file is not one; otherwise returns the report (rejected rows included).
    `pages` limits the import to leads of those pages (see the module docstring); None
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
    chunk: list[_Row] = []
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
    chunk: Sequence[_Row], forms: dict[str, Form], *, scope: frozenset[int] | None
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
    chunk: Sequence[_Row],
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


def _within(chunk: Sequence[_Row], report: ImportReport, forms: dict[str, Form]) -> list[_Row]:
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


# --- Downloading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    data: bytes
    from_date: int | None
    to_date: int


def clamp_dates(
    *,
    from_date: int | None,
    to_date: int | None,
    created: dt.datetime | None,
    now: int,
) -> tuple[int | None, int]:
    """Meta's own rule (META.md): a `from_date` before the form existed means its
    creation, a `to_date` after now means now. Applied before asking, so the request
    (and the report) says what the file will really cover."""
    created_unix = int(created.timestamp()) if created is not None else None
    if created_unix is not None and (from_date is None or from_date < created_unix):
        from_date = created_unix
    to = now if to_date is None else min(to_date, now)
    if from_date is not None and from_date > to:
        raise DownloadError(
            f"--from-date ({from_date}) is after --to-date ({to}) once clamped to the form's "
            "creation and to now."
        )
    return from_date, to


def _now_unix() -> int:
    return int(time.time())


def download_export(
    form_id: str,
    *,
    from_date: int | None = None,
    to_date: int | None = None,
    session: requests.Session | None = None,
    now: int | None = None,
) -> Download:
    """GET `{META_WWW_URL}/ads/lead_gen/export_csv/?id=&type=form&from_date=&to_date=`
    with the form's page token (else META_ACCESS_TOKEN) in the Authorization header."""
    form = Form.objects.select_related("page").filter(form_id=form_id).first()
    page = form.page if form is not None else None
    token = fetching.usable_token(page)
    if not token:
        raise DownloadError(
            f"No usable token for form {form_id}: run connect_page for its page or set "
            "META_ACCESS_TOKEN."
        )
    start, end = clamp_dates(
        from_date=from_date,
        to_date=to_date,
        created=form.meta_created_time if form is not None else None,
        now=_now_unix() if now is None else now,
    )
    params: dict[str, str | int] = {"id": form_id, "type": "form", "to_date": end}
    if start is not None:
        params["from_date"] = start
    url = settings.META_WWW_URL.rstrip("/") + EXPORT_PATH
    try:
        response = send(
            session,
            "GET",
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.META_HTTP_TIMEOUT,
            stream=True,
        )
        refusal = redirect_refusal(response)
        if refusal:
            # Not read: a login page or another host's file is not the export.
            response.close()
            raise DownloadError(f"Meta answered the export download with {refusal}.")
        data = _read_capped(response)
    except requests.RequestException as exc:
        raise DownloadError(f"Could not download the export: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise DownloadError(_download_error(response.status_code, data, page=page, token=token))
    return Download(data=data, from_date=start, to_date=end)


def _read_capped(response: requests.Response) -> bytes:
    buffer = bytearray()
    for block in response.iter_content(chunk_size=1024 * 1024):
        buffer.extend(block)
        if len(buffer) > MAX_BYTES:
            response.close()
            raise DownloadError(f"The export is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    return bytes(buffer)


def _download_error(status: int, data: bytes, *, page: Any, token: str) -> str:
    import json

    try:
        error = json.loads(data).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = redact(str(error.get("message") or f"HTTP {status}"), token)
    code = error.get("code")
    if code in TOKEN_CODES:
        if page is not None:
            fetching.reject_page_token(page, reason=message, token=token)
        return f"Meta rejected the token (#{code}): {message}"
    return f"Meta refused the export (HTTP {status}{f', #{code}' if code else ''}): {message}"
