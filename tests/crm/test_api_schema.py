"""Schemathesis against the project's own OpenAPI schema: generated requests (a bounded
number per operation) never cause a 5xx, and every response matches the schema."""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm.models import PageAccess
from leads.models import Lead, Page
from leads.pipeline import enter_pipeline_many
from tests.conftest import load_fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def api_schema():
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from config.wsgi import application

    # Requests go straight into the WSGI app, inside the test's transaction; like Django's
    # test client, keep the app from closing the test's database connection after each.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def token() -> str:
    page = Page.objects.create(page_id="101", name="A")
    user = get_user_model().objects.create_user("ana", password="pw", is_staff=True)
    PageAccess.objects.create(user=user, page=page)
    graph = load_fixture("graph_lead.json")
    lead = Lead.objects.create(
        leadgen_id="900000000000001",
        page=page,
        field_data=graph["field_data"],
        custom_disclaimer_responses=graph["custom_disclaimer_responses"],
        fetch_status=Lead.FetchStatus.COMPLETE,
    )
    enter_pipeline_many([lead.pk])
    return Token.objects.create(user=user).key


@pytest.mark.hypothesis  # driven through Hypothesis inside: `make fuzz` runs it too
def test_api_conforms_to_its_schema(api_schema, token):
    # Driven through Hypothesis directly: schemathesis's pytest plugin does not support
    # this pytest version. Each operation gets its own bounded run, derandomized unless
    # the `fuzz` profile is loaded (tests/conftest.py).
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /api/v1/leads/",
        "GET /api/v1/leads/{id}/",
        "PATCH /api/v1/leads/{id}/",
        "GET /api/v1/leads/{lead_pk}/notes/",
        "POST /api/v1/leads/{lead_pk}/notes/",
        "GET /api/v1/stages/",
        "GET /api/v1/stages/{slug}/",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=checks)

        run()
