"""Who sent a request, as far as the proxies in front of us can be trusted to say."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent `request`.

    With no proxy in front (`TRUSTED_PROXY_COUNT` 0, the default) it is `REMOTE_ADDR`.
    With N trusted proxies each appends the address it received from to
    `X-Forwarded-For`, so the client is the Nth entry from the right; entries further left
    are the client's own to invent and are never read. A header with fewer entries than
    that (the request did not pass every proxy), or an entry that is not an IP address,
    gives `REMOTE_ADDR` instead: the nearest sender we know.
    """
    meta = request.META
    remote = str(meta.get("REMOTE_ADDR") or "")
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0) or 0)
    if proxies <= 0:
        return remote
    forwarded = [entry.strip() for entry in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    if len(forwarded) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(forwarded[-proxies]))
    except ValueError:
        return remote
