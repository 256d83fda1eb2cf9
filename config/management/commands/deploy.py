"""`manage.py deploy`: everything a checkout needs before it serves with DEBUG off.

In order: migrate, collectstatic, compile the translations, check --deploy, then the same
check of the build that the web server makes at start (config/build.py). Each step is
idempotent, so the command is run after every install or upgrade, and again at will.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.build import build_problems

LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class Command(BaseCommand):
    help = (
        "Prepare this installation to serve: migrate, collectstatic, compile the "
        "translations, check --deploy. Safe to run again; exits non-zero at the first failure."
    )
    # Its last step runs every system check, the deployment ones included.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fail-level",
            default="ERROR",
            choices=LEVELS,
            help="Message level of check --deploy that fails the deploy (default: ERROR).",
        )

    def handle(self, *args: Any, fail_level: str, verbosity: int, **options: Any) -> None:
        output = {"verbosity": verbosity, "stdout": self.stdout, "stderr": self.stderr}
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("Applying database migrations", "migrate", {"interactive": False}),
            (
                f"Collecting static files into {settings.STATIC_ROOT}",
                "collectstatic",
                {"interactive": False},
            ),
            # --force: an mtime is no proof that a .mo matches its .po (files copied
            # without their times); compiling three catalogs costs well under a second.
            ("Compiling the translations", "compile_translations", {"force": True}),
            ("Checking the deployment", "check", {"deploy": True, "fail_level": fail_level}),
        ]
        for number, (title, command, options_) in enumerate(steps, start=1):
            if verbosity:
                self.stdout.write(self.style.MIGRATE_HEADING(f"[{number}/{len(steps)}] {title}"))
            try:
                call_command(command, **options_, **output)
            except Exception as error:
                raise CommandError(
                    f"deploy stopped at step {number} ({title}): {error}\n"
                    "Fix the cause and run `python manage.py deploy` again."
                ) from error
        problems = build_problems()
        if problems:
            listed = "".join(f"\n  - {problem}" for problem in problems)
            raise CommandError(f"deploy ran, yet the build is incomplete:{listed}")
        if verbosity:
            self.stdout.write(
                self.style.SUCCESS(
                    "Ready to serve. Start (or restart) the web server, "
                    "`gunicorn config.wsgi`, and the worker, `python manage.py qcluster`."
                )
            )
