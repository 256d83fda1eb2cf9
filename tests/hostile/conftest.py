"""The hostile Conversions API answers reuse the sender's fixtures: a configured dataset,
`responses` standing in for Meta, and no batching window (sends happen at once)."""

from tests.capi.conftest import _no_batch_window, capi_settings, fake_meta  # noqa: F401
