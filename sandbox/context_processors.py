"""The sandbox banner: says plainly that Meta here is the local stand-in."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _


def banners(request: HttpRequest) -> dict[str, Any]:
    if not settings.SANDBOX_MODE:
        return {}
    banner = {
        "level": "info",
        "text": _(
            "Sandbox mode: leads come from Leadloop's built-in Meta sandbox, and conversion "
            "events go to it. Nothing reaches Meta."
        ),
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_staff:
        banner["link"] = reverse("sandbox:events")
        banner["link_text"] = _("See what Meta received")
    return {"sandbox_banners": [banner]}
