"""The lead export, ``/ads/lead_gen/export_csv/?id={form}&type=form``: the CSV file Meta's
Leads Center downloads, in its documented shape or in the variants real files come in."""

from __future__ import annotations

import csv
import io
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from core.meta import EXPORT_COLUMNS
from sandbox.server.errors import bad_param
from sandbox.server.paging import sort_key
from sandbox.server.params import parse_int_param
from sandbox.server.routing import GraphContext
from sandbox.server.store import Form, Lead
from sandbox.server.wire import JSON, Request, Response

if TYPE_CHECKING:
    from sandbox.server.core import MetaSandbox

EXPORT_PATH = "/ads/lead_gen/export_csv"


@dataclass
class ExportOptions:
    """How ``/ads/lead_gen/export_csv/`` renders files.

    The default is the documented shape (UTF-16 LE with BOM, tabs, is_organic 1/0, UTC);
    real exports also come as UTF-8 with commas and true/false, so parsers can be tested
    against those variants too.
    """

    encoding: str = "utf-16"  # "utf-16" (LE with BOM) or "utf-8" (optionally with BOM)
    delimiter: str = "\t"
    utf8_bom: bool = False
    organic_true: str = "1"
    organic_false: str = "0"
    utc_offset_minutes: int = 0  # the "downloader's" offset used for created_time

    def __post_init__(self) -> None:
        if self.encoding not in ("utf-16", "utf-8"):
            raise ValueError("encoding must be 'utf-16' or 'utf-8'")
        if len(self.delimiter) != 1:
            raise ValueError("delimiter must be one character")
        if not -16 * 60 < self.utc_offset_minutes < 16 * 60:
            raise ValueError("utc_offset_minutes out of range")

    @property
    def content_type(self) -> str:
        if self.encoding == "utf-16":
            return "text/csv; charset=UTF-16LE"
        return "text/csv; charset=UTF-8"

    def encode(self, text: str) -> bytes:
        if self.encoding == "utf-16":
            return b"\xff\xfe" + text.encode("utf-16-le")
        return (b"\xef\xbb\xbf" if self.utf8_bom else b"") + text.encode("utf-8")


def export_csv(sandbox: MetaSandbox, request: Request) -> Response:
    """Answer an export request (under the sandbox's lock)."""
    form_id = request.params.get("id")
    if not isinstance(form_id, str) or not form_id:
        raise bad_param("The parameter id is required")
    export_type = request.params.get("type", "form")
    if export_type != "form":
        raise bad_param("Only type=form is supported")
    ctx = GraphContext(request, sandbox.api_version, request.token(), sandbox)
    form = sandbox.forms.get(form_id)
    if form is None:
        raise ctx.unknown(form_id, "GET")
    ctx.authorize(form.page_id, form_id)
    now = int(time.time())
    # Clamp like Meta: before the form existed means its creation; after now means now.
    from_date = max(parse_int_param(request.params, "from_date", form.created_ts), form.created_ts)
    to_date = min(parse_int_param(request.params, "to_date", now), now)
    leads = sandbox.visible_leads(
        lambda lead: lead.form_id == form.id and from_date <= lead.created_ts <= to_date
    )
    leads.sort(key=lambda lead: sort_key(lead.created_ts, lead.id), reverse=True)
    options = sandbox.export_options
    body = options.encode(render_export(form, leads, options))
    filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", form.name) or form.id
    return Response(
        200,
        body,
        options.content_type,
        {"Content-Disposition": f'attachment; filename="{filename}_leads.csv"'},
    )


def render_export(form: Form, leads: list[Lead], options: ExportOptions) -> str:
    """The export's text: fixed columns, one per question, and lead_status."""
    tz = timezone(timedelta(minutes=options.utc_offset_minutes))
    phone_keys = {
        str(q.get("key")) for q in form.questions if str(q.get("type", "")).upper() == "PHONE"
    } | {"phone_number", "phone"}
    columns = [str(q.get("key")) for q in form.questions if q.get("key")]
    for lead in leads:  # answers for fields the form no longer lists still export
        for entry in lead.data.get("field_data") or []:
            if entry["name"] not in columns:
                columns.append(entry["name"])
    out = io.StringIO()
    writer = csv.writer(out, delimiter=options.delimiter, lineterminator="\n")
    writer.writerow([*EXPORT_COLUMNS, *columns, "lead_status"])
    for lead in leads:
        data = lead.data
        answers = {
            entry["name"]: ", ".join(entry["values"]) for entry in data.get("field_data") or []
        }
        row = [
            f"l:{lead.id}",
            datetime.fromtimestamp(lead.created_ts, tz).isoformat(),
            _prefixed("ag:", data.get("ad_id")),
            data.get("ad_name") or "",
            _prefixed("as:", data.get("adset_id")),
            data.get("adset_name") or "",
            _prefixed("c:", data.get("campaign_id")),
            data.get("campaign_name") or "",
            f"f:{form.id}",
            form.name,
            options.organic_true if data.get("is_organic") else options.organic_false,
            data.get("platform") or "",
        ]
        for column in columns:
            value = answers.get(column, "")
            row.append(_prefixed("p:", value) if column in phone_keys else value)
        row.append(str(data.get("lead_status") or ""))
        writer.writerow(row)
    return out.getvalue()


def _prefixed(prefix: str, value: JSON) -> str:
    # Meta prefixes ids and phone numbers with their kind ("ag:", "p:"); empty stays empty.
    return f"{prefix}{value}" if value not in (None, "") else ""
