"""Importing Meta's lead export: both real-world encodings, prefixes, organic flags,
offsets, idempotence, one lead per leadgen id, rejected rows, files that are not exports,
the download with date clamping, and the admin upload."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from capi.user_data import build_user_data
from leads import csv_import
from leads.csv_import import download
from leads.models import Form, Lead, Page, PipelineStage, StageChange
from sandbox import MetaSandbox
from tests.conftest import FIXTURES, change_value, leadgen_body

pytestmark = pytest.mark.django_db

UTF16_TABS = FIXTURES / "lead_export_utf16_tabs.csv"
UTF8_COMMAS = FIXTURES / "lead_export_utf8_commas.csv"


def tz(hours: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours))


def import_file(path: Path | str, *args: str) -> str:
    out = io.StringIO()
    call_command("import_leads_csv", str(path), *args, stdout=out)
    return out.getvalue()


def write(tmp_path: Path, data: bytes, name: str = "export.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- The two fixtures -----------------------------------------------------------------------


def test_utf16_tab_export_imports_every_column_exactly():
    out = import_file(UTF16_TABS)

    assert "Read 2 rows (utf-16-le, tab-separated) for form 2222." in out
    assert "2 created, 0 updated, 0 unchanged, 0 rejected" in out
    paid = Lead.objects.select_related("form", "page", "stage").get(leadgen_id="1111111111111111")
    assert paid.source == Lead.Source.CSV
    assert paid.fetch_status == Lead.FetchStatus.COMPLETE
    assert paid.created_time == dt.datetime(2025, 1, 15, 10, 30, tzinfo=tz(1))
    assert paid.created_time == dt.datetime(2025, 1, 15, 9, 30, tzinfo=dt.UTC)
    assert (paid.ad_id, paid.ad_name) == ("120210000000000001", "Winter promo - video")
    assert (paid.adset_id, paid.adset_name) == ("120210000000000002", "Madrid 25-45")
    assert (paid.campaign_id, paid.campaign_name) == ("120210000000000003", "Winter leads 2025")
    assert (paid.is_organic, paid.platform) == (False, "ig")
    assert paid.field_data == [
        {"name": "full_name", "values": ["Jürgen Müller"]},
        {"name": "email", "values": ["Jurgen.Muller@Example.com"]},
        {"name": "phone_number", "values": ["+34612345678"]},
        {"name": "3456789012345678", "values": ["Mañana por la tarde"]},
        {"name": "which_services_interest_you?", "values": ["Installation, Maintenance"]},
        {"name": "selected_dealer", "values": ["99213450"]},
    ]
    assert (paid.email, paid.phone, paid.full_name) == (
        "Jurgen.Muller@Example.com",
        "+34612345678",
        "Jürgen Müller",
    )
    assert paid.graph_data["export_row"]["lead_status"] == ""
    assert paid.fetched_at is None  # not from the Graph API
    assert paid.stage == PipelineStage.first()
    assert paid.form.form_id == "2222"
    assert paid.form.name == "Winter form"
    assert paid.page is None  # the form's page is not known yet

    organic = Lead.objects.get(leadgen_id="1111111111111112")
    assert (organic.is_organic, organic.platform) == (True, "fb")
    assert (organic.ad_id, organic.adset_id, organic.campaign_id) == ("", "", "")
    # The unanswered custom question is left out; lead_status is not a question.
    assert organic.field_data == [
        {"name": "full_name", "values": ["张伟"]},
        {"name": "email", "values": ["wei@example.cn"]},
        {"name": "phone_number", "values": ["+8613800138000"]},
        {"name": "which_services_interest_you?", "values": ["Installation"]},
        {"name": "selected_dealer", "values": ["99213451"]},
    ]
    assert organic.graph_data["export_row"]["lead_status"] == "contacted"
    assert StageChange.objects.count() == 2


def test_utf8_comma_export_imports_every_column_exactly():
    out = import_file(UTF8_COMMAS)

    assert "Read 2 rows (utf-8, comma-separated) for form 3333." in out
    paid = Lead.objects.get(leadgen_id="2222222222222221")
    assert paid.created_time == dt.datetime(2025, 2, 1, 14, 15, tzinfo=dt.UTC)
    assert paid.ad_name == "Spring, 2025 — carousel"
    assert paid.adset_name == "Lisbon, 30+"
    assert (paid.is_organic, paid.platform) == (False, "fb")
    assert paid.field_data == [
        {"name": "email", "values": ["ana.silva@example.pt"]},
        {"name": "full_name", "values": ["Ana Silva"]},
        {"name": "phone_number", "values": ["+351912345678"]},
        {"name": "city", "values": ["Lisboa"]},
        {"name": "9876543210987654", "values": ["Sim, por favor"]},
        {"name": "selected_store", "values": ["2001"]},
    ]
    organic = Lead.objects.get(leadgen_id="2222222222222222")
    assert organic.created_time == dt.datetime(2025, 2, 1, 23, 40, 5, tzinfo=dt.UTC)
    assert (organic.is_organic, organic.platform) == (True, "ig")
    assert [item["name"] for item in organic.field_data] == [
        "email",
        "full_name",
        "phone_number",
        "city",
        "selected_store",
    ]


@pytest.mark.parametrize(
    ("prefix", "encoding"),
    [(b"\xfe\xff", "utf-16-be"), (b"\xef\xbb\xbf", "utf-8"), (b"", "utf-16-le")],
)
def test_other_byte_orders_and_boms_read_the_same(tmp_path, prefix, encoding):
    text = UTF16_TABS.read_bytes()[2:].decode("utf-16-le")
    path = write(tmp_path, prefix + text.encode(encoding))
    import_file(path)
    lead = Lead.objects.get(leadgen_id="1111111111111111")
    assert lead.field_data[0] == {"name": "full_name", "values": ["Jürgen Müller"]}
    assert lead.created_time == dt.datetime(2025, 1, 15, 9, 30, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", True), ("0", False), ("TRUE", True), ("false", False), ("True", True), ("", None)],
)
def test_is_organic_in_any_spelling(tmp_path, text, expected):
    data = f"id,created_time,form_id,is_organic\nl:5,2025-01-01T00:00:00+0000,f:9,{text}\n"
    import_file(write(tmp_path, data.encode()))
    assert Lead.objects.get(leadgen_id="5").is_organic is expected


# --- Idempotence and one lead per leadgen id -----------------------------------------------


def test_the_same_file_twice_changes_nothing():
    import_file(UTF16_TABS)
    before = list(Lead.objects.order_by("pk").values())

    out = import_file(UTF16_TABS)

    assert "0 created, 0 updated, 2 unchanged, 0 rejected" in out
    assert list(Lead.objects.order_by("pk").values()) == before
    assert StageChange.objects.count() == 2


def test_a_changed_row_of_an_earlier_import_is_updated(tmp_path):
    import_file(UTF8_COMMAS)
    text = UTF8_COMMAS.read_text().replace("Lisboa", "Porto")
    out = import_file(write(tmp_path, text.encode()))
    assert "0 created, 1 updated, 1 unchanged, 0 rejected" in out
    assert Lead.objects.get(leadgen_id="2222222222222221").field_data[3] == {
        "name": "city",
        "values": ["Porto"],
    }
    assert StageChange.objects.count() == 2


def test_a_webhook_lead_then_imported_is_one_lead(post_webhook, mocked_graph):
    page = Page.objects.create(page_id="1111")
    post_webhook(leadgen_body([[change_value(1111111111111111, page_id=1111, form_id=2222)]]))
    webhook_lead = Lead.objects.get()
    assert webhook_lead.fetch_status == Lead.FetchStatus.PENDING  # its fetch has not run
    Lead.objects.filter(pk=webhook_lead.pk).update(fetch_status=Lead.FetchStatus.FAILED)

    out = import_file(UTF16_TABS)

    assert "1 created, 1 updated, 0 unchanged, 0 rejected" in out
    assert Lead.objects.filter(leadgen_id="1111111111111111").count() == 1
    lead = Lead.objects.select_related("form").get(leadgen_id="1111111111111111")
    assert lead.pk == webhook_lead.pk
    assert lead.source == Lead.Source.WEBHOOK
    assert lead.fetch_status == Lead.FetchStatus.COMPLETE
    assert lead.email == "Jurgen.Muller@Example.com"
    # The form is the webhook's, with its page; the page is kept.
    assert (lead.form.form_id, lead.form.page, lead.page) == ("2222", page, page)
    assert StageChange.objects.filter(lead=lead).count() == 1
    # The other lead of the file takes the form's known page.
    assert Lead.objects.get(leadgen_id="1111111111111112").page == page


def test_a_complete_lead_from_the_graph_api_is_never_overwritten():
    form = Form.objects.create(form_id="2222")
    graph = Lead.objects.create(
        leadgen_id="1111111111111111",
        form=form,
        source=Lead.Source.BULK,
        fetch_status=Lead.FetchStatus.COMPLETE,
        fetched_at=dt.datetime(2025, 1, 15, 9, 31, tzinfo=dt.UTC),
        email="jurgen@example.com",
        field_data=[{"name": "email", "values": ["jurgen@example.com"]}],
        custom_disclaimer_responses=[{"checkbox_key": "optin", "is_checked": "1"}],
    )

    out = import_file(UTF16_TABS)

    assert "1 created, 0 updated, 1 unchanged (1 kept the richer data fetched from Meta)" in out
    graph.refresh_from_db()
    assert graph.email == "jurgen@example.com"
    assert graph.field_data == [{"name": "email", "values": ["jurgen@example.com"]}]
    assert graph.custom_disclaimer_responses == [{"checkbox_key": "optin", "is_checked": "1"}]
    assert graph.source == Lead.Source.BULK


def test_every_prefix_meta_writes_is_taken_off_and_real_answers_are_kept(tmp_path):
    """`z:03581` is a zip code (the prefix keeps a spreadsheet from dropping its zero); an
    answer that merely has a colon in it is the lead's own text."""
    rows = [
        "id\tcreated_time\tad_id\tform_id\tphone_number\tzip_code\tpost_code\twebsite"
        "\tbest_time\tnote\t5555",
        "l:101\t2025-01-01T10:00:00+0100\tag:7\tf:9\tp:+1 650 555 1212\tz:03581"
        "\tz:SW1A 1AA\thttp://example.com\t12:30\tRe: call me\tp:+34 612 345 678",
        "l:102\t2025-01-01T10:00:00+0100\t\tf:9\t\tz:call me later!\t\t\t\tab:cd\tq:1",
    ]
    path = write(tmp_path, ("\n".join(rows) + "\n").encode("utf-16"))

    out = import_file(path)

    assert "2 created, 0 updated, 0 unchanged, 0 rejected" in out
    lead = Lead.objects.get(leadgen_id="101")
    assert lead.ad_id == "7"
    assert {item["name"]: item["values"] for item in lead.field_data} == {
        "phone_number": ["+1 650 555 1212"],
        "zip_code": ["03581"],
        "post_code": ["SW1A 1AA"],
        "website": ["http://example.com"],
        "best_time": ["12:30"],
        "note": ["Re: call me"],
        "5555": ["+34 612 345 678"],
    }
    assert lead.phone == "+1 650 555 1212"
    # Both zip answers reach the Conversions API (no country given: the UK one is read
    # as written, without its spaces).
    assert build_user_data(lead)["zp"] == [
        sha256(b"03581").hexdigest(),
        sha256(b"sw1a1aa").hexdigest(),
    ]
    other = Lead.objects.get(leadgen_id="102")
    assert {item["name"]: item["values"] for item in other.field_data} == {
        "zip_code": ["z:call me later!"],  # not a zip code: kept as written
        "note": ["ab:cd"],
        "5555": ["q:1"],
    }


