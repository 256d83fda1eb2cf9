"""The bytes of both CSV exports, pinned for a fixed set of leads: the admin's (the "Export
CSV" action) and the sales UI's (`/leads/export.csv`, a column per question). Both run
through one streaming writer; each keeps its own columns, and neither output may change by
a byte when that writer does."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from crm.models import Assignment
from leads.models import Form, Lead, Page
from leads.pipeline import enter_pipeline_many

pytestmark = pytest.mark.django_db

UTC = dt.UTC


@pytest.fixture
def boss(settings) -> Client:
    # Not UTC: the sales UI writes local times, the admin the stored (UTC) ones.
    settings.TIME_ZONE = "Europe/Madrid"
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("boss", password="pw"))
    return client


@pytest.fixture
def leads() -> dict[str, Lead]:
    page = Page.objects.create(page_id="101", name="Acme Spain")
    other_page = Page.objects.create(page_id="202", name="")
    winter = Form.objects.create(
        form_id="1001",
        page=page,
        name="Winter form",
        questions=[
            {"key": "email", "label": "Your email", "type": "EMAIL"},
            {"key": "city", "label": "City", "type": "CITY"},
            {"key": "=cmd", "label": "Trap", "type": "CUSTOM"},
            "not a question",
        ],
    )
    Form.objects.create(
        form_id="2002",
        page=other_page,
        name="Alpha form",
        questions=[
            {"key": "budget", "label": "Budget", "type": "CUSTOM"},
            {"key": "city", "label": "City", "type": "CITY"},
        ],
    )
    rich = Lead.objects.create(
        leadgen_id="1234567890123456",
        page=page,
        form=winter,
        created_time=dt.datetime(2025, 1, 1, 23, 30, tzinfo=UTC),
        ad_id="120210000000000001",
        ad_name="Winter promo - video",
        adset_id="120210000000000002",
        adset_name="Madrid 25-45",
        campaign_id="120210000000000003",
        campaign_name="Winter leads 2025",
        is_organic=False,
        platform="ig",
        partner_name="Partner",
        retailer_item_id="item-1",
        field_data=[
            {"name": "email", "values": ["Jurgen.Muller@Example.com"]},
            {"name": "city", "values": ["Madrid", "Toledo"]},
            {"name": "budget", "values": ["5,000 €"]},
            {"name": "selected_dealer", "values": ["99213450"]},
            {"name": "comment", "values": ['He said "hi"\nthen left']},
        ],
        custom_disclaimer_responses=[
            {"checkbox_key": "marketing_optin", "is_checked": "1"},
            {"checkbox_key": "partner_sharing", "is_checked": ""},
        ],
        graph_data={"post_submission_check_result": {"status": "PASSED"}},
        email="jurgen@example.com",
        phone="+34 612 345 678",
        full_name="Jürgen Müller",
        fetch_status=Lead.FetchStatus.COMPLETE,
    )
    hostile = Lead.objects.create(
        leadgen_id="2222",
        page=other_page,
        form=None,
        created_time=dt.datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC),
        is_organic=True,
        platform="fb",
        field_data=[
            {"name": "=cmd", "values": ["@SUM(A1)"]},
            {"name": "note", "values": "one value, not a list"},
            {"values": ["no name"]},
            "not an answer",
        ],
        custom_disclaimer_responses=[{"is_checked": True}, "not a disclaimer"],
        email="\uff1d1+1",
        phone="-(0)30 1234",
        full_name='=HYPERLINK("http://x.test","open")',
        source=Lead.Source.CSV,
        fetch_status=Lead.FetchStatus.COMPLETE,
    )
    bare = Lead.objects.create(
        leadgen_id="3333",
        created_time=dt.datetime(2024, 12, 31, 23, 0, tzinfo=UTC),
        field_data=[],
        custom_disclaimer_responses=[],
    )
    enter_pipeline_many([rich.pk, hostile.pk])
    owner = get_user_model().objects.create_user("ana", password="pw", is_staff=True)
    Assignment.objects.create(lead=rich, owner=owner)
    return {"rich": rich, "hostile": hostile, "bare": bare}


def body(response: Any) -> bytes:
    assert response.status_code == 200
    assert response.streaming
    return b"".join(response.streaming_content)


def test_the_admin_export_is_byte_for_byte_what_it_was(boss, leads):
    response = boss.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "export_csv", ACTION_CHECKBOX_NAME: [lead.pk for lead in leads.values()]},
    )
    rich, hostile, bare = leads["rich"].pk, leads["hostile"].pk, leads["bare"].pk
    expected = (
        "\ufeffid,leadgen_id,created_time,full_name,email,phone,stage,page,form,form_name,"
        "ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,platform,is_organic,"
        "source,fetch_status,answers,disclaimers\r\n"
        f"{hostile},2222,2025-06-01T12:00:00.123456+00:00,"
        '"\'=HYPERLINK(""http://x.test"",""open"")",\'\uff1d1+1,-(0)30 1234,new,202,,,'
        ",,,,,,fb,true,csv,complete,"
        '"\'=cmd: @SUM(A1); note: one value, not a list; : no name",?=checked\r\n'
        f"{rich},1234567890123456,2025-01-01T23:30:00+00:00,Jürgen Müller,"
        "jurgen@example.com,+34 612 345 678,new,101,1001,Winter form,120210000000000001,"
        "Winter promo - video,120210000000000002,Madrid 25-45,120210000000000003,"
        "Winter leads 2025,ig,false,webhook,complete,"
        '"email: Jurgen.Muller@Example.com; city: Madrid, Toledo; budget: 5,000 €; '
        'selected_dealer: 99213450; comment: He said ""hi""\nthen left",'
        "marketing_optin=checked; partner_sharing=unchecked\r\n"
        f"{bare},3333,2024-12-31T23:00:00+00:00,,,,,,,,,,,,,,,,webhook,pending,,\r\n"
    )
    assert body(response) == expected.encode()


def test_the_sales_ui_export_is_byte_for_byte_what_it_was(boss, leads):
    response = boss.get("/leads/export.csv")
    rich, hostile, bare = leads["rich"].pk, leads["hostile"].pk, leads["bare"].pk
    expected = (
        "\ufeffid,leadgen_id,created_time,full_name,email,phone,stage,owner,page,page_name,"
        "form,form_name,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,"
        "platform,is_organic,fetch_status,budget,city,answer_email,'=cmd,other_answers,"
        "disclaimers\r\n"
        f"{hostile},2222,2025-06-01T14:00:00.123456+02:00,"
        '"\'=HYPERLINK(""http://x.test"",""open"")",\'\uff1d1+1,-(0)30 1234,new,,202,,,,'
        ',,,,,,fb,true,complete,,,,\'@SUM(A1),"note: one value, not a list",?=checked\r\n'
        f"{rich},1234567890123456,2025-01-02T00:30:00+01:00,Jürgen Müller,"
        "jurgen@example.com,+34 612 345 678,new,ana,101,Acme Spain,1001,Winter form,"
        "120210000000000001,Winter promo - video,120210000000000002,Madrid 25-45,"
        '120210000000000003,Winter leads 2025,ig,false,complete,"5,000 €",'
        '"Madrid, Toledo",Jurgen.Muller@Example.com,,"selected_dealer: 99213450; '
        'comment: He said ""hi""\nthen left",marketing_optin=checked; '
        "partner_sharing=unchecked\r\n"
        f"{bare},3333,2025-01-01T00:00:00+01:00,,,,,,,,,,,,,,,,,,pending,,,,,,\r\n"
    )
    assert body(response) == expected.encode()


def test_a_lead_without_a_time_exports_an_empty_cell_in_both(boss, leads):
    Lead.objects.filter(pk=leads["bare"].pk).update(created_time=None)
    admin = boss.post(
        reverse("admin:leads_lead_changelist"),
        {"action": "export_csv", ACTION_CHECKBOX_NAME: [leads["bare"].pk]},
    )
    assert body(admin).decode().splitlines()[1] == (
        f"{leads['bare'].pk},3333,,,,,,,,,,,,,,,,,webhook,pending,,"
    )
    sales = boss.get("/leads/export.csv", {"q": "3333"})
    assert body(sales).decode().splitlines()[1] == (
        f"{leads['bare'].pk},3333,,,,,,,,,,,,,,,,,,,pending,,,,,,"
    )
