"""Rate limits on webhook deliveries whose signature fails: what bounds the room they take.

Such a delivery is kept (headers, size, digest, first bytes: `leads.ingestion`) so that an
admin can see a wrong app secret or a probe, but anybody can send one. Each is counted
per client address (`WEBHOOK_INVALID_RATE_PER_CLIENT`) and in total
(`WEBHOOK_INVALID_RATE_TOTAL`, so that a botnet's many addresses cannot fill the disk
either), in fixed windows kept in Django's cache: Redis when REDIS_URL is set, else the
file cache that a host's processes share, so the limits hold across worker processes.
Beyond either limit a delivery is refused (429 with Retry-After) with no database write,
and only counted: `refused_deliveries` is what the admin's list of deliveries shows.

Validly signed deliveries never pass through here: Meta is never throttled.

Counts can run a little over a limit: the file cache's increment is a read and a write,
so two processes racing may count once. Once the total is spent, no per-client key is
written for the rest of the window, so a botnet cannot churn the file cache (which culls
at 300 keys) and evict what else lives there.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

# The time windows are read from; tests replace it to stay inside one window.
clock: Callable[[], float] = time.time

PREFIX = "leadloop:webhook-invalid"
REFUSED_KEY = f"{PREFIX}:refused"
REFUSED_SINCE_KEY = f"{PREFIX}:refused-since"
REFUSED_LAST_KEY = f"{PREFIX}:refused-last"

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def parse_rate(text: str) -> Rate:
    """`N/second`, `N/minute`, `N/hour` or `N/day` (DRF's syntax; the first letter of the
    period is what counts). N may be 0: nothing is kept."""
    number, _, period = text.partition("/")
    seconds = _PERIODS.get(period.strip()[:1].lower())
    if not number.strip().isdigit() or seconds is None:
        raise ValueError(f"Not a rate (N/second, N/minute, N/hour or N/day): {text!r}")
    return Rate(int(number), seconds)


def _window(scope: str, rate: Rate, now: float) -> tuple[str, int]:
    """The key of the window `now` falls in, and the seconds until it ends."""
    window = int(now // rate.seconds)
    left = max(1, math.ceil((window + 1) * rate.seconds - now))
    return f"{PREFIX}:{scope}:{rate.seconds}:{window}", left


def _count(key: str, timeout: int | None) -> int:
    """Add one to the counter `key` (created with `timeout`); its new value."""
    if cache.add(key, 1, timeout):
        return 1
    try:
        count = cache.incr(key)
    except ValueError:  # expired between the two calls
        cache.set(key, 1, timeout)
        return 1
    # BaseCache.incr, which the file cache uses, writes the key back with the default
    # timeout (300 s): a longer window would forget its count after a quiet spell.
    cache.touch(key, timeout)
    return count


def admit_invalid_delivery(client: str) -> int | None:
    """Count a delivery whose signature failed, sent from `client`: None when it may be
    kept, else the seconds until that client may send one again (the delivery is then
    counted as refused)."""
    now = clock()
    total = parse_rate(settings.WEBHOOK_INVALID_RATE_TOTAL)
    per_client = parse_rate(settings.WEBHOOK_INVALID_RATE_PER_CLIENT)
    total_key, total_left = _window("total", total, now)
    if (cache.get(total_key) or 0) >= total.count:
        return _refused(total_left, now)
    # Hashed: an address is the sender's text when a proxy forwards it, and a cache key
    # must be short and plain.
    ident = hashlib.sha256(client.encode("utf-8", "replace")).hexdigest()[:32]
    client_key, client_left = _window(f"client:{ident}", per_client, now)
    if (seen := _count(client_key, client_left)) > per_client.count:
        if seen == per_client.count + 1:
            logger.warning(
                "Webhook: more than %s deliveries with an invalid signature from %s; the "
                "rest of this window's are refused unstored",
                per_client.count,
                client,
            )
        return _refused(client_left, now)
    if (seen := _count(total_key, total_left)) > total.count:
        if seen == total.count + 1:
            logger.warning(
                "Webhook: more than %s deliveries with an invalid signature in all; the "
                "rest of this window's are refused unstored",
                total.count,
            )
        return _refused(total_left, now)
    return None


def _refused(retry_after: int, now: float) -> int:
    _count(REFUSED_KEY, None)
    cache.add(REFUSED_SINCE_KEY, now, None)
    cache.set(REFUSED_LAST_KEY, now, None)
    return retry_after


@dataclass(frozen=True)
class Refused:
    count: int
    since: datetime
    last: datetime


def refused_deliveries() -> Refused | None:
    """How many deliveries were refused unstored by these limits, since when, and the last
    one's time; None when none was (or the cache was cleared)."""
    found = cache.get_many([REFUSED_KEY, REFUSED_SINCE_KEY, REFUSED_LAST_KEY])
    if not found.get(REFUSED_KEY):
        return None
    first = found.get(REFUSED_SINCE_KEY) or clock()
    last = found.get(REFUSED_LAST_KEY) or first
    return Refused(
        count=int(found[REFUSED_KEY]),
        since=datetime.fromtimestamp(first, UTC),
        last=datetime.fromtimestamp(last, UTC),
    )
