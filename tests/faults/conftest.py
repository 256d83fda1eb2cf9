"""The fault suite reuses the end-to-end stack (gunicorn + qcluster + Meta stand-in)."""

from tests.e2e.conftest import meta, stack  # noqa: F401 - fixtures
