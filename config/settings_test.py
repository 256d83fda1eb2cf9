"""Test settings: the real settings with fixed Meta credentials and fast hashing.

DATABASE_URL and REDIS_URL still come from the environment, so the same suite runs on
SQLite with the ORM broker (default), on PostgreSQL, and with the Redis broker.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")

from config.settings import *  # noqa: F403
from config.settings import DATABASES, Q_CLUSTER

DEBUG = False
ALLOWED_HOSTS = ["*"]
SECURE_SSL_REDIRECT = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

META_APP_SECRET = "test-app-secret"
META_VERIFY_TOKEN = "test-verify-token"
# End-to-end tests hand the processes they start a sandbox token and dataset through these;
# never through META_* themselves, which a developer's .env may point at a real dataset.
META_ACCESS_TOKEN = os.environ.get("LEADLOOP_TEST_ACCESS_TOKEN", "")
META_DATASET_ID = os.environ.get("LEADLOOP_TEST_DATASET_ID", "")
META_TEST_EVENT_CODE = ""
# End-to-end tests point the processes they start at a local stand-in through these.
META_GRAPH_URL = os.environ.get("META_GRAPH_URL", "https://graph.test")
META_WWW_URL = os.environ.get("META_WWW_URL", "https://www.test")
META_API_VERSION = "v24.0"
TOKEN_ENCRYPTION_KEY = ""
LEAD_FETCH_INLINE_BACKOFF = 0.0

# A file, not :memory:, so that end-to-end tests can share the test database with the
# web server and qcluster processes they start.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One file per test process, so parallel runs (two checkouts, CI beside a developer)
    # never share it; pytest-django deletes it at the end of the run.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"leadloop-test-{os.getpid()}.sqlite3")
    }

# Own queue name, so a test run never consumes (or purges) a developer's real queue.
# setdefault: processes started by end-to-end tests inherit the name and share the queue.
Q_CLUSTER["name"] = os.environ.setdefault("LEADLOOP_TEST_QUEUE", f"leadloop-test-{os.getpid()}")

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Static files are found by the finders in tests; no collectstatic run is needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
