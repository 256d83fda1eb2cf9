"""Normalisation and hashing of customer information, against Meta's documented examples,
a table of real-world answers, and properties (never raises, idempotent)."""

from __future__ import annotations

import hashlib

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from capi import normalize
from capi.user_data import build_user_data, match_keys
from tests.capi.conftest import ANSWERS, make_lead


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- Meta's documented examples (META.md, "Customer information") --------------------------


def test_email_example_hashes_exactly():
    assert normalize.email("John_Smith@gmail.com") == "john_smith@gmail.com"
    assert (
        normalize.hashed("John_Smith@gmail.com", normalize.email)
        == "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )


def test_phone_example_hashes_exactly():
    assert normalize.phone("(650)555-1212", region="US") == "16505551212"
    assert (
        normalize.hashed("(650)555-1212", lambda v: normalize.phone(v, region="US"))
        == "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )


def test_country_example_hashes_exactly():
    assert normalize.country("United States") == "us"
    assert (
        normalize.hashed("United States", normalize.country)
        == "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
    )


def test_other_documented_rows():
    assert normalize.name("Valéry") == "valéry"
    assert normalize.city("New York") == "newyork"
    assert normalize.state("California") == "ca"
    assert normalize.zip_code("94035-1234") == "94035"
    assert normalize.date_of_birth("2/16/1997") == "19970216"


def test_an_existing_sha256_passes_through_lowercased():
    digest = sha("john_smith@gmail.com")
    assert normalize.hashed(digest.upper(), normalize.email) == digest
    assert normalize.hashed(f"  {digest} ", normalize.phone) == digest


# --- Real-world answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Jurgen.Muller@Example.COM ", "jurgen.muller@example.com"),
        ("mailto:ana@example.es", "ana@example.es"),
        ("ana@example", None),
        ("no tengo", None),
        ("ana @example.com", None),
        ("", None),
    ],
)
def test_email(value, expected):
    assert normalize.email(value) == expected


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+34 612 345 678", "US", "34612345678"),  # the number's own country code wins
        ("612 345 678", "ES", "34612345678"),
        ("34612345678", "ES", "34612345678"),
        ("0034 612 345 678", "US", "34612345678"),
        ("p:+447911123456", None, "447911123456"),  # lead exports prefix phones with p:
        ("07911 123456", "GB", "447911123456"),  # national trunk zero dropped
        ("+39 06 6982 0000", None, "390669820000"),  # Italy keeps its leading zero
        ("650.555.1212", "US", "16505551212"),
        ("1 (650) 555-1212", "US", "16505551212"),
        ("5551212", "US", None),  # no area code: not a full number
        # The international prefix typed as well as the `+`, or instead of it.
        ("+001 (616) 954-78 88", "US", "16169547888"),
        ("+001 (616) 954-78 88", "ES", "16169547888"),
        ("+00 44 20 7946 0958", None, "442079460958"),
        ("00 1 616 954 7888", "GB", "16169547888"),
        ("p:+0034 612 345 678", None, "34612345678"),
        ("1-800-FLOWERS", "US", None),  # letters are refused, not read as a vanity number
        ("n/a", "US", None),
        ("+1 650 555 12", "US", None),
        ("", "US", None),
    ],
)
def test_phone(value, region, expected):
    assert normalize.phone(value, region=region) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Jürgen", "jürgen"),
        ("  MARY   Ann ", "maryann"),
        ("John Smith", "johnsmith"),  # spaces go, as punctuation does
        ("Mary-Jane  O'Connor", "maryjaneoconnor"),
        ("José María", "josémaría"),
        ("John\u00a0Smith", "johnsmith"),  # a no-break space is a space
        ("Agent007", "agent007"),  # digits stay, as capi-param-builder keeps them
        ("Ana 😀", "ana"),  # a symbol is not part of a name
        ("O'Brien", "obrien"),
        ("Jean-Pierre", "jeanpierre"),
        ("Zoë", "zoë"),
        ("Zoe\u0308", "zoë"),  # decomposed input hashes like the composed form
        ("李", "李"),
        ("123", None),
        ("...", None),
    ],
)
def test_name(value, expected):
    assert normalize.name(value) == expected


