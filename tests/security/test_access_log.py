"""The webhook handshake's verify token never reaches an access log (hardening issue 16,
item 5): Meta sends it in the query string, and the request line is what access logs
write. gunicorn (gunicorn.conf.py's `logger_class`) and runserver (`django.server`) both
redact it, and any `access_token`, whatever the value (a wrong guess is someone's token
too)."""

from __future__ import annotations

import datetime as dt
import io
import logging
import runpy
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.test import Client
from gunicorn.config import Config

from config.gunicorn_logging import RedactingLogger
from leads.redaction import RedactingFilter

ROOT = Path(__file__).resolve().parents[2]
WRONG_GUESS = "not-the-verify-token-but-someones"
QUERY = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}


def handshake(client: Client, token: str) -> tuple[dict, SimpleNamespace]:
    """Run Meta's handshake against the app; return the WSGI environ gunicorn would log
    with and a response as gunicorn's logger reads it."""
    query = urlencode({**QUERY, "hub.verify_token": token})
    response = client.get(f"/webhooks/meta/?{query}")
    environ = {
        **response.wsgi_request.environ,
        "RAW_URI": f"/webhooks/meta/?{query}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "173.252.127.1",
    }
    answer = SimpleNamespace(
        status=f"{response.status_code} {response.reason_phrase}",
        sent=len(response.content),
        headers=list(response.items()),
    )
    return environ, answer


def gunicorn_logger(tmp_path: Path) -> tuple[RedactingLogger, Path]:
    log_file = tmp_path / "access.log"
    cfg = Config()
    # The repository's settings, as `gunicorn config.wsgi` reads them.
    cfg.set("logger_class", runpy.run_path(str(ROOT / "gunicorn.conf.py"))["logger_class"])
    cfg.set("accesslog", str(log_file))
    cfg.set("errorlog", str(tmp_path / "error.log"))
    logger = cfg.logger_class(cfg)
    return logger, log_file


@pytest.mark.parametrize("which", ["right", "wrong"])
def test_gunicorns_access_log_of_the_handshake_holds_no_verify_token(
    client, settings, tmp_path, which
):
    token = settings.META_VERIFY_TOKEN if which == "right" else WRONG_GUESS
    environ, answer = handshake(client, token)
    logger, log_file = gunicorn_logger(tmp_path)
    assert isinstance(logger, RedactingLogger)

    logger.access(answer, SimpleNamespace(headers=[]), environ, dt.timedelta(milliseconds=3))

    line = log_file.read_text()
    assert token not in line
    status = "200" if which == "right" else "403"
    assert (
        f'"GET /webhooks/meta/?hub.mode=subscribe&hub.challenge=1158201444'
        f'&hub.verify_token=[token] HTTP/1.1" {status} '
    ) in line
    assert line.startswith("173.252.127.1 - - [")


def test_gunicorns_error_log_redacts_a_request_line_too(tmp_path):
    logger, _ = gunicorn_logger(tmp_path)
    logger.setup(logger.cfg)  # a reload (SIGHUP) runs setup again: still one filter
    logger.exception("Error handling request /webhooks/meta/?hub.verify_token=%s", WRONG_GUESS)
    text = (tmp_path / "error.log").read_text()
    assert "Error handling request /webhooks/meta/?hub.verify_token=[token]" in text
    assert WRONG_GUESS not in text
    assert len(logger.error_log.filters) == 1


def test_runservers_request_log_holds_no_verify_token(client, settings):
    """`django.server` is what runserver writes each request line to (its handler's own
    format): the line as WSGIRequestHandler.log_message hands it over."""
    environ, _ = handshake(client, settings.META_VERIFY_TOKEN)
    request_line = f"GET {environ['RAW_URI']} HTTP/1.1"
    (handler,) = [
        h
        for h in logging.getLogger("django.server").handlers
        if any(isinstance(f, RedactingFilter) for f in h.filters)
    ]
    stream = io.StringIO()
    before = handler.setStream(stream)
    try:
        logging.getLogger("django.server").info(
            '"%s" %s %s', request_line, "200", "10", extra={"status_code": 200}
        )
    finally:
        handler.setStream(before)
    text = stream.getvalue()
    assert settings.META_VERIFY_TOKEN not in text
    assert '&hub.verify_token=[token] HTTP/1.1" 200 10' in text
    assert text.startswith("[")  # Django's own runserver format, server time first
