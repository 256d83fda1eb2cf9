"""manage.py connect_page PAGE_ID --token TOKEN [--subscribe]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.ids import meta_id
from leads.graph import GraphError, TokenError
from leads.pages import connect_page


class Command(BaseCommand):
    help = (
        "Check a page access token against the Graph API, store it encrypted, and load the "
        "page's lead forms. Parked leads of the page are fetched again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("page_id", help="The Facebook page id.")
        parser.add_argument("--token", required=True, help="A page access token (never shown).")
        parser.add_argument(
            "--subscribe",
            action="store_true",
            help="Also subscribe the app to the page's leadgen webhooks (subscribed_apps).",
        )

    def handle(self, *args: object, **options: object) -> None:
        page_id = meta_id(options["page_id"])
        token = str(options["token"]).strip()
        if page_id is None:
            raise CommandError(f"Not a page id: {options['page_id']!r} (digits expected).")
        if not token:
            raise CommandError("--token is empty.")
        try:
            result = connect_page(page_id, token=token, subscribe=bool(options["subscribe"]))
        except TokenError as exc:
            raise CommandError(f"Meta rejected the token: {exc}") from None
        except GraphError as exc:
            raise CommandError(f"Graph API error: {exc}") from None
        page = result.page
        self.stdout.write(self.style.SUCCESS(f"Connected page {page} with a valid token."))
        self.stdout.write(
            f"Forms: {result.forms_created} new, {result.forms_updated} updated "
            f"({page.forms.count()} in all)."
        )
        if result.subscribed:
            self.stdout.write("Subscribed the app to the page's leadgen webhooks.")
        if result.leads_resumed:
            self.stdout.write(f"Resumed {result.leads_resumed} leads waiting for a valid token.")