def test_full_name_splits_into_first_and_last_word():
    assert normalize.split_full_name("Jürgen Müller") == ("jürgen", "müller")
    assert normalize.split_full_name("Mary Ann de la Cruz") == ("mary", "cruz")
    assert normalize.split_full_name("Cher") == ("cher", None)
    assert normalize.split_full_name("  ") == (None, None)


@pytest.mark.parametrize(
    ("full_name", "expected"),
    [
        ("王伟", ("伟", "王")),
        ("李小龙", ("小龙", "李")),
        ("欧阳娜娜", ("娜娜", "欧阳")),
        ("司马光", ("光", "司马")),
        ("王 伟", ("伟", "王")),
        ("佐藤花子", ("花子", "佐藤")),
        ("김민준", ("민준", "김")),
        ("남궁민수", ("민수", "남궁")),
        ("王", ("王", None)),  # one character: a first name only, as any one word
        ("山田さくら", ("山田さくら", None)),  # kana: not split by its letters
        ("爱新觉罗溥仪", ("爱新觉罗溥仪", None)),  # too long to tell
    ],
)
def test_east_asian_full_names_are_family_name_first(full_name, expected):
    assert normalize.split_full_name(full_name) == expected


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [
        ("California", None, "ca"),
        ("CA", "us", "ca"),
        ("new york", "us", "ny"),
        ("District of Columbia", "us", "dc"),
        ("Puerto Rico", None, "pr"),
        # Abbreviations with a period (GPO and AP style, and common variants).
        ("Calif.", None, "ca"),
        ("Fla.", "us", "fl"),
        ("Mass.", None, "ma"),
        ("Penn.", "us", "pa"),
        ("Penna.", None, "pa"),
        ("Tex.", None, "tx"),
        ("N. Dak.", None, "nd"),
        ("W. Va.", None, "wv"),
        ("N.Y.", None, "ny"),
        ("Virgin Islands, U.S.", None, "vi"),
        ("Atlantis", "us", None),  # not a US state, so it could never match
        ("Île-de-France", "fr", "îledefrance"),
        ("Comunidad de Madrid", "es", "comunidaddemadrid"),
    ],
)
def test_state(value, country, expected):
    assert normalize.state(value, country=country) == expected


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [
        ("94035-1234", "us", "94035"),
        ("940351234", None, "94035"),
        ("9403", "us", None),
        ("SW1A 1AA", "gb", "sw1a1"),  # area, district and sector, as Meta asks for the UK
        ("sw1a1", "gb", "sw1a1"),
        ("28013", "es", "28013"),
        ("K1A 0B1", "ca", "k1a0b1"),
        ("75 001", "fr", "75001"),
        ("z:03581", None, "03581"),  # Meta's lead exports prefix zip codes with `z:`
        ("z:03581", "us", "03581"),
        ("", None, None),
    ],
)
def test_zip(value, country, expected):
    assert normalize.zip_code(value, country=country) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("United States", "us"),
        ("USA", "us"),
        ("U.S.A.", "us"),
        ("us", "us"),
        ("España", "es"),
        ("espana", "es"),
        ("ES", "es"),
        ("United Kingdom", "gb"),
        ("UK", "gb"),
        ("Deutschland", "de"),
        ("México", "mx"),
        ("中国", "cn"),
        ("France", "fr"),
        # Countries the hand table missed (their leads' phones fell back to the US region).
        ("Bulgaria", "bg"),
        ("Croatia", "hr"),
        ("Serbia", "rs"),
        ("Iceland", "is"),
        ("Sri Lanka", "lk"),
        ("Ghana", "gh"),
        ("Iraq", "iq"),
        ("Georgia", "ge"),
        ("Côte d'Ivoire", "ci"),
        ("Ivory Coast", "ci"),
        # Names in the seed languages (pycountry's catalogs).
        ("Costa de Marfil", "ci"),
        ("Bulgarie", "bg"),
        ("Croacia", "hr"),
        ("Islande", "is"),
        ("保加利亚", "bg"),
        ("克罗地亚", "hr"),
        ("德國", "de"),
        ("Estados Unidos", "us"),
        ("États-Unis", "us"),
        ("Royaume-Uni", "gb"),
        ("Viet Nam", "vn"),
        ("Vietnam", "vn"),
        ("Korea, Republic of", "kr"),
        ("BGR", "bg"),
        ("xk", "xk"),  # Kosovo: no ISO code, but phonenumbers' region
        ("Narnia", None),
        ("xx", None),
    ],
)
def test_country(value, expected):
    assert normalize.country(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2/16/1997", "19970216"),  # Meta's US default: month first
        ("02/03/1997", "19970203"),  # ambiguous: month first, as Meta's forms send it
        ("16/02/1997", "19970216"),  # 16 cannot be a month
        ("1997-02-16", "19970216"),
        ("1997/02/16", "19970216"),
        ("19970216", "19970216"),
        ("16.02.1997", "19970216"),  # dots: day first
        ("February 16, 1997", "19970216"),
        ("16 Feb 1997", "19970216"),
        ("16 de febrero de 1997", "19970216"),
        ("16 février 1997", "19970216"),
        ("1997年2月16日", "19970216"),
        ("1997-02-16T00:00:00", "19970216"),
        ("2/30/1997", None),  # no such date
        ("2/16/97", None),  # two-digit year: refused
        ("1/1/1850", None),
        ("1/1/2999", None),
        ("yesterday", None),
    ],
)
def test_date_of_birth(value, expected):
    assert normalize.date_of_birth(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Female", "f"),
        ("F", "f"),
        ("woman", "f"),
        ("Mujer", "f"),
        ("Femme", "f"),
        ("女", "f"),
        ("Male", "m"),
        ("m", "m"),
        ("Hombre", "m"),
        ("Homme", "m"),
        ("男性", "m"),
        ("Non-binary", None),
        ("Prefer not to say", None),
    ],
)
def test_gender(value, expected):
    assert normalize.gender(value) == expected


