"""Downloading a form's lead export from Meta (`/ads/lead_gen/export_csv/`) with the
form's page token, its dates clamped as Meta clamps them, its size capped."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from leads import fetching
from leads.csv_import.reading import MAX_BYTES
from leads.graph import TOKEN_CODES, redirect_refusal, send
from leads.models import Form
from leads.redaction import redact

EXPORT_PATH = "/ads/lead_gen/export_csv/"


class DownloadError(Exception):
    """The export could not be downloaded from Meta."""


@dataclass(frozen=True)
class Download:
    data: bytes
    from_date: int | None
    to_date: int


def clamp_dates(
    *,
    from_date: int | None,
    to_date: int | None,
    created: dt.datetime | None,
    now: int,
) -> tuple[int | None, int]:
    """Meta's own rule (META.md): a `from_date` before the form existed means its
    creation, a `to_date` after now means now. Applied before asking, so the request
    (and the report) says what the file will really cover."""
    created_unix = int(created.timestamp()) if created is not None else None
    if created_unix is not None and (from_date is None or from_date < created_unix):
        from_date = created_unix
    to = now if to_date is None else min(to_date, now)
    if from_date is not None and from_date > to:
        raise DownloadError(
            f"--from-date ({from_date}) is after --to-date ({to}) once clamped to the form's "
            "creation and to now."
        )
    return from_date, to


def _now_unix() -> int:
    return int(time.time())


def download_export(
    form_id: str,
    *,
    from_date: int | None = None,
    to_date: int | None = None,
    session: requests.Session | None = None,
    now: int | None = None,
) -> Download:
    """GET `{META_WWW_URL}/ads/lead_gen/export_csv/?id=&type=form&from_date=&to_date=`
    with the form's page token (else META_ACCESS_TOKEN) in the Authorization header."""
    form = Form.objects.select_related("page").filter(form_id=form_id).first()
    page = form.page if form is not None else None
    token = fetching.usable_token(page)
    if not token:
        raise DownloadError(
            f"No usable token for form {form_id}: run connect_page for its page or set "
            "META_ACCESS_TOKEN."
        )
    start, end = clamp_dates(
        from_date=from_date,
        to_date=to_date,
        created=form.meta_created_time if form is not None else None,
        now=_now_unix() if now is None else now,
    )
    params: dict[str, str | int] = {"id": form_id, "type": "form", "to_date": end}
    if start is not None:
        params["from_date"] = start
    url = settings.META_WWW_URL.rstrip("/") + EXPORT_PATH
    try:
        response = send(
            session,
            "GET",
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=settings.META_HTTP_TIMEOUT,
            stream=True,
        )
        refusal = redirect_refusal(response)
        if refusal:
            # Not read: a login page or another host's file is not the export.
            response.close()
            raise DownloadError(f"Meta answered the export download with {refusal}.")
        data = _read_capped(response)
    except requests.RequestException as exc:
        raise DownloadError(f"Could not download the export: {type(exc).__name__}") from None
    if response.status_code >= 400:
        raise DownloadError(_download_error(response.status_code, data, page=page, token=token))
    return Download(data=data, from_date=start, to_date=end)


def _read_capped(response: requests.Response) -> bytes:
    buffer = bytearray()
    for block in response.iter_content(chunk_size=1024 * 1024):
        buffer.extend(block)
        if len(buffer) > MAX_BYTES:
            response.close()
            raise DownloadError(f"The export is larger than {MAX_BYTES // (1024 * 1024)} MB.")
    return bytes(buffer)


def _download_error(status: int, data: bytes, *, page: Any, token: str) -> str:
    import json

    try:
        error = json.loads(data).get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    message = redact(str(error.get("message") or f"HTTP {status}"), token)
    code = error.get("code")
    if code in TOKEN_CODES:
        if page is not None:
            fetching.reject_page_token(page, reason=message, token=token)
        return f"Meta rejected the token (#{code}): {message}"
    return f"Meta refused the export (HTTP {status}{f', #{code}' if code else ''}): {message}"
