"""HTTP endpoints of the lead domain: the Meta webhook and the liveness check.

Views only parse and delegate; the rules live in `leads.ingestion`.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from core.clientip import address_key
from core.db.queries import ping
from leads.ingestion import Throttled, kept_headers, receive_delivery
from leads.models import WebhookDelivery

logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class _Unreadable(Exception):
    """The body cannot be taken: answered with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# Read from a chunked body at a time.
READ_BYTES = 64 * 1024


def _too_large(limit: int) -> _Unreadable:
    return _Unreadable(413, f"Body larger than {limit} bytes.")


def _read_to_end(stream: Any, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        try:
            part = stream.read(min(READ_BYTES, limit + 1 - size))
        except Exception:  # the server's own errors, for a malformed chunk
            raise _Unreadable(400, "The chunked body could not be read.") from None
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
    raise _too_large(limit)


def _raw_body(request: Request, limit: int) -> bytes:
    """The body's bytes, at most `limit` of them (else _Unreadable, 413).

    Under WSGI a chunked body has no Content-Length, so Django reads it as empty.
    gunicorn has decoded the chunks already and ends `wsgi.input` at the body's end
    (`wsgi.input_terminated`), so the body is read from there, never more than one byte
    past the limit. A server that does not end the stream (Django's runserver) would leave
    that read waiting for the next request: there a chunked body is refused (411). Under
    ASGI, Django's handler has read the whole body already and `request.body` has it.
    """
    meta = request.META
    if (
        not meta.get("CONTENT_LENGTH")
        and "wsgi.input" in meta
        and "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        if not meta.get("wsgi.input_terminated"):
            raise _Unreadable(
                411, "A chunked body needs a server that ends it; send Content-Length."
            )
        return _read_to_end(meta["wsgi.input"], limit)
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise _Unreadable(400, "Invalid Content-Length.") from None
    if declared > limit:
        raise _too_large(limit)
    try:
        body = request.body
    except RequestDataTooBig:
        raise _too_large(limit) from None
    if len(body) > limit:
        raise _too_large(limit)
    return body


class _NoNegotiation(BaseContentNegotiation):
    """Meta's answers are JSON (or the handshake's plain text) whatever it accepts; this
    skips parsing `Accept` on every delivery."""

    def select_parser(self, request, parsers):  # never called: the body is read raw
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetaWebhookView(APIView):
    """`/webhooks/meta/`: Meta's handshake (GET) and leadgen deliveries (POST).

    Authentication is the HMAC signature, so DRF's authentication, permissions, throttling
    and parsers are all off: the raw body must reach the signature check untouched, and
    Meta must never be throttled (it would give up on the delivery after 36 hours). Only
    deliveries whose signature fails are rate-limited, per client address and in total
    (`leads.throttle`): 429 with Retry-After, and nothing stored.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    parser_classes: list = []  # the raw body is read, never request.data
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _NoNegotiation
    # Meta's endpoint, not part of the documented REST API.
    schema = None

    def perform_authentication(self, request: Request) -> None:
        """Nothing to authenticate before the view (the signature is checked in `post`):
        DRF's documented way to skip its eager lookup of `request.user`."""

    def get(self, request: Request) -> HttpResponse:
        params = request.query_params
        expected = settings.META_VERIFY_TOKEN
        given = params.get("hub.verify_token", "")
        if (
            params.get("hub.mode") == "subscribe"
            and expected
            and hmac.compare_digest(given.encode(), expected.encode())
        ):
            response = HttpResponse(params.get("hub.challenge", ""), content_type="text/plain")
            response["X-Content-Type-Options"] = "nosniff"
            return response
        return HttpResponse("Forbidden", status=403, content_type="text/plain")

    def post(self, request: Request) -> HttpResponse:
        if not settings.META_APP_SECRET:
            # Without a secret nothing can be verified, and unsigned data is never processed.
            return _error(403, "Webhook is not configured: META_APP_SECRET is not set.")
        signature = request.META.get("HTTP_X_HUB_SIGNATURE_256")
        if not signature:
            return _error(403, "Missing X-Hub-Signature-256.")
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        try:
            body = _raw_body(request, limit)
        except _Unreadable as exc:
            return _error(exc.status, str(exc))

        try:
            delivery = receive_delivery(
                body=body,
                headers=kept_headers(request.META),
                signature=signature,
                # Unknown addresses (a proxy that wrote junk) share one count.
                client=address_key(request) or "unknown",
            )
        except Throttled as exc:
            response = _error(429, "Too many deliveries with an invalid signature; not stored.")
            response["Retry-After"] = str(exc.retry_after)
            return response
        except DatabaseError:
            # Nothing was committed (one transaction); a 503 makes Meta deliver it again.
            logger.exception("Webhook delivery could not be stored")
            response = _error(503, "Temporarily unable to store the delivery; retry later.")
            response["Retry-After"] = "60"
            return response
        match delivery.status:
            case WebhookDelivery.Status.INVALID_SIGNATURE:
                return _error(403, "Invalid signature.")
            case WebhookDelivery.Status.MALFORMED:
                return _error(400, delivery.error)
            case WebhookDelivery.Status.FAILED:
                # Stored with its error; a 5xx makes Meta deliver it again later.
                return _error(500, "Delivery stored but could not be processed; retry later.")
        # Two integers: formatted directly, without a JSON encoder per delivery.
        return HttpResponse(
            f'{{"received": {delivery.changes_count:d}, "new_leads": {delivery.leads_created:d}}}',
            content_type="application/json",
        )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness with a database round trip, for load balancers and `make run`."""
    try:
        ping()
    except DatabaseError:
        logger.warning("healthz: database unavailable")
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
