"""Fixtures borrowed from the suites whose code the hostile tests attack: the sender's (a
configured dataset, `responses` standing in for Meta, no batching window) and the sales
workspace's (pages, users with their access, leads; a logged-in client)."""

from tests.capi.conftest import _no_batch_window, capi_settings, fake_meta  # noqa: F401
from tests.crm.conftest import cast, login  # noqa: F401
