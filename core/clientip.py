"""The client's address, read one way everywhere: login lockouts (django-axes), the API's
throttles and anything else that needs to know who is on the other end.

`X-Forwarded-For` is set by whoever sends the request, so only the entries our own proxies
appended can be believed. TRUSTED_PROXY_COUNT says how many proxies stand in front of the
web process: with 0 the header is ignored and the socket's peer (`REMOTE_ADDR`) is the
client; with N the Nth entry from the right is (each proxy appends the address it was
reached from, so the rightmost N entries are written by our proxies and anything left of
them by the client). These are DRF's `NUM_PROXIES` rules, which settings.py sets to the
same count.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

# A subscriber is handed a whole IPv6 /64 (RFC 6177); counting single addresses in it
# would give one attacker 2**64 fresh lockout buckets.
IPV6_PREFIX = 64


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address as trusted proxies report it, or None when unknown (a
    request built in code, or a proxy that wrote something that is not an address)."""
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count > 0 and forwarded:
        entries = forwarded.split(",")
        # Fewer entries than proxies: the request passed fewer proxies, and the leftmost
        # entry is still one a proxy of ours wrote.
        return _valid(entries[-min(count, len(entries))].strip())
    return _valid(remote)


def address_key(request: HttpRequest) -> str | None:
    """The address that brute-force guards count per: the client address, an IPv6 one
    reduced to its /64 network (written as an address, which is what django-axes stores)."""
    address = client_address(request)
    if address is None:
        return None
    if ":" in address:  # IPv6 (mapped IPv4 addresses were turned into IPv4 above)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False).network_address)
    return address


def _valid(value: str | None) -> str | None:
    if not value:
        return None
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        # "::ffff:192.0.2.1" is the IPv4 client of a dual-stack socket: count it as that.
        return str(parsed.ipv4_mapped)
    return str(parsed)
