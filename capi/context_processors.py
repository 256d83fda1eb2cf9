"""The Conversions API's banner: conversion events are not reaching Meta (no dataset or
token configured, or sending paused after Meta refused the token or dataset)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _

from capi import sending
from capi.models import ConversionEvent, SenderState


def capi_banners(*, with_links: bool) -> list[dict[str, str]]:
    if sending.missing_configuration():
        text = _(
            "Conversion events are not sent to Meta: META_DATASET_ID and META_ACCESS_TOKEN "
            "must both be set. Stage changes are kept and will be sent once they are."
        )
    else:
        reason = sending.blocker(SenderState.current())
        if not reason:
            return []
        text = _("Sending conversion events to Meta is paused: %(reason)s") % {"reason": reason}
    waiting = ConversionEvent.objects.filter(status="pending").count()
    if waiting:
        text = f"{text} " + _("%(count)s waiting.") % {"count": waiting}
    banner = {"level": "warning", "text": text}
    if with_links:
        banner["link"] = reverse("admin:capi_senderstate_changelist")
        banner["link_text"] = _("See the sender's state")
    return [banner]


def banners(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {}
    # Lazy: pages that do not render banners (the admin, the API) run no query.
    return {"capi_banners": SimpleLazyObject(lambda: capi_banners(with_links=user.is_superuser))}
