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

The modules: `reading` (the file: encoding, delimiter, rows), `mapping` (a row as lead
columns, or a rejection), `storing` (`import_export`), `download` (`download_export`).
"""

from __future__ import annotations

from leads.csv_import.download import Download, DownloadError, clamp_dates, download_export
from leads.csv_import.mapping import ParsedRow, Rejection, parse_row, unprefixed
from leads.csv_import.reading import MAX_BYTES, NotALeadExport, decode, read_rows, sniff_delimiter
from leads.csv_import.storing import ImportReport, import_export

__all__ = [
    "MAX_BYTES",
    "Download",
    "DownloadError",
    "ImportReport",
    "NotALeadExport",
    "ParsedRow",
    "Rejection",
    "clamp_dates",
    "decode",
    "download_export",
    "import_export",
    "parse_row",
    "read_rows",
    "sniff_delimiter",
    "unprefixed",
]
