"""How long webhook deliveries are kept, and the scheduled prune that deletes them.

A delivery's status says whether anything is left to do with it:

- *processed* and *ignored*: verified and handled. Kept WEBHOOK_RETENTION_DAYS (30) after
  it was received and last processed (a reprocess starts the time again), then deleted.
- *invalid signature*: not shown to come from Meta; noise, kept only for diagnosis (a
  wrong app secret, a probe) and only in part (headers, size, digest, first 4 KiB).
  Kept WEBHOOK_INVALID_RETENTION_DAYS (7) after it was received, then deleted.
- *failed* and *malformed* (and *received*, which a stored delivery has only if its
  verdict was never written): not handled. Kept until an admin deals with it: a reprocess
  that succeeds makes it processed or ignored (and it ages from then), or the admin
  deletes it.

0 days keeps that kind for ever. A lead points to the delivery that first brought it
(`Lead.first_delivery`, SET_NULL): a pruned delivery's leads stay, pointing nowhere.

Deleted in batches of BATCH_SIZE, one short transaction each (on SQLite under the write
lock that webhooks take, so they wait for one batch at most), until none is left or the
deadline passes; the next run carries on.
"""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.db.sqlite import serialized_writes
from leads.models import WebhookDelivery

BATCH_SIZE = 500

HANDLED = (WebhookDelivery.Status.PROCESSED, WebhookDelivery.Status.IGNORED)


def prunable(*, now: dt.datetime | None = None) -> Q | None:
    """The deliveries past their retention at `now`; None when every kind is kept for ever."""
    now = now or timezone.now()
    conditions = []
    if settings.WEBHOOK_RETENTION_DAYS > 0:
        cutoff = now - dt.timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
        # processed_at is never before received_at; the latter is indexed.
        conditions.append(Q(status__in=HANDLED, received_at__lt=cutoff, processed_at__lt=cutoff))
    if settings.WEBHOOK_INVALID_RETENTION_DAYS > 0:
        cutoff = now - dt.timedelta(days=settings.WEBHOOK_INVALID_RETENTION_DAYS)
        conditions.append(
            Q(status=WebhookDelivery.Status.INVALID_SIGNATURE, received_at__lt=cutoff)
        )
    if not conditions:
        return None
    found = conditions[0]
    for condition in conditions[1:]:
        found |= condition
    return found


def prune_deliveries(
    *, now: dt.datetime | None = None, deadline: float | None = None, batch_size: int = BATCH_SIZE
) -> int:
    """Delete the deliveries past their retention, oldest first; returns how many. Stops
    starting new batches once `deadline` (a `time.monotonic()` value) has passed."""
    condition = prunable(now=now)
    if condition is None:
        return 0
    pruned = 0
    while deadline is None or time.monotonic() < deadline:
        with serialized_writes(), transaction.atomic():
            batch = (
                WebhookDelivery.objects.filter(condition)
                .order_by("received_at")
                .values("pk")[:batch_size]
            )
            # Only the keys are loaded (bodies can be a megabyte each); the leads pointing
            # to these deliveries are set to none in one UPDATE (SET_NULL).
            _, by_model = WebhookDelivery.objects.filter(pk__in=batch).only("pk").delete()
        count = by_model.get(WebhookDelivery._meta.label, 0)
        pruned += count
        if count < batch_size:
            break
    return pruned
