"""manage.py sync_leads [--page ID] [--form ID] [--ad ID] [--since UNIX] [--until UNIX]"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.ids import meta_id
from leads import bulk

# Without a terminal, a progress line every this many pages (plus one at the end).
PLAIN_PROGRESS_EVERY = 10


def _unix(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"Not a unix time (seconds): {value!r}") from None
    if number < 0:
        raise CommandError(f"Not a unix time (seconds): {value!r}")
    return number


def _when(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"


class Command(BaseCommand):
    help = (
        "Read leads from the Graph API (bulk read) and store the ones we miss. With no "
        "option, every form of every connected page, each after its high-water mark. "
        "Idempotent: running it again stores nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--page", help="Only the forms of this page (its forms are reloaded).")
        parser.add_argument("--form", help="Only this form.")
        parser.add_argument(
            "--ad", help="Only the leads of this ad (/{ad-id}/leads; no high-water mark)."
        )
        parser.add_argument(
            "--since",
            type=_unix,
            help="Leads created after this unix time, instead of after the form's high-water "
            "mark (the mark advances only if there is no gap).",
        )
        parser.add_argument("--until", type=_unix, help="Leads created before this unix time.")

    def handle(self, *args: object, **options: Any) -> None:
        ids = {}
        for name in ("page", "form", "ad"):
            raw = options.get(name)
            if raw is None:
                ids[name] = None
                continue
            ids[name] = meta_id(str(raw))
            if ids[name] is None:
                raise CommandError(f"Not a {name} id: {raw!r} (digits expected).")

        self.verbosity = int(options.get("verbosity", 1))
        self._bar: Any = None
        self._tty = self.stdout.isatty()
        try:
            report = bulk.sync_leads(
                page_id=ids["page"],
                form_id=ids["form"],
                ad_id=ids["ad"],
                since=options.get("since"),
                until=options.get("until"),
                progress=self._progress,
                on_start=self._start,
            )
        except bulk.SyncError as exc:
            raise CommandError(str(exc)) from None
        finally:
            self._close_bar()

        for page_id, error in report.form_refresh_errors.items():
            self.stderr.write(f"Could not reload the forms of page {page_id}: {error}")
        if not report.results:
            self.stdout.write("No forms to read: connect a page first (connect_page).")
            return
        for result in report.results:
            self._summary(result)
        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"Total: {len(report.results)} {'run' if len(report.results) == 1 else 'runs'}, "
                f"{report.total('pages')} pages, {report.total('rows')} rows, "
                f"{report.total('created')} created, {report.total('completed')} completed, "
                f"{report.total('unchanged')} unchanged"
            )
        )
        failed = [r for r in report.results if not r.ok]
        if failed:
            retry = report.retry_after
            hint = f" Meta asks to wait {retry:.0f} s before reading again." if retry else ""
            raise CommandError(
                f"{len(failed)} of {len(report.results)} runs did not finish; their "
                f"high-water marks are unchanged, so the next run reads those leads again.{hint}"
            )

    # -- output

    def _summary(self, result: bulk.ReadResult) -> None:
        counts = (
            f"{result.pages} pages, {result.rows} rows, {result.created} created, "
            f"{result.completed} completed, {result.unchanged} unchanged"
        )
        if result.skipped:
            counts += f", {result.skipped} skipped (no lead id)"
        mark = ""
        if result.form_pk is not None:
            mark = f"; mark {_when(result.mark_before)} -> {_when(result.mark_after)}"
        line = f"{result.label}: {counts}{mark}"
        if result.ok:
            self.stdout.write(self.style.SUCCESS(line))
        else:
            self.stdout.write(self.style.ERROR(f"{line} [{result.status}] {result.error}"))

    def _start(self, result: bulk.ReadResult) -> None:
        self._close_bar()
        if self._tty:
            from tqdm import tqdm

            self._bar = tqdm(
                desc=result.label,
                unit=" leads",
                file=_Unended(self.stdout),
                dynamic_ncols=True,
                leave=False,
            )
        elif self.verbosity >= 1:
            self.stdout.write(f"Reading {result.label} ...")

    def _progress(self, result: bulk.ReadResult) -> None:
        if self._bar is not None:
            self._bar.update(result.rows - self._bar.n)
            self._bar.set_postfix(
                pages=result.pages, created=result.created, completed=result.completed
            )
        elif self.verbosity >= 2 or (
            self.verbosity >= 1 and result.pages % PLAIN_PROGRESS_EVERY == 0
        ):
            self.stdout.write(
                f"  {result.label}: {result.pages} pages, {result.rows} rows "
                f"({result.created} created, {result.completed} completed)"
            )

    def _close_bar(self) -> None:
        if getattr(self, "_bar", None) is not None:
            self._bar.close()
            self._bar = None


class _Unended:
    """The command's stdout for tqdm's bar: OutputWrapper ends every write with a newline
    unless told otherwise, which would print the bar once per line."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, ending="")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.out, name)
