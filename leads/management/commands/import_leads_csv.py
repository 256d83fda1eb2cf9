"""manage.py import_leads_csv FILE [--form ID]
manage.py import_leads_csv --download --form ID [--from-date UNIX] [--to-date UNIX]"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.ids import meta_id
from leads import csv_import


def _unix(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"Not a unix time (seconds): {value!r}") from None
    if number < 0:
        raise CommandError(f"Not a unix time (seconds): {value!r}")
    return number


def _when(unix: int | None) -> str:
    if unix is None:
        return "the form's creation"
    return dt.datetime.fromtimestamp(unix, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def write_report(command: BaseCommand, report: csv_import.ImportReport) -> None:
    command.stdout.write(
        f"Read {report.rows} rows ({report.encoding}, {report.delimiter_name}-separated) "
        f"for form{'s' if len(report.form_ids) != 1 else ''} "
        f"{', '.join(report.form_ids) or '-'}."
    )
    kept = (
        f" ({report.kept_graph_data} kept the richer data fetched from Meta)"
        if report.kept_graph_data
        else ""
    )
    command.stdout.write(
        command.style.SUCCESS(
            f"{report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged{kept}, {len(report.rejected)} rejected"
        )
    )
    for rejection in report.rejected:
        lead = f" (lead {rejection.leadgen_id})" if rejection.leadgen_id else ""
        command.stdout.write(
            command.style.WARNING(f"  row {rejection.row}{lead}: {rejection.reason}")
        )


class Command(BaseCommand):
    help = (
        "Import a lead export (CSV from Ads Manager or Leads Center: UTF-16 or UTF-8, tabs "
        "or commas). Leads already here stay one lead, and data fetched from Meta is never "
        "overwritten. With --download, fetch the form's export from Meta first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", nargs="?", help="The exported CSV file.")
        parser.add_argument(
            "--form", help="The form of the leads (when the file has no form_id column)."
        )
        parser.add_argument(
            "--download",
            action="store_true",
            help="Download the form's export from Meta (needs --form) and import it.",
        )
        parser.add_argument(
            "--from-date",
            type=_unix,
            help="With --download: leads created from this unix time (clamped to the form's "
            "creation).",
        )
        parser.add_argument(
            "--to-date",
            type=_unix,
            help="With --download: leads created until this unix time (clamped to now).",
        )

    def handle(self, *args: object, **options: Any) -> None:
        form_id = None
        if options.get("form") is not None:
            form_id = meta_id(str(options["form"]))
            if form_id is None:
                raise CommandError(f"Not a form id: {options['form']!r} (digits expected).")

        if options["download"]:
            if options.get("file"):
                raise CommandError("Give either FILE or --download, not both.")
            if form_id is None:
                raise CommandError("--download needs --form ID.")
            try:
                download = csv_import.download_export(
                    form_id, from_date=options.get("from_date"), to_date=options.get("to_date")
                )
            except csv_import.DownloadError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(
                f"Downloaded {len(download.data)} bytes: leads of form {form_id} from "
                f"{_when(download.from_date)} to {_when(download.to_date)}."
            )
            data = download.data
        else:
            if options.get("from_date") is not None or options.get("to_date") is not None:
                raise CommandError("--from-date and --to-date go with --download.")
            if not options.get("file"):
                raise CommandError("Give the exported FILE, or --download --form ID.")
            path = Path(options["file"])
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from None

        try:
            report = csv_import.import_export(data, form_id=form_id)
        except csv_import.NotALeadExport as exc:
            raise CommandError(f"Nothing imported: {exc}") from None
        write_report(self, report)
