"""Login lockouts for both logins (the sales UI's `/login/` and the admin's), with
django-axes: failed attempts are rows in the database, so every web host counts the same.

Two counts, each with its own limit (settings.LOGIN_LOCKOUT):

- one username from one address (LOGIN_FAILURE_LIMIT, small): guessing one person's
  password stops after a few tries, and nobody else can lock that person out from
  elsewhere, as a lockout per username alone would allow;
- one address, whatever the usernames (LOGIN_ADDRESS_FAILURE_LIMIT, larger because an
  office shares one address): trying a few passwords on many usernames stops too.

Axes compares every count with one limit (AXES_FAILURE_LIMIT); the handler below scales
each count to it so each lockout parameter has its own. A lockout lasts
LOGIN_COOLOFF_MINUTES after the last failed attempt; attempts during it, the right
password included, are refused and counted, so a guesser who keeps on stays locked out.
"""

from __future__ import annotations

from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


class LoginAttemptsHandler(AxesDatabaseHandler):
    """Axes' database handler with a failure limit per lockout parameter."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        # One queryset per entry of AXES_LOCKOUT_PARAMETERS, in its order.
        attempts = self.get_user_attempts(request, credentials)
        limits = [limit for _parameter, limit in settings.LOGIN_LOCKOUT]
        common = settings.AXES_FAILURE_LIMIT
        # Reported against the common limit: reaching it means one count reached its own.
        return max(
            (queryset.aggregate(n=Sum("failures_since_start"))["n"] or 0) - limit + common
            for queryset, limit in zip(attempts, limits, strict=True)
        )


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The page a locked-out login attempt gets (AXES_LOCKOUT_CALLABLE), for both logins:
    what happened and how long to wait, in the user's language, with status 429."""
    cool_off = get_cool_off(request)
    minutes = round(cool_off.total_seconds() / 60) if cool_off else None
    response = TemplateResponse(
        request,
        "registration/locked_out.html",
        {"minutes": minutes, "login_url": request.get_full_path()},
        status=429,
    )
    if cool_off:
        response["Retry-After"] = str(int(cool_off.total_seconds()))
    return response.render()