# --- Bad rows and files that are not exports ---------------------------------------------


def test_bad_rows_are_rejected_with_row_numbers_and_the_rest_imported(tmp_path):
    rows = [
        "id\tcreated_time\tad_id\tform_id\tis_organic\temail",
        "l:101\t2025-01-01T10:00:00+0100\tag:7\tf:9\t0\ta@example.com",
        "l:abc\t2025-01-01T10:00:00+0100\t\tf:9\t0\tb@example.com",
        "l:103\tyesterday\t\tf:9\t0\tc@example.com",
        "l:104\t2025-01-01T10:00:00+0100\tag:x7\tf:9\t0\td@example.com",
        "l:105\t2025-01-01T10:00:00+0100\t\tf:9\tmaybe\te@example.com",
        "",
        "l:107\t2025-01-01T10:00:00+0100\t\tf:9\t1\tf@example.com\textra",
        "l:101\t2025-01-01T10:00:00+0100\t\tf:9\t1\tg@example.com",
        "l:109\t2025-01-01T10:00:00+0100\t\tf:8\t1\th@example.com",
        "l:110\t2025-01-01T10:00:00+0100\t\tf:9\t1\t",
    ]
    path = write(tmp_path, ("\n".join(rows) + "\n").encode("utf-16"))

    out = import_file(path, "--form", "9")

    assert "2 created, 0 updated, 0 unchanged, 7 rejected" in out
    assert sorted(Lead.objects.values_list("leadgen_id", flat=True)) == ["101", "110"]
    report_lines = [line.strip() for line in out.splitlines() if line.startswith("  row")]
    assert report_lines == [
        "row 3: id 'l:abc' is not a lead id",
        "row 4 (lead 103): created_time 'yesterday' is not a date and time",
        "row 5 (lead 104): ad_id 'ag:x7' is not an id",
        "row 6 (lead 105): is_organic 'maybe' is not 1/0 or true/false",
        "row 8 (lead 107): 7 cells, but the header has 6 columns",
        "row 9 (lead 101): the same lead as row 2",
        "row 10 (lead 109): form_id 8 is not the form given (9)",
    ]
    assert Lead.objects.get(leadgen_id="110").field_data == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "The file is empty."),
        (b"\xff\xfe", "The file is empty."),
        (
            b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xd8\x9a\x00",
            "The file is not text (UTF-8 or UTF-16): is it a spreadsheet (.xlsx) or another "
            "binary file? Download the leads as CSV.",
        ),
        (
            b"name,email\nAna,ana@example.com\n",
            "Not a lead export: no id or created_time column in the header (found: name, email).",
        ),
        (
            b"<!DOCTYPE html><html><body>Log in to Facebook</body></html>",
            "Not a lead export: no id or created_time column in the header (found: "
            "<!DOCTYPE html><html><body>Log in to Facebook</body></html>).",
        ),
        (
            b"id,created_time,email\nl:1,2025-01-01T00:00:00+0000,a@example.com\n",
            "The file has no form_id column: give the form with --form.",
        ),
    ],
)
def test_a_file_that_is_not_an_export_changes_nothing(tmp_path, data, reason):
    with pytest.raises(CommandError) as excinfo:
        import_file(write(tmp_path, data))
    assert str(excinfo.value) == f"Nothing imported: {reason}"
    assert Lead.objects.count() == 0
    assert Form.objects.count() == 0


