"""A delivery sent with `Transfer-Encoding: chunked` (no Content-Length): read from the
server's decoded input stream, under the same size limit. The stream here is what gunicorn
hands Django: the decoded body, ended (`wsgi.input_terminated`); tests/e2e send one
through a real gunicorn."""

from __future__ import annotations

import io
import json

import pytest
from django.conf import settings

from leads.models import Lead, WebhookDelivery
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body, queue_size

pytestmark = pytest.mark.django_db


def post_chunked(client, stream, *, signature: str, terminated: bool = True):
    environ = {
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "HTTP_X_HUB_SIGNATURE_256": signature,
        "wsgi.input": stream,
    }
    if terminated:
        environ["wsgi.input_terminated"] = True
    # No data: the test client then sets no CONTENT_LENGTH, as for a chunked request.
    return client.generic("POST", "/webhooks/meta/", b"", **environ)


def test_a_signed_chunked_delivery_is_read_and_accepted(client, django_capture_on_commit_callbacks):
    body = json.dumps(leadgen_body([[change_value(4711)]])).encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_chunked(
            client, io.BytesIO(body), signature=sign(body, settings.META_APP_SECRET)
        )
    assert response.status_code == 200, response.content
    assert response.json() == {"received": 1, "new_leads": 1}
    delivery = WebhookDelivery.objects.get()
    assert bytes(delivery.body) == body
    assert delivery.body_size == len(body)
    assert delivery.headers["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert "CONTENT_LENGTH" not in delivery.headers
    assert Lead.objects.get().first_delivery == delivery
    assert queue_size() == 1


def test_a_chunked_body_of_exactly_the_limit_is_accepted(client, settings):
    body = json.dumps(leadgen_body([[change_value(4712)]])).encode()
    settings.WEBHOOK_MAX_BODY_BYTES = len(body)
    response = post_chunked(
        client, io.BytesIO(body), signature=sign(body, settings.META_APP_SECRET)
    )
    assert response.status_code == 200
    assert Lead.objects.count() == 1


def test_a_chunked_body_over_the_limit_is_413_read_one_byte_past_it(client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 100_000
    body = b" " * 250_000
    stream = io.BytesIO(body)
    response = post_chunked(client, stream, signature=sign(body, settings.META_APP_SECRET))
    assert response.status_code == 413
    assert response.json() == {"error": "Body larger than 100000 bytes."}
    assert stream.tell() == 100_001
    assert WebhookDelivery.objects.count() == 0
    assert Lead.objects.count() == 0


def test_a_chunked_body_needs_a_server_that_ends_the_stream(client):
    body = json.dumps(leadgen_body([[change_value(4713)]])).encode()
    response = post_chunked(
        client,
        io.BytesIO(body),
        signature=sign(body, settings.META_APP_SECRET),
        terminated=False,
    )
    assert response.status_code == 411
    assert WebhookDelivery.objects.count() == 0


def test_a_broken_chunked_stream_is_400(client):
    class Broken(io.RawIOBase):
        def read(self, size=-1):
            raise OSError("invalid chunk size")

    response = post_chunked(client, Broken(), signature="sha256=" + "0" * 64)
    assert response.status_code == 400
    assert response.json() == {"error": "The chunked body could not be read."}
    assert WebhookDelivery.objects.count() == 0


def test_a_chunked_delivery_with_a_bad_signature_is_kept_in_part(client):
    body = b"{" + b" " * 10_000 + b"}"
    response = post_chunked(client, io.BytesIO(body), signature="sha256=" + "0" * 64)
    assert response.status_code == 403
    delivery = WebhookDelivery.objects.get()
    assert (delivery.body_size, delivery.body_truncated, len(delivery.body)) == (10_002, True, 4096)
