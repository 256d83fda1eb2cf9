"""core.clientip: the client's address, believing X-Forwarded-For only as far as
TRUSTED_PROXY_COUNT proxies of ours wrote it."""

from __future__ import annotations

import pytest
from django.http import HttpRequest
from django.test import RequestFactory

from core.clientip import address_key, client_address


def request(remote: str | None = "203.0.113.7", forwarded: str | None = None) -> HttpRequest:
    meta = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    built = RequestFactory().get("/", **meta)
    if remote is None:
        del built.META["REMOTE_ADDR"]
    else:
        built.META["REMOTE_ADDR"] = remote
    return built


@pytest.mark.parametrize(
    ("count", "forwarded", "expected"),
    [
        # No trusted proxy: the header is the client's own say and is ignored.
        (0, None, "203.0.113.7"),
        (0, "192.0.2.1", "203.0.113.7"),
        (0, "192.0.2.1, 198.51.100.2", "203.0.113.7"),
        # One proxy: the entry it appended, whatever the client wrote to the left.
        (1, "198.51.100.2", "198.51.100.2"),
        (1, "192.0.2.1, 198.51.100.2", "198.51.100.2"),
        (1, " 192.0.2.1 ,198.51.100.2 ", "198.51.100.2"),
        # Two proxies: the second entry from the right.
        (2, "192.0.2.1, 198.51.100.2, 10.0.0.3", "198.51.100.2"),
        # Fewer entries than proxies: the leftmost, which a proxy of ours still wrote.
        (2, "198.51.100.2", "198.51.100.2"),
        # A direct request with no header at all: the peer.
        (1, None, "203.0.113.7"),
        (1, "", "203.0.113.7"),
        # A proxy that wrote something that is not an address: unknown, not a guess.
        (1, "192.0.2.1, unknown", None),
        # IPv4 clients of a dual-stack socket count as the IPv4 address.
        (1, "::ffff:198.51.100.2", "198.51.100.2"),
    ],
)
def test_client_address(settings, count, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = count
    assert client_address(request(forwarded=forwarded)) == expected


def test_a_request_without_a_peer_has_no_address(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_address(request(remote=None)) is None
    assert address_key(request(remote=None)) is None


def test_ipv6_clients_are_counted_per_64_network(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    one = request(remote="2001:db8:1:2:aaaa::1")
    other = request(remote="2001:db8:1:2:ffff:ffff:ffff:ffff")
    neighbour = request(remote="2001:db8:1:3::1")
    assert client_address(one) == "2001:db8:1:2:aaaa::1"
    assert address_key(one) == address_key(other) == "2001:db8:1:2::"
    assert address_key(neighbour) == "2001:db8:1:3::"
    assert address_key(request(remote="203.0.113.7")) == "203.0.113.7"
