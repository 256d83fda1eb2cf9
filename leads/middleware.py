"""Meta's webhook served ahead of the middleware that only people's requests need.

A delivery is a signed POST from a machine: it has no session, cookie, language, CSRF token,
user or messages, and its answer is a line of JSON that no browser renders. Yet every
middleware in `MIDDLEWARE` ran on it, and together they cost a third again as much Python
as the rest of a webhook's request handling (bench/webhook: about half a million
instructions of some three million). This middleware, placed right after
`SecurityMiddleware` (HTTPS redirect and security headers still apply), hands the webhook's
path straight to its view, as a health-check middleware placed first does for a probe.

What the skipped middleware would have done for it is kept where it matters: the `Host`
header is checked against `ALLOWED_HOSTS` here (an unknown host is a 400, as from
`CommonMiddleware`), the view is `csrf_exempt` either way, and exceptions become Django's
usual 500 answer (each middleware is wrapped by the handler's exception conversion).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.urls import get_script_prefix, resolve, reverse

WEBHOOK_URL_NAME = "meta-webhook"


class MetaWebhookMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        # The URLconf stays the one place that says where the webhook lives and which view
        # serves it; `path_info` is the path without the script prefix.
        self.path = "/" + reverse(WEBHOOK_URL_NAME).removeprefix(get_script_prefix())
        self.match = resolve(self.path)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path_info != self.path:
            return self.get_response(request)
        request.get_host()  # raises DisallowedHost (a 400) for a host not in ALLOWED_HOSTS
        request.resolver_match = self.match
        return self.match.func(request, *self.match.args, **self.match.kwargs)
