"""The API's rate limits, all counted per client address as `core.clientip` reads it.

DRF's own throttles take the address from `X-Forwarded-For` as the client wrote it unless
NUM_PROXIES is set (a fresh bucket per made-up header); settings.py sets NUM_PROXIES, and
these classes go one step further and use the project's one reading of the address, so the
API's limits and the login lockouts always count the same client.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework import throttling
from rest_framework.request import Request
from rest_framework.settings import api_settings

from core.clientip import address_key


class ClientAddressMixin:
    def get_ident(self, request: Request) -> str:
        return address_key(request) or ""

    scope: str

    def get_rate(self) -> str | None:
        # From the settings when used, not as DRF copies them when the class is defined.
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"REST_FRAMEWORK has no rate for {self.scope!r}.") from None


class AnonRateThrottle(ClientAddressMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(ClientAddressMixin, throttling.UserRateThrottle):
    pass


class FailedTokenThrottle(ClientAddressMixin, throttling.SimpleRateThrottle):
    """Failed `Authorization: Token` attempts per client address (rate `failed_token`).

    DRF authenticates before it throttles, and a wrong token ends the request with a 401
    there, so no throttle ever sees a token guess; `crm.api.authentication` asks this one
    before and after checking a token instead. Failures are counted in fixed windows of
    the rate's period with the cache's atomic `incr` (exact with Redis, which shares the
    count between hosts): a client gets at most the rate's number of failures per window,
    plus the guesses already in flight when the limit is reached.
    """

    scope = "failed_token"

    def get_cache_key(self, request: Request, view: Any = None) -> str:
        window = int(self.timer() // self.duration)
        return self.cache_format % {
            "scope": self.scope,
            "ident": f"{self.get_ident(request)}:{window}",
        }

    def exhausted(self, request: Request) -> bool:
        """Whether this client has no failure left in the current window (counts nothing)."""
        if self.rate is None:
            return False
        return self.cache.get(self.get_cache_key(request), 0) >= self.num_requests

    def record_failure(self, request: Request) -> None:
        if self.rate is None:
            return
        key = self.get_cache_key(request)
        # add() then incr(): both atomic, so concurrent failures are all counted.
        self.cache.add(key, 0, timeout=self.duration)
        try:
            self.cache.incr(key)
        except ValueError:  # expired between the two calls
            self.cache.add(key, 1, timeout=self.duration)

    def wait(self) -> float:
        """Seconds until the current window ends."""
        return self.duration - self.timer() % self.duration
