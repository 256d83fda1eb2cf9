"""gunicorn's logger for Leadloop (`logger_class` in gunicorn.conf.py): its access and error
logs hold request lines with their query strings, and Meta's webhook handshake sends its
verify token in one (`GET /webhooks/meta/?hub.mode=subscribe&hub.verify_token=...`).

Each line is redacted as written, with the rule of `leads.redaction.redact_parameters`
(`hub.verify_token`, `access_token`, `appsecret_proof` ... values become `[token]`): one
pass over the finished line, not one per atom, so a request pays a single regular
expression, and only when an access log is enabled at all. No Django here: gunicorn's
arbiter logs before (and without) loading the application.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from leads.redaction import redact_parameters


class RedactParametersFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken record is logging's to report, unchanged
        record.msg, record.args = redact_parameters(message), None
        return True


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # setup() runs again on a reload (SIGHUP): one filter per log, not one per reload.
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactParametersFilter) for f in log.filters):
                log.addFilter(RedactParametersFilter())