def test_a_missing_file_is_a_clear_error():
    with pytest.raises(CommandError, match=r"Cannot read /nonexistent/leads\.csv"):
        import_file("/nonexistent/leads.csv")


# --- Download from Meta -------------------------------------------------------------------

PAGE = "111111111111111"
FORM = "222222222222222"
PAGE_TOKEN = "page-token-export"
T0 = 1_735_689_600  # 2025-01-01T00:00:00Z


@pytest.fixture
def meta(settings) -> Iterator[MetaSandbox]:
    sandbox = MetaSandbox().start()
    sandbox.add_page(PAGE, token=PAGE_TOKEN)
    sandbox.add_form(FORM, page_id=PAGE, name="Kitchen quote", created_time=T0 - 86400)
    for i, created in enumerate((T0 - 2 * 86400, T0 + 60, T0 + 120, T0 + 20 * 86400)):
        sandbox.add_lead(
            {
                "id": str(500 + i),
                "form_id": FORM,
                "created_time": created,
                "is_organic": i == 2,
                "platform": "ig",
                "field_data": {"full_name": f"Lead {i}", "phone_number": "+4915112345678"},
            }
        )
    settings.META_WWW_URL = sandbox.url
    yield sandbox
    sandbox.stop()


@pytest.fixture
def form() -> Form:
    page = Page.objects.create(page_id=PAGE, token_status=Page.TokenStatus.VALID)
    page.token = PAGE_TOKEN
    page.save()
    return Form.objects.create(
        form_id=FORM, page=page, meta_created_time=dt.datetime.fromtimestamp(T0 - 86400, dt.UTC)
    )


