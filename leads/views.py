"""HTTP endpoints of the lead domain: the Meta webhook and the liveness check.

Views only parse and delegate; the rules live in `leads.ingestion`.
"""

from __future__ import annotations

import hmac
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from leads.clients import client_address
from leads.ingestion import Throttled, kept_headers, receive_delivery
from leads.models import WebhookDelivery

logger = logging.getLogger(__name__)


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


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
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(400, "Invalid Content-Length.")
        if declared > limit:
            return _error(413, f"Body larger than {limit} bytes.")
        try:
            body = request.body
        except RequestDataTooBig:
            return _error(413, f"Body larger than {limit} bytes.")
        if len(body) > limit:
            return _error(413, f"Body larger than {limit} bytes.")

        try:
            delivery = receive_delivery(
                body=body,
                headers=kept_headers(request.META),
                signature=signature,
                client=client_address(request),
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
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.warning("healthz: database unavailable")
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
