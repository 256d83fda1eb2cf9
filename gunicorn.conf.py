"""gunicorn's settings for `make run`, bench/webhook and production: gunicorn reads this
file from the working directory (the repository root).

Processes rather than threads: on SQLite one request at a time holds the write lock, and
a thread holding it must win Python's GIL back from its siblings after every statement,
which stretched the lock (and every waiting webhook) under load. One worker per core, each
serving one request at a time, kept bench/webhook's p99 lowest of the shapes measured
(2-8 workers, 1-8 threads; since a webhook holds the lock for a few statements only, one
worker per core beat one more than that on both databases). Keep-alive connections still
work (gthread). Override with WEB_CONCURRENCY (processes) and WEB_THREADS.
"""

import gc
import multiprocessing
import os
from pathlib import Path

import environ

# The same .env the settings read, so WEB_CONCURRENCY can live there too.
environ.Env.read_env(
    os.environ.get("LEADLOOP_ENV_FILE") or Path(__file__).parent / ".env", overwrite=False
)

worker_class = "gthread"
# Access and error lines without the webhook handshake's verify token or any access token
# (config/gunicorn_logging.py). The access log is off unless asked for (`make run` asks).
logger_class = "config.gunicorn_logging.RedactingLogger"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count())
threads = int(os.environ.get("WEB_THREADS") or 1)


def post_worker_init(worker: object) -> None:
    """Once a worker has loaded Django (and imported every view), exempt those long-lived
    objects from the garbage collector's full passes: a full collection over them took
    about 60 ms, a pause every request in the queue behind it waited out (bench/webhook's
    p99); with them frozen it takes a few. Requests' own objects are collected as ever."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the views now, before the freeze
    gc.freeze()
