"""Page and form rows by Meta id: created on first sight (`ensure_pages`, `ensure_forms`),
and, for the webhook, their primary keys remembered per process (`KeyCache`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from django.db import transaction

from leads.models import Form, Page

KeyModel = type[Page] | type[Form]


class KeyCache:
    """{(model, Meta id): pk} of pages and forms this process has seen committed, so that a
    webhook from a known page and form is prepared without a query, before its write
    begins (docs/performance.md#w15).

    Sound because a row never gets another Meta id and keys are never reused. A row
    deleted in this process is forgotten at once (`forget`, from the post_delete receiver
    in `leads.apps`); one deleted by another process (only possible while it has no
    leads) is caught by the database: the lead's foreign key fails at COMMIT, the webhook
    answers 503 after `forget()` empties this cache, and Meta's retry looks the row up
    afresh. At most `limit` keys: past it the cache starts again empty.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._keys: dict[tuple[KeyModel, str], int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, model: KeyModel, meta_ids: Iterable[str]) -> dict[str, int]:
        """{Meta id: pk} of those of `meta_ids` this cache knows."""
        # `.get`, not a test then a read: another thread may empty the cache in between.
        found = {meta_id: self._keys.get((model, meta_id)) for meta_id in meta_ids}
        return {meta_id: pk for meta_id, pk in found.items() if pk is not None}

    def remember(self, model: KeyModel, pks: Mapping[str, int]) -> None:
        """Remember committed rows' keys (see `remember_after_commit`)."""
        with self._lock:
            if len(self._keys) + len(pks) > self.limit:
                self._keys.clear()
            self._keys.update({(model, meta_id): pk for meta_id, pk in pks.items()})

    def remember_after_commit(
        self,
        model: KeyModel,
        pks: Mapping[str, int],
        *,
        on_commit: Callable[[Callable[[], None]], None] = transaction.on_commit,
    ) -> None:
        """Remember these keys once the transaction that read or inserted them commits
        (never if it rolls back: an inserted row would not exist). `on_commit`: the
        transaction's own hook, for one Django's does not see
        (`core.db.writes.WriteTransaction.on_commit`)."""
        if pks:
            snapshot = dict(pks)
            on_commit(lambda: self.remember(model, snapshot))

    def forget(self, model: KeyModel | None = None, meta_ids: Iterable[str] = ()) -> None:
        """Forget these rows' keys; with no model, every key."""
        with self._lock:
            if model is None:
                self._keys.clear()
            for meta_id in meta_ids:
                self._keys.pop((model, meta_id), None)


# The webhook's, for this process.
KEYS = KeyCache()


def forget_deleted(sender: KeyModel, instance: Page | Form, **kwargs: Any) -> None:
    """post_delete receiver (connected in `leads.apps`): a deleted page or form is
    forgotten by this process's cache at once."""
    KEYS.forget(sender, [instance.page_id if isinstance(instance, Page) else instance.form_id])


def _ensure_rows(
    model: KeyModel, field: str, wanted: Mapping[str, dict[str, object]]
) -> dict[str, Any]:
    """Instances keyed by a Meta id, inserting the missing ones first with their `wanted`
    values. Safe under concurrency: the unique constraint absorbs a race and the rows are
    read back."""
    if not wanted:
        return {}
    rows = _instances(model, field, wanted.keys())
    missing = wanted.keys() - rows.keys()
    if missing:
        model.objects.bulk_create(
            [model(**{field: meta_id}, **wanted[meta_id]) for meta_id in missing],
            ignore_conflicts=True,
        )
        rows.update(_instances(model, field, missing))
    return rows


def _instances(model: Any, field: str, values: Collection[str]) -> dict[str, Any]:
    rows = model.objects.filter(**{f"{field}__in": values}).order_by()
    return {getattr(row, field): row for row in rows}


def ensure_pages(page_ids: Iterable[str]) -> dict[str, Page]:
    """Page rows for these ids, created on first sight."""
    return _ensure_rows(Page, "page_id", {pid: {} for pid in page_ids})


def ensure_forms(form_pages: Mapping[str, Page | None]) -> dict[str, Form]:
    """Form rows for these ids (each with its page), created on first sight."""
    wanted: dict[str, dict[str, object]] = {
        fid: {"page": page} for fid, page in form_pages.items() if fid
    }
    return _ensure_rows(Form, "form_id", wanted)
