"""The security tests cross the apps: the Conversions API's configured dataset and token."""

from tests.capi.conftest import capi_settings  # noqa: F401 - a fixture reused here