# --- Properties --------------------------------------------------------------------------------

REGIONS = st.sampled_from([None, "US", "ES", "GB", "DE", "FR", "MX", "BR", "IN", "CN", "XX"])
COUNTRIES = st.sampled_from([None, "us", "gb", "es", "fr", "de"])
# Text that looks like a phone number often enough to reach the valid-number branches.
PHONE_TEXT = st.one_of(
    st.text(),
    st.from_regex(r"\A(\+|00|p:)?[0-9 ()\-.]{4,20}\Z"),
)
DATE_TEXT = st.one_of(
    st.text(),
    st.dates().map(lambda d: d.strftime("%m/%d/%Y")),
    st.dates().map(lambda d: d.strftime("%d.%m.%Y")),
    st.dates().map(lambda d: d.strftime("%d %B %Y")),
)


def _idempotent(normaliser, value):
    once = normaliser(value)
    assert once is None or isinstance(once, str)
    if once is not None:
        assert once, "an empty string is never a normalised value"
        assert normaliser(once) == once


@given(st.text())
def test_text_normalisers_never_raise_and_are_idempotent(value):
    for normaliser in (
        normalize.email,
        normalize.name,
        normalize.city,
        normalize.country,
        normalize.gender,
    ):
        _idempotent(normaliser, value)


@given(PHONE_TEXT, REGIONS)
def test_phone_never_raises_and_is_idempotent(value, region):
    """The output is E.164 digits without `+`, and normalises to itself read as what it
    is: a number of its own country (or of no region in particular). Read in another
    region, digits without `+` can also be a valid national number there (`6047236880` is
    Vancouver in the US plan and Malaysia with `+`); a lead typing digits means the
    national number, so that reading wins, and no property can hold across regions."""
    once = normalize.phone(value, region=region)
    if once is not None:
        assert once.isdigit() and not once.startswith("0")
        own_region = phonenumbers.region_code_for_number(phonenumbers.parse("+" + once))
        assert normalize.phone(once, region=own_region) == once
        assert normalize.phone(once) == once
        assert normalize.phone("+" + once, region=region) == once


@given(st.text(), COUNTRIES)
def test_state_and_zip_never_raise_and_are_idempotent(value, country):
    _idempotent(lambda v: normalize.state(v, country=country), value)
    _idempotent(lambda v: normalize.zip_code(v, country=country), value)


