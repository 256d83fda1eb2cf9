"""A populated Leadloop for the admin tests: a connected page with a recognisable token, a
form with questions, leads with hostile answers, stage changes, notes, conversion events
(sent, failed, pending), webhook deliveries (signed and not) and django-q2 task rows."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task
from rest_framework.authtoken.models import Token as ApiToken

from capi.models import ConversionEvent, SendAttempt, SenderState
from crm.models import Assignment, Note, PageAccess
from leads.ingestion import kept_headers, receive_delivery
from leads.models import Form, Lead, Page, WebhookDelivery
from leads.pipeline import enter_pipeline
from leads.webhooks import sign
from tests.conftest import change_value, leadgen_body

PAGE_TOKEN = "EAAPageTokenLEADLOOPSECRET0123456789"
APP_TOKEN = "EAAAppTokenLEADLOOPSECRET9876543210"
HOSTILE = "<script>alert('x')</script>'; DROP TABLE leads_lead; --"
QUESTIONS = [
    {"key": "full_name", "label": "Full name", "type": "FULL_NAME"},
    {"key": "email", "label": "Email", "type": "EMAIL"},
    {
        "key": "favourite",
        "label": "<b>Favourite</b> colour",
        "type": "CUSTOM",
        "options": [{"key": "red", "value": "Red"}],
    },
]


@dataclass
class World:
    page: Page
    form: Form
    lead: Lead
    waiting: Lead
    delivery: WebhookDelivery
    unsigned: WebhookDelivery
    events: dict[str, ConversionEvent]
    user: Any


def signed_delivery(body: dict, *, secret: str) -> WebhookDelivery:
    raw = json.dumps(body).encode()
    signature = sign(raw, secret)
    meta = {"CONTENT_TYPE": "application/json", "HTTP_X_HUB_SIGNATURE_256": signature}
    return receive_delivery(body=raw, headers=kept_headers(meta), signature=signature)


def make_leads(n: int, *, page: Page, form: Form, start: int = 0) -> list[Lead]:
    now = timezone.now()
    return Lead.objects.bulk_create(
        [
            Lead(
                leadgen_id=str(9_000_000_000_000_000 + start + i),
                page=page,
                form=form,
                created_time=now - dt.timedelta(minutes=i),
                full_name=f"Lead {i}",
                email=f"lead{i}@example.com",
                field_data=[{"name": "email", "values": [f"lead{i}@example.com"]}],
                fetch_status=Lead.FetchStatus.COMPLETE,
                platform="fb",
            )
            for i in range(n)
        ]
    )


@pytest.fixture
def admin_settings(settings):
    settings.META_ACCESS_TOKEN = APP_TOKEN
    settings.META_DATASET_ID = "1261294122522559"
    settings.CAPI_BATCH_WINDOW = 0.0
    return settings


@pytest.fixture
def world(db, admin_settings, admin_user) -> World:
    page = Page.objects.create(page_id="1111", name="Acme <i>Page</i>")
    page.token = PAGE_TOKEN
    page.token_status = Page.TokenStatus.VALID
    page.token_checked_at = timezone.now()
    page.save()
    form = Form.objects.create(form_id="2222", page=page, name="Winter form", questions=QUESTIONS)
    lead = Lead.objects.create(
        leadgen_id="1234567890123456",
        page=page,
        form=form,
        created_time=timezone.now() - dt.timedelta(minutes=5),
        full_name="Ana <b>García</b>",
        email="ana@example.com",
        field_data=[
            {"name": "full_name", "values": ["Ana <b>García</b>"]},
            {"name": "email", "values": ["ana@example.com"]},
            {"name": "favourite", "values": [HOSTILE]},
            {"name": "3456789012345678", "values": ["custom id answer"]},
        ],
        custom_disclaimer_responses=[
            {"checkbox_key": "marketing_optin", "is_checked": "1"},
            {"checkbox_key": "partner_<sharing>", "is_checked": ""},
        ],
        graph_data={"id": "1234567890123456", "note": HOSTILE},
        fetch_status=Lead.FetchStatus.COMPLETE,
        platform="ig",
        is_organic=False,
    )
    enter_pipeline(lead)
    waiting = Lead.objects.create(leadgen_id="5555", page=page, form=form)
    user = get_user_model().objects.create_user("sales", password="x", is_staff=True)
    PageAccess.objects.create(user=user, page=page, granted_by=admin_user)
    Assignment.objects.create(lead=lead, owner=user, assigned_by=admin_user)
    Note.objects.create(lead=lead, author=user, body="Called <b>twice</b>")

    # Three events: one sent, one failed (Meta refused it), one pending.
    sent, failed = make_leads(2, page=page, form=form, start=100)
    enter_pipeline(sent)
    enter_pipeline(failed)
    attempt = SendAttempt.objects.create(
        dataset_id="1261294122522559",
        event_count=1,
        outcome=SendAttempt.Outcome.ACCEPTED,
        http_status=200,
        events_received=1,
        fbtrace_id="AbCdEf",
    )
    ConversionEvent.objects.filter(lead=sent).update(
        status=ConversionEvent.Status.SENT, sent_at=timezone.now(), sent_in=attempt, attempts=1
    )
    ConversionEvent.objects.filter(lead=failed).update(
        status=ConversionEvent.Status.FAILED,
        attempts=1,
        failures=1,
        last_error="(#100) Invalid parameter",
    )
    SenderState.current()

    from django.conf import settings

    delivery = signed_delivery(
        leadgen_body([[change_value(7777, page_id=1111, form_id=2222)]]),
        secret=settings.META_APP_SECRET,
    )
    unsigned = receive_delivery(
        body=json.dumps(leadgen_body([[change_value(8888)]])).encode(),
        headers={"HTTP_X_HUB_SIGNATURE_256": "sha256=00"},
        signature="sha256=00",
    )
    # django-q2's rows: a schedule (leads' own are created on migrate), a success, a failure
    # and a queued task.
    Schedule.objects.get_or_create(name="admin test", defaults={"func": "math.floor"})
    for ok in (True, False):
        Task.objects.create(
            id=f"task{int(ok)}",
            name=f"task-{ok}",
            func="leads.tasks.fetch_leads",
            args=([1],),
            started=timezone.now(),
            stopped=timezone.now(),
            success=ok,
            result="boom" if not ok else None,
        )
    OrmQ.objects.create(key="leadloop-test", payload="x", lock=None)
    Group.objects.create(name="Sales")
    ApiToken.objects.create(user=user)
    # django-axes' rows, from a real failed login (an attempt) and a real login (a log).
    Client(REMOTE_ADDR="203.0.113.9").post("/login/", {"username": "sales", "password": "no"})
    Client(REMOTE_ADDR="203.0.113.9").post("/login/", {"username": "sales", "password": "x"})
    return World(
        page=page,
        form=form,
        lead=lead,
        waiting=waiting,
        delivery=delivery,
        unsigned=unsigned,
        events={
            "sent": ConversionEvent.objects.get(lead=sent),
            "failed": ConversionEvent.objects.get(lead=failed),
            "pending": ConversionEvent.objects.get(lead=lead),
        },
        user=user,
    )
