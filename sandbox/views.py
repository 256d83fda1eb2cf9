"""The conversion events the Meta sandbox received: what Meta would have seen."""

from __future__ import annotations

import json
import urllib.request

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


@staff_member_required
def received_events(request: HttpRequest) -> HttpResponse:
    if not settings.SANDBOX_MODE:
        raise Http404("Leadloop is not running against the Meta sandbox.")
    error = ""
    events: list[dict] = []
    try:
        url = f"{settings.META_GRAPH_URL}/__sandbox__/events"
        # bandit B310: our sandbox (META_GRAPH_URL)
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310  # nosec B310
            events = json.loads(response.read())
    except (OSError, ValueError) as exc:
        error = str(exc)
    events = sorted(events, key=lambda e: e.get("received_at", 0), reverse=True)[:500]
    return render(
        request, "sandbox/events.html", {"events": events, "error": error, "count": len(events)}
    )
