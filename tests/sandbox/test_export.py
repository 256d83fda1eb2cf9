"""The lead export (`/ads/lead_gen/export_csv/`)."""

from __future__ import annotations

import csv
import io

import requests

from sandbox import MetaSandbox
from tests.sandbox.support import AD, FORM, PAGE_TOKEN, T0, add_leads, error_of


def export(sandbox: MetaSandbox, **params) -> requests.Response:
    params = {"id": FORM, "type": "form", "access_token": PAGE_TOKEN, **params}
    return requests.get(f"{sandbox.url}/ads/lead_gen/export_csv/", params=params, timeout=5)


def test_export_is_utf16_tsv_with_meta_columns_and_prefixes(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 2)
    sandbox.add_lead(
        {
            "id": "3",
            "form_id": FORM,
            "created_time": T0 + 3600,
            "is_organic": True,
            "platform": "ig",
            "field_data": {"full_name": "Jürgen Groß", "email": "j@example.com"},
        }
    )

    response = export(sandbox)

    assert response.status_code == 200
    assert response.content.startswith(b"\xff\xfe")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-16")), delimiter="\t"))
    assert rows[0] == [
        "id",
        "created_time",
        "ad_id",
        "ad_name",
        "adset_id",
        "adset_name",
        "campaign_id",
        "campaign_name",
        "form_id",
        "form_name",
        "is_organic",
        "platform",
        "full_name",
        "email",
        "phone_number",
        "lead_status",
    ]
    assert rows[1] == [
        "l:3",
        "2025-01-01T01:00:00+00:00",
        "",
        "",
        "",
        "",
        "",
        "",
        f"f:{FORM}",
        "Kitchen quote",
        "1",
        "ig",
        "Jürgen Groß",
        "j@example.com",
        "",
        "",
    ]
    assert rows[2] == [
        "l:1000000000000001",
        "2025-01-01T00:01:00+00:00",
        f"ag:{AD}",
        "Spring ad",
        "as:23850000000000002",
        "Adset",
        "c:23850000000000003",
        "Campaign",
        f"f:{FORM}",
        "Kitchen quote",
        "0",
        "fb",
        "Lead 1",
        "lead1@example.com",
        "p:+4915112345678",
        "",
    ]
    assert len(rows) == 4


def test_export_clamps_dates_to_form_creation_and_now(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 3)
    sandbox.add_lead({"id": "42", "form_id": FORM, "created_time": T0 - 2 * 86400})  # pre-form

    def ids(**params) -> list[str]:
        text = export(sandbox, **params).content.decode("utf-16")
        return [row[0] for row in csv.reader(io.StringIO(text), delimiter="\t")][1:]

    assert ids(from_date=0, to_date=4_000_000_000) == [
        "l:1000000000000002",
        "l:1000000000000001",
        "l:1000000000000000",
    ]
    assert ids(from_date=T0 + 30, to_date=T0 + 90) == ["l:1000000000000001"]


def test_export_variant_utf8_commas_and_offset(sandbox: MetaSandbox) -> None:
    add_leads(sandbox, 1)
    response = requests.post(
        f"{sandbox.url}/__sandbox__/export_options",
        json={
            "encoding": "utf-8",
            "delimiter": ",",
            "organic_false": "false",
            "utc_offset_minutes": 120,
        },
        timeout=5,
    )
    assert response.status_code == 200

    rows = list(csv.reader(io.StringIO(export(sandbox).content.decode("utf-8"))))

    assert rows[1][1] == "2025-01-01T02:00:00+02:00"
    assert rows[1][10] == "false"


def test_export_needs_a_token_for_the_forms_page(sandbox: MetaSandbox) -> None:
    assert error_of(export(sandbox, access_token="other-page-token"))["code"] == 100
    assert error_of(export(sandbox, access_token="bogus"))["code"] == 190
