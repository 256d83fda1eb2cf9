"""One rule that keeps secrets out of every text we store, show or log: `redact`.

A secret is replaced by `[token]` wherever it appears:
- the configured ones: META_ACCESS_TOKEN, META_APP_SECRET, META_VERIFY_TOKEN and the app
  token `META_APP_ID|META_APP_SECRET`;
- every page's stored token (decrypted), and any token a caller names (the one a call used,
  or a new token being checked);
- the `appsecret_proof` of each of those tokens (an HMAC of the token; with it a request can
  be replayed as if we had sent it);
- the value of a secret-bearing URL parameter (`hub.verify_token=`, `access_token=`,
  `appsecret_proof=` ...), whatever the value: an access log line of a failed webhook
  handshake holds a token that is close to the real one, or an old one.

Users: `GraphError` (its message and trace id), the columns that keep errors (a lead's
fetch error, a page's token error, a form's last read error, the conversion sender's
attempts, events and pause), and `RedactingFilter` on the log handlers (settings.LOGGING;
gunicorn's logs in `config.gunicorn_logging`).

The page tokens are decrypted once and kept per process. A new token (`set_page_token`)
calls `forget_page_tokens`, which changes a version in the shared cache so that every
process reloads; a token stored any other way is picked up within `PAGE_TOKENS_TTL`.
Loading needs the database, which a log record or an error may be made without (a thread
that has no connection, a database outage, a failed transaction): then the tokens loaded
last are used, never an exception.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from django.conf import settings

MARK = "[token]"
# Shorter values are not treated as secrets: replacing "abc" in every message would garble
# the messages and protect nothing (a secret that short is not one).
MIN_SECRET_LENGTH = 8
PAGE_TOKENS_TTL = 60.0
PAGE_TOKENS_VERSION_KEY = "leadloop:page-tokens-version"

# Graph's, Facebook Login's and the webhook handshake's secret parameters, literal or
# percent-encoded ("hub%2Everify_token"), in a URL or a form body.
_SECRET_PARAMETER = re.compile(
    r"(?i)((?<![\w.%])(?:hub(?:\.|%2e)verify_token|access_token|appsecret_proof|input_token"
    r"|client_secret|fb_exchange_token)(?:=|%3d))[^&\s\"'<>#;]*"
)


def redact(text: str, *also: str) -> str:
    """`text` with every known secret, and the secrets in `also`, replaced by `[token]`."""
    if not text or not isinstance(text, str):
        return text
    secrets = _known_secrets(also)
    if secrets:
        text = _pattern(secrets).sub(MARK, text)
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + MARK, text)


def redact_parameters(text: str) -> str:
    """Only the secret URL parameters (no settings, no database): for gunicorn's logs,
    which are written outside Django."""
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + MARK, text) if text else text


def appsecret_proof(token: str, secret: str) -> str:
    return _proof(secret, token)


@lru_cache(maxsize=4096)
def _proof(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()


def _known_secrets(also: tuple[str, ...]) -> frozenset[str]:
    app_secret = str(getattr(settings, "META_APP_SECRET", "") or "")
    app_id = str(getattr(settings, "META_APP_ID", "") or "")
    tokens = {str(getattr(settings, "META_ACCESS_TOKEN", "") or ""), *also, *page_tokens()}
    tokens = {token for token in tokens if len(token) >= MIN_SECRET_LENGTH}
    secrets = set(tokens)
    secrets.add(str(getattr(settings, "META_VERIFY_TOKEN", "") or ""))
    if app_secret:
        secrets.add(app_secret)
        secrets.update(_proof(app_secret, token) for token in tokens)
        if app_id:
            # The app token: Graph accepts `{app-id}|{app-secret}` as an access token.
            secrets.add(f"{app_id}|{app_secret}")
    return frozenset(secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH)


@lru_cache(maxsize=32)
def _pattern(secrets: frozenset[str]) -> re.Pattern[str]:
    # Longest first, so that a secret containing another (the app token holds the app
    # secret) is replaced whole.
    return re.compile("|".join(re.escape(s) for s in sorted(secrets, key=lambda s: (-len(s), s))))


# --- The page tokens -------------------------------------------------------------------------


@dataclass
class _PageTokens:
    tokens: frozenset[str] = frozenset()
    version: object = None
    loaded_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _PageTokens()
_local = threading.local()


def page_tokens() -> frozenset[str]:
    """Every page's stored token, decrypted (cached; see the module docstring)."""
    if getattr(_local, "no_database", False) or getattr(_local, "loading", False):
        return _state.tokens
    try:
        from django.core.cache import cache

        version = cache.get(PAGE_TOKENS_VERSION_KEY)
    except Exception:
        return _state.tokens
    fresh = _state.loaded_at is not None and time.monotonic() - _state.loaded_at < PAGE_TOKENS_TTL
    if fresh and version is not None and version == _state.version:
        return _state.tokens
    _local.loading = True
    try:
        tokens = _load_page_tokens()
        if version is None:
            # A cold or cleared cache: start a version that the next change replaces.
            version = uuid.uuid4().hex
            cache.add(PAGE_TOKENS_VERSION_KEY, version, timeout=None)
            version = cache.get(PAGE_TOKENS_VERSION_KEY)
    except Exception:
        # No database here or now: the tokens loaded last stand.
        return _state.tokens
    finally:
        _local.loading = False
    with _state.lock:
        _state.tokens, _state.version, _state.loaded_at = tokens, version, time.monotonic()
    return tokens


def _load_page_tokens() -> frozenset[str]:
    from leads.crypto import TokenDecryptionError
    from leads.models import Page

    tokens = set()
    for page in Page.objects.exclude(token_encrypted="").only("pk", "token_encrypted"):
        try:
            tokens.add(page.token)
        except TokenDecryptionError:
            continue
    return frozenset(tokens)


def forget_page_tokens() -> None:
    """A page's token changed: every process reloads the tokens before it next redacts.
    Call it after the change commits, or another process may reload the old tokens."""
    from django.core.cache import cache

    with _state.lock:
        _state.loaded_at = None
    try:
        cache.set(PAGE_TOKENS_VERSION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception:
        # The other processes reload within PAGE_TOKENS_TTL without it.
        logging.getLogger(__name__).warning("Could not announce a page token change")


@contextmanager
def without_database() -> Iterator[None]:
    """Redact with the tokens loaded last, never querying: for a thread that must not
    open a database connection (the bulk read's prefetch)."""
    before = getattr(_local, "no_database", False)
    _local.no_database = True
    try:
        yield
    finally:
        _local.no_database = before


# --- Logs ------------------------------------------------------------------------------------


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and traceback with `redact` before any handler formats
    it. Never queries the database: a log record may be made anywhere, by a query's own
    logging included."""

    def filter(self, record: logging.LogRecord) -> bool:
        with without_database():
            try:
                message = record.getMessage()
            except Exception:
                return True  # a broken record is logging's to report, unchanged
            record.msg, record.args = redact(message), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
        return True
