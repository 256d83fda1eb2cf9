"""`manage.py compile_translations`: the UI's .po files to .mo, with no GNU gettext."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from crm.translations import compile_catalogs


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po into .mo files (only stale ones unless --force)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Rewrite every .mo file.")

    def handle(self, *args: Any, force: bool = False, verbosity: int = 1, **options: Any) -> None:
        written = compile_catalogs(force=force)
        if not verbosity:
            return
        for path in written:
            self.stdout.write(f"Compiled {path}")
        if not written:
            self.stdout.write("Translations are up to date.")
