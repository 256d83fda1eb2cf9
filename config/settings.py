"""Leadloop settings: one file, configured from the environment (and `.env` if present).

Every variable is documented in `.env.example`. Values that would be insecure in
production have no default unless DEBUG is on: a missing SECRET_KEY with DEBUG off fails
loudly at start-up instead of running with a guessable key.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from core.db import options as database_options

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Real environment variables win over `.env`: CI and production set them explicitly.
environ.Env.read_env(os.environ.get("LEADLOOP_ENV_FILE") or BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _list(name: str, default: list[str]) -> list[str]:
    return [item.strip() for item in env.list(name, default=default) if item.strip()]


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Only for local development; never used when DEBUG is off.
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 (DEBUG only)

ALLOWED_HOSTS = _list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "csp",
    "leads",
    "crm",
    "capi",
    "sandbox",
    # The project itself: `manage.py deploy` and the start-up check of what it builds.
    "config",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Meta's webhook goes straight to its view: none of what follows applies to it.
    "leads.middleware.MetaWebhookMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.RejectNulQueryMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise: static files keep their long-lived caching, everything else is
    # no-store unless it says otherwise.
    "config.middleware.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its page (config.logins).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                # Banners for things that need attention; each app owns its own and the
                # base template renders `<app>_banners` (lazy: no query unless rendered).
                "leads.context_processors.banners",
                "capi.context_processors.banners",
                "sandbox.context_processors.banners",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _name = str(DATABASES["default"]["NAME"])
    if _name != ":memory:" and not Path(_name).is_absolute():
        # sqlite:///db.sqlite3 means the repo's db.sqlite3, whatever the working directory.
        DATABASES["default"]["NAME"] = str(BASE_DIR / _name)
    DATABASES["default"].setdefault("OPTIONS", {}).update(database_options.SQLITE)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # DATABASE_PREPARED_STATEMENTS=false behind a pooler that cannot keep them.
    for _key, _value in database_options.postgresql(
        prepared_statements=env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
    ).items():
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(_key, _value)
# Persistent connections, also for SQLite: opening one costs more than a webhook's queries.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("es", "Español"),
    ("fr", "Français"),
    ("zh-hans", "简体中文"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py deploy` (collectstatic) writes the static files and their manifest,
# which the web server needs when DEBUG is off. A relative path is from the repository.
STATIC_ROOT = BASE_DIR / env.str("STATIC_ROOT", default="staticfiles")
# Serve straight from the apps' static folders in development (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# django-axes' backend comes first: it refuses a locked-out login before any password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "crm:login"
LOGIN_REDIRECT_URL = "crm:board"
LOGOUT_REDIRECT_URL = "crm:login"

# --- Security (production) -------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # /healthz is probed over plain HTTP by load balancers and process managers.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every answer but the webhook's: scripts and styles
# only from our own static files, so an injected <script>, `on*=` handler or `style=`
# attribute does not run. No 'unsafe-inline' and no nonce is needed: the UI, the admin and
# the API docs (drf-spectacular's split Swagger view, crm/api/urls.py) have no inline script
# or style. `data:` images: the UI's and Swagger UI's stylesheets draw icons with them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Client address and login lockouts -----------------------------------------------
# Proxies (load balancer, reverse proxy) in front of the web processes that append the
# address they were reached from to X-Forwarded-For: that many entries from the right are
# trusted (core.clientip). 0: the header is ignored, the socket's peer is the client.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more.")

# Failed logins (both logins) allowed per username from one address, and per address
# whatever the usernames, before a lockout of LOGIN_COOLOFF_MINUTES (config.logins).
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=30)
LOGIN_COOLOFF_MINUTES = env.int("LOGIN_COOLOFF_MINUTES", default=15)
if min(LOGIN_FAILURE_LIMIT, LOGIN_ADDRESS_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES) < 1:
    raise ImproperlyConfigured("Login failure limits and the cool-off must be 1 or more.")
# (django-axes lockout parameter, its failure limit); config.logins.LoginAttemptsHandler
# gives each its own limit.
LOGIN_LOCKOUT: list[tuple[str | list[str], int]] = [
    (["username", "ip_address"], LOGIN_FAILURE_LIMIT),
    ("ip_address", LOGIN_ADDRESS_FAILURE_LIMIT),
]
AXES_LOCKOUT_PARAMETERS = [parameter for parameter, _limit in LOGIN_LOCKOUT]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = dt.timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_HANDLER = "config.logins.LoginAttemptsHandler"
AXES_CLIENT_IP_CALLABLE = "core.clientip.address_key"
AXES_LOCKOUT_CALLABLE = "config.logins.locked_out"
# A successful login does not clear the failures: Axes would clear every count it is part
# of, the address's included, so a guesser with an account of their own could log in
# between guesses at other people's passwords and never be locked out.
AXES_RESET_ON_SUCCESS = False

# --- Django REST framework -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's, with failed tokens throttled per client address.
        "crm.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "crm.api.pagination.LeadloopPagination",
    "PAGE_SIZE": 50,
    # API clients only: the Meta webhook view turns throttling off for itself.
    # Counted per client address as core.clientip reads it (crm.api.throttling).
    "DEFAULT_THROTTLE_CLASSES": [
        "crm.api.throttling.AnonRateThrottle",
        "crm.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/minute"),
        "user": env.str("API_THROTTLE_USER", default="1200/minute"),
        # Wrong `Authorization: Token` keys per client address (crm.api.authentication).
        "failed_token": env.str("API_THROTTLE_FAILED_TOKEN", default="10/minute"),
    },
    # For DRF's own throttles, should any view use them: the same count as core.clientip.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "EXCEPTION_HANDLER": "crm.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "crm.api.schema.LeadloopAutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Leadloop API",
    "DESCRIPTION": (
        "Leads captured from Meta Lead Ads, their pipeline stages, notes and the conversion "
        "events reported back to Meta. Authenticate with `Authorization: Token <key>` "
        "(`manage.py drf_create_token USER`) or a session."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from our own static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Background work (django-q2) -------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER: dict[str, object] = {
    "name": env.str("Q_CLUSTER_NAME", default="leadloop"),
    "workers": env.int("Q_WORKERS", default=2),
    # A task may make a few Graph calls with 20 s read timeouts plus short back-offs;
    # `timeout` stays below `retry` so a slow task is never handed to a second worker
    # while the first still runs it.
    "timeout": 150,
    "retry": 200,
    "max_attempts": 3,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    # The ORM broker polls; a short poll keeps a webhook lead's fetch within a second.
    Q_CLUSTER["poll"] = 0.2

# --- Meta ------------------------------------------------------------------------------
META_APP_SECRET = env.str("META_APP_SECRET", default="")
META_VERIFY_TOKEN = env.str("META_VERIFY_TOKEN", default="")
META_ACCESS_TOKEN = env.str("META_ACCESS_TOKEN", default="")
META_DATASET_ID = env.str("META_DATASET_ID", default="")
META_API_VERSION = env.str("META_API_VERSION", default="v24.0")
META_GRAPH_URL = env.str("META_GRAPH_URL", default="https://graph.facebook.com").rstrip("/")
META_WWW_URL = env.str("META_WWW_URL", default="https://www.facebook.com").rstrip("/")
META_TEST_EVENT_CODE = env.str("META_TEST_EVENT_CODE", default="")
CRM_NAME = env.str("CRM_NAME", default="Leadloop")
# Set by `make run` when no Meta settings are given: the app talks to the local Meta
# sandbox (META_GRAPH_URL) and shows a banner saying so.
SANDBOX_MODE = env.bool("LEADLOOP_SANDBOX", default=False)
# The sandbox's demo feed stops once the demo page has this many leads (0: never), so a
# `make run` left on for days keeps a board one can read.
SANDBOX_MAX_LEADS = env.int("SANDBOX_MAX_LEADS", default=300)
if SANDBOX_MAX_LEADS < 0:
    raise ImproperlyConfigured("SANDBOX_MAX_LEADS must be 0 (no limit) or more.")
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US")

# Graph HTTP timeouts in seconds: (connect, read). Every outbound call uses them.
META_HTTP_TIMEOUT = (
    env.float("META_CONNECT_TIMEOUT", default=5.0),
    env.float("META_READ_TIMEOUT", default=20.0),
)
# Webhook bodies larger than this are refused with 413. Meta batches at most 1000 changes
# per POST (about 250 KB), so 1 MiB leaves room without inviting memory abuse.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(WEBHOOK_MAX_BODY_BYTES, 2 * 1024 * 1024)


def _rate(name: str, default: str) -> str:
    # DRF's syntax, N/second|minute|hour|day (leads.throttle.parse_rate reads it).
    value = env.str(name, default=default).strip()
    if not re.fullmatch(r"\d+\s*/\s*[smhd][a-z]*", value, flags=re.IGNORECASE):
        raise ImproperlyConfigured(f"{name} must be N/second, N/minute, N/hour or N/day.")
    return value


# Deliveries whose signature fails keep their headers, size, digest and first 4 KiB only,
# and at most this many are kept, per client address and in all; beyond that they are
# answered 429 and only counted (leads.throttle). At the defaults they take at most
# about 100 x 24 x 7 x 5 KB = 85 MB over their retention.
WEBHOOK_INVALID_RATE_PER_CLIENT = _rate("WEBHOOK_INVALID_RATE_PER_CLIENT", "20/hour")
WEBHOOK_INVALID_RATE_TOTAL = _rate("WEBHOOK_INVALID_RATE_TOTAL", "100/hour")
# Days a verified (processed or ignored) delivery is kept, and one whose signature failed;
# then a schedule deletes it (leads.retention). Failed and malformed ones stay until an
# admin reprocesses or deletes them. 0 keeps them for ever.
WEBHOOK_RETENTION_DAYS = env.int("WEBHOOK_RETENTION_DAYS", default=30)
WEBHOOK_INVALID_RETENTION_DAYS = env.int("WEBHOOK_INVALID_RETENTION_DAYS", default=7)

# Lead fetch retries: quick in-task retries for blips (5xx, timeouts), then deferred
# attempts with exponential back-off, then the lead is marked failed (never dropped).
LEAD_FETCH_INLINE_RETRIES = env.int("LEAD_FETCH_INLINE_RETRIES", default=2)
LEAD_FETCH_INLINE_BACKOFF = env.float("LEAD_FETCH_INLINE_BACKOFF", default=1.0)
LEAD_FETCH_MAX_ATTEMPTS = env.int("LEAD_FETCH_MAX_ATTEMPTS", default=8)
LEAD_FETCH_BACKOFF = env.float("LEAD_FETCH_BACKOFF", default=30.0)

# Bulk read (sync_leads and the scheduled reconciliation): leads per Graph page, and how
# far behind "now" a form's high-water mark stays, because Meta can list a lead a few
# minutes after its created_time (the next run then reads those minutes again).
LEAD_SYNC_PAGE_SIZE = env.int("LEAD_SYNC_PAGE_SIZE", default=500)
LEAD_SYNC_SAFETY_LAG = env.int("LEAD_SYNC_SAFETY_LAG", default=300)
# Minutes between reconciliation runs (bulk read of every connected form); 0 turns it off.
RECONCILE_MINUTES = env.int("RECONCILE_MINUTES", default=15)

# Page tokens are encrypted with this key (Fernet); derived from SECRET_KEY when unset.
# Set it explicitly so rotating SECRET_KEY does not make stored tokens unreadable.
TOKEN_ENCRYPTION_KEY = env.str("TOKEN_ENCRYPTION_KEY", default="")

# --- Conversions API (capi) ------------------------------------------------------------
# Events per POST to /{dataset}/events: Meta accepts at most 1000.
CAPI_MAX_BATCH = min(env.int("CAPI_MAX_BATCH", default=1000), 1000)
# Transient failures (5xx, timeouts) an event survives before it is marked failed, and the
# first back-off in seconds (doubled per failure, at most an hour). Throttling by Meta
# never counts as a failure; the age limit below bounds every wait.
CAPI_MAX_ATTEMPTS = env.int("CAPI_MAX_ATTEMPTS", default=10)
CAPI_BACKOFF = env.float("CAPI_BACKOFF", default=60.0)
# Meta refuses events older than 7 days; older pending events are marked expired.
CAPI_EVENT_MAX_AGE_DAYS = env.int("CAPI_EVENT_MAX_AGE_DAYS", default=7)
# Batching: while fewer than a full batch wait, the sender holds them as long as new events
# keep coming (one at least every CAPI_BATCH_QUIET seconds) and the oldest is younger than
# CAPI_BATCH_WINDOW seconds; a full batch goes at once. So a burst of moves leaves full
# batches even when it comes slowly, and a single move is sent about CAPI_BATCH_QUIET
# after it was made. CAPI_BATCH_WINDOW=0: no waiting; CAPI_BATCH_QUIET=0: the window only.
CAPI_BATCH_WINDOW = env.float("CAPI_BATCH_WINDOW", default=5.0)
CAPI_BATCH_QUIET = env.float("CAPI_BATCH_QUIET", default=0.5)

# Every handler redacts tokens, secrets and secret URL parameters (leads.redaction) from
# what it writes; `django.server` (runserver's request lines, which hold the webhook
# handshake's `hub.verify_token`) is Django's own handler and format, redacted likewise.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "leads.redaction.RedactingFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs full request URLs at DEBUG; a Graph URL may carry a token.
        "urllib3": {"level": "WARNING"},
        # django-axes says hello at every start and logs every login at INFO (the admin's
        # access log keeps those); failed logins and lockouts are warnings.
        "axes": {"level": "WARNING"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
    },
}

# Shared between the web and worker processes (Graph API rate-limit pauses live here).
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": env.str("CACHE_DIR", default="") or str(BASE_DIR / ".run" / "cache"),
        }
    }