def test_download_clamps_the_dates_and_imports_the_export(meta, form, monkeypatch):
    now = T0 + 10 * 86400
    monkeypatch.setattr(download, "_now_unix", lambda: now)
    out = io.StringIO()

    call_command(
        "import_leads_csv",
        "--download",
        "--form",
        FORM,
        "--from-date",
        "0",
        "--to-date",
        "4000000000",
        stdout=out,
    )

    (request,) = meta.requests
    assert request.path == "/ads/lead_gen/export_csv/"
    assert request.query == {
        "id": FORM,
        "type": "form",
        "from_date": str(T0 - 86400),  # before the form existed: its creation
        "to_date": str(now),  # after now: now
    }
    assert request.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert (
        "leads of form 222222222222222 from 2024-12-31 00:00:00 UTC to 2025-01-11 00:00:00 UTC"
        in out.getvalue()
    )
    assert "2 created, 0 updated, 0 unchanged, 0 rejected" in out.getvalue()
    leads = {lead.leadgen_id: lead for lead in Lead.objects.select_related("page", "form")}
    assert sorted(leads) == ["501", "502"]
    assert leads["502"].is_organic is True
    assert leads["501"].phone == "+4915112345678"
    assert (leads["501"].form, leads["501"].page) == (form, form.page)
    assert leads["501"].created_time == dt.datetime.fromtimestamp(T0 + 60, dt.UTC)


