"""Run the Meta sandbox as its own process: ``python -m sandbox --port 8765``.

Serves until interrupted (Ctrl-C or SIGTERM). Seed data and faults through the control
API under ``/__sandbox__/``; see :mod:`sandbox.server.control`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from sandbox.server.core import DEFAULT_API_VERSION, MetaSandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Local stand-in for Meta's Graph API."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 for any free (8765)")
    parser.add_argument("--api-version", default=DEFAULT_API_VERSION, help="e.g. v24.0")
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="a token valid for everything (repeatable), like a system user token",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        sandbox = MetaSandbox(args.host, args.port, api_version=args.api_version)
        for token in args.token:
            sandbox.add_token(token)
        sandbox.start()
    except (OSError, ValueError) as exc:
        print(f"meta sandbox: cannot start: {exc}", file=sys.stderr)
        return 1

    stopped = threading.Event()
    # SIGTERM (e.g. from a process manager) should shut down as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print(f"Meta sandbox serving Graph API {sandbox.api_version} at {sandbox.url}", flush=True)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
