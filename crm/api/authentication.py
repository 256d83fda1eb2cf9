"""Token authentication with a limit on wrong tokens per client address."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from crm.api.throttling import FailedTokenThrottle


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's `Authorization: Token <key>`, with failed attempts throttled.

    A client that has used up its failures (FailedTokenThrottle) gets 429 before its token
    is looked at, right or wrong: answering a right token then would tell a guesser when it
    has found one. Requests without a Token header are not counted.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if not self._sends_token(request):
            return None
        throttle = FailedTokenThrottle()
        if throttle.exhausted(request):
            raise exceptions.Throttled(wait=throttle.wait())
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        try:
            return super().authenticate_credentials(key)
        except exceptions.AuthenticationFailed:
            # DRF says "User inactive or deleted." for the token of a deactivated user,
            # which tells a guesser that the token exists: one answer for every wrong key.
            raise exceptions.AuthenticationFailed(_("Invalid token.")) from None

    def _sends_token(self, request: Request) -> bool:
        auth = authentication.get_authorization_header(request).split()
        return bool(auth) and auth[0].lower() == self.keyword.lower().encode()