def test_download_utf8_export_with_an_offset(meta, form):
    meta.export_options = type(meta.export_options)(
        encoding="utf-8", delimiter=",", organic_true="TRUE", utc_offset_minutes=-300
    )
    out = io.StringIO()
    call_command("import_leads_csv", "--download", "--form", FORM, stdout=out)
    assert "Read 3 rows (utf-8, comma-separated)" in out.getvalue()
    assert Lead.objects.get(leadgen_id="502").is_organic is True
    assert Lead.objects.get(leadgen_id="503").created_time == dt.datetime.fromtimestamp(
        T0 + 20 * 86400, dt.UTC
    )


def test_download_with_a_rejected_token_marks_the_page(meta, form):
    meta.revoke_token(PAGE_TOKEN)
    with pytest.raises(CommandError, match=r"Meta rejected the token \(#190\)"):
        call_command("import_leads_csv", "--download", "--form", FORM, stdout=io.StringIO())
    form.page.refresh_from_db()
    assert form.page.token_status == Page.TokenStatus.INVALID
    assert Lead.objects.count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--download"], "--download needs --form ID."),
        (["--download", "--form", "77"], "No usable token for form 77"),
        (["x.csv", "--download", "--form", "77"], "Give either FILE or --download, not both."),
        (["x.csv", "--from-date", "5"], "--from-date and --to-date go with --download."),
        ([], "Give the exported FILE, or --download --form ID."),
    ],
)
def test_command_option_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_leads_csv", *args, stdout=io.StringIO())


def test_download_dates_after_clamping_must_make_a_window(form):
    with pytest.raises(csv_import.DownloadError, match="is after --to-date"):
        csv_import.download_export(FORM, from_date=T0, to_date=T0 - 1, now=T0 + 5)


# --- Admin upload -------------------------------------------------------------------------


@pytest.fixture
def admin_user():
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")


def test_admin_upload_shows_a_report(client, admin_user):
    client.force_login(admin_user)
    changelist = client.get("/admin/leads/lead/")
    assert b'href="/admin/leads/lead/import-csv/"' in changelist.content

    form_page = client.get("/admin/leads/lead/import-csv/")
    assert form_page.status_code == 200
    upload = SimpleUploadedFile("leads.csv", UTF8_COMMAS.read_bytes(), content_type="text/csv")
    response = client.post("/admin/leads/lead/import-csv/", {"file": upload})

    assert response.status_code == 200
    report = response.context["report"]
    assert (report.created, report.updated, report.unchanged, report.rejected) == (2, 0, 0, [])
    assert b'<td class="created">2</td>' in response.content
    assert Lead.objects.count() == 2


def test_admin_upload_of_a_non_export_says_why(client, admin_user):
    client.force_login(admin_user)
    upload = SimpleUploadedFile("notes.txt", b"hello,world\n1,2\n")
    response = client.post("/admin/leads/lead/import-csv/", {"file": upload})
    assert response.status_code == 200
    assert response.context["report"] is None
    assert response.context["form"].errors == {
        "file": [
            "Nothing imported: Not a lead export: no id or created_time column in the header "
            "(found: hello, world)."
        ]
    }
    assert Lead.objects.count() == 0


def test_admin_upload_needs_the_add_lead_permission(client):
    staff = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/leads/lead/import-csv/").status_code == 403


def test_report_mentions_rejections_in_the_admin(client, admin_user):
    client.force_login(admin_user)
    data = b"id,created_time,form_id\nl:1,nope,f:9\n"
    response = client.post(
        "/admin/leads/lead/import-csv/", {"file": SimpleUploadedFile("x.csv", data)}
    )
    assert response.context["report"].rejected == [
        csv_import.Rejection(2, "created_time 'nope' is not a date and time", "1")
    ]
    assert b"created_time &#x27;nope&#x27; is not a date and time" in response.content
