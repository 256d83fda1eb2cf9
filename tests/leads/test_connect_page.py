"""`manage.py connect_page`: token checked, stored encrypted, forms loaded."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from leads import crypto
from leads.models import Form, Page
from tests.conftest import GRAPH

pytestmark = pytest.mark.django_db

TOKEN = "EAAGm0PX4ZCpsBAPageTokenForTests"

QUESTIONS = [
    {"key": "full_name", "label": "Full name", "type": "FULL_NAME", "id": "1"},
    {"key": "email", "label": "Email", "type": "EMAIL", "id": "2"},
    {
        "key": "selected_dealer",
        "label": "Choose a store",
        "type": "STORE_LOOKUP",
        "id": "3",
    },
    {
        "key": "budget",
        "label": "What is your budget?",
        "type": "CUSTOM",
        "options": [{"key": "low", "value": "< 1000"}, {"key": "high", "value": ">= 1000"}],
        "id": "4",
    },
]


def register_page(mocked_graph, *, forms=None):
    mocked_graph.get(f"{GRAPH}/1111", json={"id": "1111", "name": "Acme Spain"})
    mocked_graph.get(
        f"{GRAPH}/1111/leadgen_forms",
        json={
            "data": forms
            if forms is not None
            else [
                {
                    "id": "2222",
                    "name": "Winter form",
                    "status": "ACTIVE",
                    "locale": "es_ES",
                    "created_time": "2024-12-01T10:00:00+0000",
                    "questions": QUESTIONS,
                },
                {"id": "2223", "name": "Old form", "status": "ARCHIVED", "questions": []},
            ]
        },
    )


def test_connect_page_checks_stores_encrypted_and_loads_forms(mocked_graph):
    register_page(mocked_graph)
    out = io.StringIO()
    call_command("connect_page", "1111", "--token", TOKEN, stdout=out)

    page = Page.objects.get(page_id="1111")
    assert page.name == "Acme Spain"
    assert page.token_status == Page.TokenStatus.VALID
    assert page.token == TOKEN
    assert TOKEN not in page.token_encrypted
    with connection.cursor() as cursor:
        cursor.execute("SELECT token_encrypted FROM leads_page")
        (raw,) = cursor.fetchone()
    assert TOKEN not in raw
    assert crypto.decrypt(raw) == TOKEN

    form = Form.objects.get(form_id="2222")
    assert (form.page, form.name, form.status, form.locale) == (
        page,
        "Winter form",
        "ACTIVE",
        "es_ES",
    )
    assert form.questions == QUESTIONS
    assert Form.objects.get(form_id="2223").status == "ARCHIVED"
    assert mocked_graph.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"

    text = out.getvalue()
    assert "Connected page Acme Spain (1111)" in text
    assert "Forms: 2 new, 0 updated (2 in all)." in text
    assert TOKEN not in text


def test_connecting_again_updates_forms_and_replaces_the_token(mocked_graph):
    register_page(mocked_graph)
    call_command("connect_page", "1111", "--token", TOKEN, stdout=io.StringIO())
    register_page(
        mocked_graph,
        forms=[{"id": "2222", "name": "Winter form v2", "status": "ACTIVE", "questions": []}],
    )
    out = io.StringIO()
    call_command("connect_page", "1111", "--token", TOKEN + "2", stdout=out)
    assert "Forms: 0 new, 1 updated (2 in all)." in out.getvalue()
    assert Form.objects.get(form_id="2222").name == "Winter form v2"
    assert Page.objects.get().token == TOKEN + "2"


def test_rejected_token_stores_nothing_and_is_not_echoed(mocked_graph):
    mocked_graph.get(
        f"{GRAPH}/1111",
        status=400,
        json={
            "error": {
                "message": "Invalid OAuth access token.",
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": "x",
            }
        },
    )
    with pytest.raises(CommandError) as excinfo:
        call_command("connect_page", "1111", "--token", TOKEN, stdout=io.StringIO())
    assert "Meta rejected the token" in str(excinfo.value)
    assert TOKEN not in str(excinfo.value)
    assert Page.objects.count() == 0


@pytest.mark.parametrize("page_id", ["abc", "12.5", ""])
def test_bad_page_id_is_refused_without_calling_meta(mocked_graph, page_id):
    with pytest.raises(CommandError, match="Not a page id"):
        call_command("connect_page", page_id, "--token", TOKEN, stdout=io.StringIO())
    assert len(mocked_graph.calls) == 0


def test_subscribe_option_installs_the_app_on_the_page(mocked_graph):
    register_page(mocked_graph)
    mocked_graph.post(f"{GRAPH}/1111/subscribed_apps", json={"success": True})
    out = io.StringIO()
    call_command("connect_page", "1111", "--token", TOKEN, "--subscribe", stdout=out)
    assert "Subscribed the app" in out.getvalue()
    assert "subscribed_fields=leadgen" in (
        mocked_graph.calls[1].request.body or mocked_graph.calls[1].request.url
    )


def test_tokens_survive_key_rotation_and_fail_clearly_with_a_wrong_key(settings):
    settings.TOKEN_ENCRYPTION_KEY = "old-key"
    sealed = crypto.encrypt(TOKEN)
    settings.TOKEN_ENCRYPTION_KEY = "new-key,old-key"
    assert crypto.decrypt(sealed) == TOKEN
    settings.TOKEN_ENCRYPTION_KEY = "other-key"
    with pytest.raises(crypto.TokenDecryptionError) as excinfo:
        crypto.decrypt(sealed)
    assert TOKEN not in str(excinfo.value)
