"""Hostile input in the sales workspace, the API and the admin: out-of-range numbers,
SQL, NUL, huge and non-ASCII values in every query parameter, form field and id that a
person can type gets a page, a 4xx or a refusal in the form, never a 5xx."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

VALUES = [
    "99999999999999999999999",  # beyond 64 bits: overflows an SQL integer
    "-1",
    "'; DROP TABLE leads_lead; --",
    "\x00",
    "1e5",
    "",
    "%_",
    "a" * 10_000,
    "١٢",  # non-ASCII digits
    "<script>alert(1)</script>",
]
IDS = ["99999999999999999999999", "9223372036854775808", "0"]


def requests_with(value: str, lead_pk: int) -> list[tuple[str, str, dict[str, str]]]:
    filters = {"q": value, "stage": value, "owner": value, "page": value, "form": value}
    return [
        ("post", f"/leads/{lead_pk}/move/", {"stage": value}),
        ("post", f"/leads/{lead_pk}/owner/", {"owner": value}),
        ("post", f"/leads/{lead_pk}/notes/", {"text": value}),
        ("get", "/board/", {**filters, "source": value, "created_after": value}),
        ("get", "/board/new/more/", {"offset": value, "q": value}),
        ("get", "/leads/", {**filters, "p": value, "sort": value, "created_before": value}),
        ("get", "/leads/export.csv", filters),
        ("get", "/api/v1/leads/", {"search": value, "cursor": value, "stage": value,
                                   "page": value, "ordering": value, "created_after": value}),
        ("get", "/admin/leads/lead/", {"q": value, "p": value, "o": value}),
        ("get", "/admin/capi/conversionevent/", {"q": value, "status__exact": value}),
    ]  # fmt: skip


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_hostile_values_in_any_parameter_never_give_a_5xx(cast, login, value):
    client = login(cast["boss"])
    client.raise_request_exception = False
    answers = [
        (url, getattr(client, method)(url, data).status_code)
        for method, url, data in requests_with(value, cast["a1"].pk)
    ]
    assert [(url, status) for url, status in answers if status >= 500] == []


def test_ids_out_of_range_are_not_found(cast, login):
    client = login(cast["boss"])
    client.raise_request_exception = False
    for pk in IDS:
        for method, url in [
            ("get", f"/leads/{pk}/"),
            ("post", f"/leads/{pk}/move/"),
            ("post", f"/leads/{pk}/notes/"),
            ("get", f"/api/v1/leads/{pk}/"),
            ("patch", f"/api/v1/leads/{pk}/"),
        ]:
            assert getattr(client, method)(url).status_code == 404, url
        for url in [
            f"/admin/leads/lead/{pk}/change/",
            f"/admin/capi/conversionevent/{pk}/change/",
            f"/admin/leads/webhookdelivery/{pk}/change/",
        ]:
            # The admin redirects to its index with "doesn't exist".
            assert client.get(url).status_code in (302, 404), url


def test_nul_in_a_query_string_is_a_400_in_the_answer_each_part_speaks(cast, login):
    client = login(cast["boss"])
    page = client.get("/admin/capi/conversionevent/", {"status__exact": "\x00"})
    assert page.status_code == 400
    assert page.content == b"NUL characters are not allowed in the query string."
    api = client.get("/api/v1/leads/", {"stage": "new\x00"})
    assert api.status_code == 400
    assert api.json() == {
        "error": {
            "status": 400,
            "code": "parse_error",
            "message": "NUL characters are not allowed in the query string.",
        }
    }
    assert client.get("/leads/", {"q": "a%00b"}).status_code == 200  # a literal "%00" typed
