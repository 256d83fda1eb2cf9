"""manage.py meta_sandbox — run the local Meta stand-in with demo data, and feed the app
signed leadgen webhooks like Meta does, so Leadloop can be tried without a Meta account.
The feed stops once the demo has SANDBOX_MAX_LEADS leads (`sandbox.feeding`)."""

from __future__ import annotations

import random
import signal
import threading
import time
import urllib.request
from functools import partial

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.demo import DemoFeed, post_delivery
from sandbox.feeding import DemoFeeder, next_demo_lead_id
from sandbox.server.core import MetaSandbox


class Command(BaseCommand):
    help = (
        "Serve a local stand-in for Meta's Graph API with a demo page and forms, and post "
        "signed leadgen webhooks for new demo leads to the app every few seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--app-url", default="http://127.0.0.1:8000", help="Where Leadloop runs."
        )
        parser.add_argument(
            "--interval", type=float, default=20.0, help="Seconds between new demo leads."
        )
        parser.add_argument(
            "--first", type=int, default=3, help="Leads sent as soon as the app answers."
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="Send each tick's leads in one delivery (Meta may batch) instead of one each.",
        )
        parser.add_argument("--no-feed", action="store_true", help="Serve only; send nothing.")
        parser.add_argument(
            "--max-leads",
            type=int,
            default=None,
            help="Stop sending once the demo has this many leads; 0 for no limit "
            "(default: SANDBOX_MAX_LEADS).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Random seed for demo data.")

    def handle(self, *args: object, **options: object) -> None:
        secret = settings.META_APP_SECRET
        if not secret and not options["no_feed"]:
            raise CommandError("META_APP_SECRET must be set to sign the webhooks it sends.")
        sandbox = MetaSandbox(str(options["host"]), int(options["port"]))  # type: ignore[call-overload]
        feed = DemoFeed(sandbox, random.Random(options["seed"]))  # noqa: S311 - demo data
        feed.next_id = next_demo_lead_id()
        feed.setup()
        try:
            sandbox.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on port {options['port']}: {exc}") from None
        self.stdout.write(f"Meta sandbox serving the Graph API at {sandbox.url}", ending="\n")
        self.stdout.flush()

        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        webhook = f"{str(options['app_url']).rstrip('/')}/webhooks/meta/"
        max_leads = options["max_leads"]
        feeder = DemoFeeder(
            feed,
            post=partial(post_delivery, webhook, secret=secret),
            max_leads=settings.SANDBOX_MAX_LEADS if max_leads is None else int(max_leads),  # type: ignore[call-overload]
            batch=bool(options["batch"]),
        )
        try:
            if not options["no_feed"]:
                self._wait_for_app(str(options["app_url"]), stopped)
                feeder.send(int(options["first"]))  # type: ignore[call-overload]
            while not stopped.wait(float(options["interval"])):  # type: ignore[arg-type]
                if not options["no_feed"]:
                    feeder.send(feed.rng.randint(1, 3))
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()

    def _wait_for_app(self, app_url: str, stopped: threading.Event) -> None:
        deadline = time.monotonic() + 120
        while not stopped.is_set() and time.monotonic() < deadline:
            try:
                # bandit B310: http URL of the app
                with urllib.request.urlopen(f"{app_url.rstrip('/')}/healthz", timeout=2):  # noqa: S310  # nosec B310
                    return
            except OSError:
                stopped.wait(0.5)
