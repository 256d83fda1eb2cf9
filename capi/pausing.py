"""Whether the sender may send: the configuration it needs, and the pause Meta's refusals set.

Events wait as `pending` while META_DATASET_ID or META_ACCESS_TOKEN is not set, and while
the sender is paused. A pause is set when Meta refuses the token (190) or the dataset
(missing, no permission), on the SenderState row, with the reason admins see and a
fingerprint of the refused dataset and token; it lifts by itself once either changes, or
when an admin resumes it. `blocker()` says which of these holds events back (the admin,
the banner and each send run ask it).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

from capi.models import SenderState
from leads import crypto

logger = logging.getLogger(__name__)


def config_fingerprint(dataset: str, token: str) -> str:
    """Identifies the dataset and token Meta refused, without storing the token."""
    return crypto.fingerprint(f"{dataset}\x00{token}")


def missing_configuration() -> str:
    missing = [
        name for name in ("META_DATASET_ID", "META_ACCESS_TOKEN") if not getattr(settings, name, "")
    ]
    if not missing:
        return ""
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"{' and '.join(missing)} {verb} not set: conversion events wait (pending) until "
        "a dataset and a token are configured."
    )


def blocker(state: SenderState | None = None) -> str:
    """Why pending events cannot be sent right now; '' when they can."""
    missing = missing_configuration()
    if missing:
        return missing
    state = state or SenderState.current()
    if state.paused_fingerprint and state.paused_fingerprint == config_fingerprint(
        settings.META_DATASET_ID, settings.META_ACCESS_TOKEN
    ):
        return state.paused_reason or "Sending is paused."
    return ""


def pause(*, reason: str, dataset: str, token: str) -> None:
    now = timezone.now()
    SenderState.current()
    SenderState.objects.filter(pk=SenderState.SINGLETON_ID).update(
        paused_reason=reason,
        paused_at=now,
        paused_fingerprint=config_fingerprint(dataset, token),
        updated_at=now,
    )
    logger.warning("Conversions API sending paused: %s", reason)


def resume() -> bool:
    """Clear a pause (an admin fixed the token's permissions, say). True if one was set."""
    return bool(
        SenderState.objects.filter(pk=SenderState.SINGLETON_ID)
        .exclude(paused_fingerprint="")
        .update(paused_reason="", paused_at=None, paused_fingerprint="", updated_at=timezone.now())
    )


def resume_if_reconfigured(state: SenderState) -> SenderState:
    dataset, token = settings.META_DATASET_ID, settings.META_ACCESS_TOKEN
    if (
        state.paused_fingerprint
        and dataset
        and token
        and state.paused_fingerprint != config_fingerprint(dataset, token)
    ):
        logger.info("Conversions API: dataset or token changed since the pause; resuming")
        resume()
        state.refresh_from_db()
    return state