@given(DATE_TEXT)
def test_date_of_birth_never_raises_and_is_idempotent(value):
    once = normalize.date_of_birth(value)
    if once is not None:
        assert len(once) == 8 and once.isdigit()
        assert normalize.date_of_birth(once) == once


@given(st.dictionaries(st.sampled_from([*sorted(ANSWERS), "first_name", "zip"]), st.text()))
def test_user_data_never_raises_whatever_the_answers(answers):
    user_data = build_user_data(
        _LeadStub(field_data=[{"name": k, "values": [v]} for k, v in answers.items()])
    )
    for key in match_keys(user_data):
        assert all(len(digest) == 64 for digest in user_data[key])


class _LeadStub:
    leadgen_id = "1234567890123456"
    email = ""
    phone = ""
    full_name = ""

    def __init__(self, field_data):
        self.field_data = field_data


# --- user_data of a lead -----------------------------------------------------------------------


@pytest.mark.django_db
def test_user_data_has_lead_id_and_every_derivable_key_hashed():
    lead = make_lead(leadgen_id="1234567890123456")
    assert build_user_data(lead) == {
        "lead_id": 1234567890123456,
        "em": [sha("jurgen.muller@example.com")],
        "ph": [sha("34612345678")],
        "fn": [sha("jürgen")],
        "ln": [sha("müller")],
        "ct": [sha("madrid")],
        "st": [sha("comunidaddemadrid")],
        "zp": [sha("28013")],
        "country": [sha("es")],
        "db": [sha("19970216")],
        "ge": [sha("m")],
    }


@pytest.mark.django_db
def test_the_leads_country_decides_how_a_national_phone_is_read(settings):
    settings.DEFAULT_PHONE_REGION = "US"
    spanish = make_lead({"phone_number": "612 345 678", "country": "España"})
    american = make_lead({"phone_number": "(650) 555-1212"})
    assert build_user_data(spanish)["ph"] == [sha("34612345678")]
    assert build_user_data(american)["ph"] == [sha("16505551212")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("country", "phone", "expected"),
    [
        ("Bulgaria", "0888 123 456", "359888123456"),
        ("Croatia", "091 234 5678", "385912345678"),
        ("Ghana", "024 123 4567", "233241234567"),
        ("Costa de Marfil", "07 07 12 34 56", "2250707123456"),
    ],
)
def test_any_countrys_name_decides_how_a_national_phone_is_read(settings, country, phone, expected):
    settings.DEFAULT_PHONE_REGION = "US"
    lead = make_lead({"phone_number": phone, "country": country})
    assert build_user_data(lead)["ph"] == [sha(expected)]


@pytest.mark.django_db
def test_first_and_last_name_questions_win_over_the_full_name():
    lead = make_lead({"first_name": "Ana", "last_name": "García López", "email": "a@b.es"})
    lead.full_name = "Someone Else"
    user_data = build_user_data(lead)
    assert user_data["fn"] == [sha("ana")]
    assert user_data["ln"] == [sha("garcíalópez")]  # spaces go, as in names


@pytest.mark.django_db
def test_a_value_meta_would_reject_is_left_out_and_the_rest_stays():
    lead = make_lead(
        {
            "email": "not an email",
            "phone_number": "call me",
            "date_of_birth": "someday",
            "gender": "prefer not to say",
            "city": "Sevilla",
        }
    )
    assert match_keys(build_user_data(lead)) == ["ct"]
    assert build_user_data(lead)["lead_id"] == int(lead.leadgen_id)


@pytest.mark.django_db
def test_extracted_columns_fill_in_when_field_data_lacks_the_question():
    # A CSV import stores the contact columns; a custom question id holds the email.
    lead = make_lead(
        {"3456789012345678": "x"},
        email="Ana@Example.com",
        phone="+1 650 555 1212",
        full_name="Ana Pérez",
    )
    user_data = build_user_data(lead)
    assert user_data["em"] == [sha("ana@example.com")]
    assert user_data["ph"] == [sha("16505551212")]
    assert (user_data["fn"], user_data["ln"]) == ([sha("ana")], [sha("pérez")])


@pytest.mark.django_db
def test_a_non_numeric_leadgen_id_is_left_out():
    lead = make_lead(leadgen_id="import-17")
    assert "lead_id" not in build_user_data(lead)
