"""A local stand-in for the parts of Meta's Graph API that Leadloop uses.

Standard library only, so it runs as its own process (``python -m sandbox``) and in a
thread inside tests without Django. See :mod:`sandbox.server` for the details.
"""

from __future__ import annotations

from sandbox.server.core import MetaSandbox
from sandbox.server.errors import GraphError
from sandbox.server.export import ExportOptions
from sandbox.server.faults import Fault
from sandbox.server.wire import RecordedRequest, format_meta_time, parse_meta_time

__all__ = [
    "ExportOptions",
    "Fault",
    "GraphError",
    "MetaSandbox",
    "RecordedRequest",
    "format_meta_time",
    "parse_meta_time",
]
