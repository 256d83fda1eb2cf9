"""Customer information for the Conversions API: normalise the way Meta's documentation and
Meta's own normalisation library (capi-param-builder, which Meta's Node SDK calls) agree,
then SHA-256. docs/normalisation.md has the rules in one table, each with its source;
tests/fixtures/capi_param_builder/ holds the library's published vectors we test against.

Meta's Python SDK is looser than its documentation (no country code added to phones,
punctuation kept in names, dates passed through); we follow the documentation, and agree
with the SDK byte for byte on canonical input. Each normaliser returns the normalised text,
or None for a value Meta would reject or could never match: such a key is left out and the
event goes with the rest. None of them raises, whatever the input (property-tested), and
each is idempotent: normalising its own output gives the same output.

A value that already is a SHA-256 (64 hex digits) is passed through, lowercased.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable

import phonenumbers
import pycountry

logger = logging.getLogger(__name__)

SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


def is_sha256(value: str) -> bool:
    return bool(SHA256_RE.fullmatch(value))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: object) -> str:
    """NFC text, trimmed. NFC so that `é` typed as e + combining accent hashes like `é`."""
    if not isinstance(value, str):
        return ""
    return unicodedata.normalize("NFC", value).strip()


def _letters_only(text: str, *, keep_spaces: bool) -> str:
    """Lowercase, without punctuation, symbols, digits or control characters. UTF-8 letters
    (and their combining marks) stay: Meta hashes `valéry`, not `valery`."""
    kept: list[str] = []
    for char in text.lower():
        if unicodedata.category(char)[0] in "LM":
            kept.append(char)
        elif keep_spaces and char.isspace():
            kept.append(" ")
    # Runs of spaces collapse to one, so `Mary  Ann` and `Mary Ann` hash alike. NFC again:
    # dropping a character can leave combining marks that compose (or reorder) anew.
    return " ".join(unicodedata.normalize("NFC", "".join(kept)).split())


# --- em -------------------------------------------------------------------------------------

# One @, something on each side, a dot in the domain, no spaces. Deliberately not RFC 5322:
# the point is to leave out answers that are clearly not an address ("n/a", "no tengo").
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def email(value: object) -> str | None:
    text = _text(value).lower()
    if text.startswith("mailto:"):
        text = text[len("mailto:") :]
    return text if EMAIL_RE.fullmatch(text) else None


# --- ph -------------------------------------------------------------------------------------

# What a typed phone number may contain besides digits. Letters are refused: phonenumbers
# would read "1-800-FLOWERS" as a vanity number, and a lead who typed letters did not
# give us a number we can vouch for.
PHONE_ALLOWED_RE = re.compile(r"[\d\s+\-().\/\u00a0]+")


def _e164_digits(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def _parse_valid(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def phone(value: object, *, region: str | None = None) -> str | None:
    """E.164 digits with the country code, no `+`, no leading zeros: `16505551212`.

    `region` (ISO alpha-2, e.g. the lead's country, else DEFAULT_PHONE_REGION) applies to
    numbers typed without a country code. Only numbers phonenumbers considers valid are
    kept: hashing a typo can never match anyone.
    """
    text = _text(value)
    if text[:2].lower() == "p:":  # Meta's lead exports prefix phones with `p:`
        text = text[2:].strip()
    if not text or len(text) > 40 or not PHONE_ALLOWED_RE.fullmatch(text):
        return None
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None
    if text.startswith("+") or digits.startswith("00"):
        # An international number. `00` is the international prefix almost everywhere (no
        # national number starts with it), and phonenumbers would only recognise it for
        # the region given; a country code never starts with 0, so zeros after the `+`
        # are that prefix typed as well (`+001 (616) 954-78 88`): all leading zeros go,
        # as Meta's SDK and capi-param-builder drop them.
        number = _parse_valid("+" + digits.lstrip("0"), None)
        return _e164_digits(number) if number else None
    region = (region or "").upper() or None
    country_code = phonenumbers.country_code_for_region(region) if region else 0
    international = _parse_valid("+" + digits, None)
    if international and country_code and digits.startswith(str(country_code)):
        # The region's own country code is already there (`34612345678` for ES): this is
        # also what makes our own output normalise to itself.
        return _e164_digits(international)
    # A national number of the lead's region; failing that, the digits may be a full
    # international number typed without `+`.
    number = (_parse_valid(digits, region) if region else None) or international
    return _e164_digits(number) if number else None


# --- fn, ln, ct, st -------------------------------------------------------------------------


def name(value: object) -> str | None:
    """First or last name: lowercase, without spaces or punctuation, UTF-8 letters kept
    (`John Smith` -> `johnsmith`, `Valéry` -> `valéry`), as Meta's documentation and
    capi-param-builder agree. Digits stay (the library keeps them); symbols such as emoji
    go (no name Meta holds has one). A value with no letter is no name: None."""
    kept = [
        char
        for char in _text(value).lower()
        if unicodedata.category(char)[0] in "LM" or unicodedata.category(char) == "Nd"
    ]
    # NFC again: dropping a character can leave combining marks that compose anew.
    normalised = unicodedata.normalize("NFC", "".join(kept))
    return normalised if any(char.isalpha() for char in normalised) else None


def split_full_name(value: object) -> tuple[str | None, str | None]:
    """`Jürgen Müller` -> (`jürgen`, `müller`); one word is a first name only. Middle names
    are dropped: Meta matches first and last names separately."""
    words = [word for word in map(name, _text(value).split()) if word]
    if not words:
        return None, None
    if len(words) == 1:
        return words[0], None
    return words[0], words[-1]


def city(value: object) -> str | None:
    """Lowercase, no punctuation, no spaces: `New York` -> `newyork`."""
    return _letters_only(_text(value), keep_spaces=False) or None


# Names pycountry does not give, keyed as `_compact` writes them.
US_STATE_ALIASES: dict[str, str] = {
    "washingtondc": "dc",
    "virginislands": "vi",
    "usvirginislands": "vi",
}
# The traditional abbreviations with a period (US Government Publishing Office Style
# Manual, AP Stylebook) and their common variants, keyed without the period: `Calif.`,
# `Fla.`, `Mass.`, `Penn.`. Two-letter ones (`Pa.`, `Ga.`, `N.Y.`) are codes already.
US_STATE_ABBREVIATIONS: dict[str, str] = {
    **dict.fromkeys(["ala"], "al"),
    **dict.fromkeys(["alas"], "ak"),
    **dict.fromkeys(["ariz"], "az"),
    **dict.fromkeys(["ark"], "ar"),
    **dict.fromkeys(["cal", "calif"], "ca"),
    **dict.fromkeys(["colo", "col"], "co"),
    **dict.fromkeys(["conn"], "ct"),
    **dict.fromkeys(["del"], "de"),
    **dict.fromkeys(["fla"], "fl"),
    **dict.fromkeys(["ill"], "il"),
    **dict.fromkeys(["ind"], "in"),
    **dict.fromkeys(["kan", "kans"], "ks"),
    **dict.fromkeys(["mass"], "ma"),
    **dict.fromkeys(["mich"], "mi"),
    **dict.fromkeys(["minn"], "mn"),
    **dict.fromkeys(["miss"], "ms"),
    **dict.fromkeys(["mont"], "mt"),
    **dict.fromkeys(["neb", "nebr"], "ne"),
    **dict.fromkeys(["nev"], "nv"),
    **dict.fromkeys(["nmex", "nmexico"], "nm"),
    **dict.fromkeys(["ndak"], "nd"),
    **dict.fromkeys(["okla"], "ok"),
    **dict.fromkeys(["ore", "oreg"], "or"),
    **dict.fromkeys(["penn", "penna"], "pa"),
    **dict.fromkeys(["sdak"], "sd"),
    **dict.fromkeys(["tenn"], "tn"),
    **dict.fromkeys(["tex"], "tx"),
    **dict.fromkeys(["wash"], "wa"),
    **dict.fromkeys(["wva"], "wv"),
    **dict.fromkeys(["wis", "wisc"], "wi"),
    **dict.fromkeys(["wyo"], "wy"),
}


def _compact(text: str) -> str:
    return _letters_only(text, keep_spaces=False)


@functools.cache
def us_states() -> dict[str, str]:
    """US state, district and territory names (pycountry's ISO 3166-2 subdivisions) and
    the abbreviations above, to two-letter codes; built once, on first use."""
    names = {
        _compact(subdivision.name): subdivision.code.split("-")[1].lower()
        for subdivision in pycountry.subdivisions.get(country_code="US")
    }
    return {**names, **US_STATE_ALIASES, **US_STATE_ABBREVIATIONS}


@functools.cache
def us_state_codes() -> frozenset[str]:
    return frozenset(us_states().values())


def state(value: object, *, country: str | None = None) -> str | None:
    """US: the 2-letter code, from a name, a code or an abbreviation (`California`, `CA`,
    `Calif.` -> `ca`). Elsewhere: lowercase, no punctuation, no spaces (`Île-de-France`
    -> `îledefrance`), as Meta's documentation says for states outside the US.

    With the country unknown, a US state name or code is taken as one: the form's state
    question is a US question far more often than not.
    """
    compact = _compact(_text(value))
    if not compact:
        return None
    if country in (None, "us"):
        # US names are ASCII: `Califórnia` (Portuguese) is California, as in capi-param-
        # builder; a name elsewhere keeps its accents (Meta: UTF-8).
        folded = _country_key(compact)
        if folded in us_state_codes():
            return folded
        if folded in us_states():
            return us_states()[folded]
        if country == "us":
            return None  # not a US state: Meta could never match it
    return compact


# --- zp -------------------------------------------------------------------------------------

US_ZIP_RE = re.compile(r"(\d{5})(?:-?\d{4})?")
UK_POSTCODE_RE = re.compile(r"([a-z]{1,2}\d[a-z\d]?)(\d)[a-z]{2}")


def zip_code(value: object, *, country: str | None = None) -> str | None:
    """Lowercase, no spaces or dashes. US: the first 5 digits (`94035-1234` -> `94035`).
    UK: area, district and sector (`SW1A 1AA` -> `sw1a1`), as Meta asks."""
    text = _text(value).lower()
    if text.startswith("z:"):  # Meta's lead exports prefix zip codes with `z:`
        text = text[2:]
    compact = re.sub(r"[\s\-]", "", text)
    # No postal code anywhere is one character (capi-param-builder's bound) or over 12,
    # or holds anything but ASCII letters and digits.
    if not 2 <= len(compact) <= 12 or not compact.isalnum() or not compact.isascii():
        return None
    if country == "us" or (country is None and US_ZIP_RE.fullmatch(compact)):
        match = US_ZIP_RE.fullmatch(compact)
        return match.group(1) if match else None
    if country == "gb":
        match = UK_POSTCODE_RE.fullmatch(compact)
        return match.group(1) + match.group(2) if match else compact
    return compact


# --- country --------------------------------------------------------------------------------

# The languages of the seeds besides English: pycountry's gettext catalogs (iso3166-1).
COUNTRY_NAME_LANGUAGES = ("es", "fr", "zh_CN", "zh_TW", "zh_HK")
# What people type that pycountry does not hold (former, short, local and constituent
# names; "UK" is not ISO but is what people write), keyed as `_country_key` writes them.
COUNTRY_ALIASES: dict[str, str] = {
    **dict.fromkeys(["uk", "greatbritain", "england", "scotland", "wales"], "gb"),
    **dict.fromkeys(["northernireland", "britain"], "gb"),
    **dict.fromkeys(["america", "unitedstatesamerica"], "us"),
    **dict.fromkeys(["uae", "emirates"], "ae"),
    "russia": "ru",
    "ivorycoast": "ci",
    "turkey": "tr",
    "holland": "nl",
    "vatican": "va",
    "vaticancity": "va",
    "palestine": "ps",
    "macedonia": "mk",
    "macedoniatheformeryugoslavrepublicof": "mk",
    "swaziland": "sz",
    "capeverde": "cv",
    "burma": "mm",
    "easttimor": "tl",
    "brunei": "bn",
    "micronesia": "fm",
    "democraticrepublicofthecongo": "cd",
    "drcongo": "cd",
    "korea": "kr",
    "republicofkorea": "kr",
    # Local names of the countries leads come from most often (our choice).
    "deutschland": "de",
    "osterreich": "at",
    "schweiz": "ch",
    "svizzera": "ch",
    "nederland": "nl",
    "belgie": "be",
    "polska": "pl",
    "zhongguo": "cn",
    "nippon": "jp",
    "nihon": "jp",
    "sverige": "se",
    "norge": "no",
    "danmark": "dk",
    "suomi": "fi",
    "hellas": "gr",
    "ellada": "gr",
    "espanya": "es",
}


def _country_key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c)[0] in "LN" and c.isalnum())


@functools.cache
def iso_alpha2() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (pycountry), and the few more phonenumbers uses as regions
    (XK Kosovo, AC Ascension, TA Tristan da Cunha): a lead's country is also its phone's
    region."""
    codes = {country.alpha_2.lower() for country in pycountry.countries}
    codes |= {code.lower() for code in phonenumbers.SUPPORTED_REGIONS if code.isalpha()}
    return frozenset(codes)


@functools.cache
def country_names() -> dict[str, str]:
    """Every country's English names (name, official and common name) and alpha-3 code,
    then its names in Spanish, French and Chinese, to its alpha-2 code; built once, on
    first use. A name two countries share in a translation is left out (ambiguous)."""
    english: dict[str, str] = {}
    for entry in pycountry.countries:
        code = entry.alpha_2.lower()
        english[_country_key(entry.alpha_3)] = code
        for attribute in ("name", "official_name", "common_name"):
            if text := getattr(entry, attribute, None):
                english.setdefault(_country_key(text), code)
    translated: dict[str, set[str]] = {}
    for language in COUNTRY_NAME_LANGUAGES:
        catalog = gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True
        )
        for entry in pycountry.countries:
            for attribute in ("name", "official_name", "common_name"):
                if text := getattr(entry, attribute, None):
                    key = _country_key(catalog.gettext(text))
                    translated.setdefault(key, set()).add(entry.alpha_2.lower())
    names = {key: codes.pop() for key, codes in translated.items() if len(codes) == 1}
    names.update(english)  # English names win over a translation that reads the same
    names.update(COUNTRY_ALIASES)
    names.pop("", None)
    return names


def country(value: object) -> str | None:
    """ISO 3166-1 alpha-2, lowercase, from a code, an alpha-3 code or any country's name
    in English, Spanish, French or Chinese: `United States`, `USA`, `us` -> `us`;
    `España` -> `es`; `Côte d'Ivoire`, `Costa de Marfil` -> `ci`; `中国` -> `cn`."""
    key = _country_key(_text(value))
    if not key:
        return None
    if len(key) == 2 and key in iso_alpha2():
        return key
    return country_names().get(key)


# --- db -------------------------------------------------------------------------------------

MONTHS: dict[str, int] = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan", "enero", "ene", "janvier", "janv"),
            ("february", "feb", "febrero", "fevrier", "fevr", "fev"),
            ("march", "mar", "marzo", "mars"),
            ("april", "apr", "abril", "abr", "avril", "avr"),
            ("may", "mayo", "mai"),
            ("june", "jun", "junio", "juin"),
            ("july", "jul", "julio", "juillet", "juil"),
            ("august", "aug", "agosto", "ago", "aout"),
            ("september", "sep", "sept", "septiembre", "septembre", "setiembre"),
            ("october", "oct", "octubre", "octobre"),
            ("november", "nov", "noviembre", "novembre"),
            ("december", "dec", "diciembre", "dic", "decembre"),
        ],
        start=1,
    )
    for name in names
}

_ISO_DATE_RE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[t\s].*)?")
_COMPACT_DATE_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_YEAR_LAST_RE = re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4})")
_CJK_DATE_RE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?")
_WORDS_RE = re.compile(r"[a-z]+|\d+")


def _date(year: int, month: int, day: int) -> str | None:
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return None
    # Nobody alive was born before 1900, and nobody is born in the future; a date outside
    # that range is a typo that would never match.
    if born.year < 1900 or born > dt.date.today():
        return None
    return born.strftime("%Y%m%d")


def date_of_birth(value: object) -> str | None:
    """YYYYMMDD from `1997-02-16`, `19970216`, `2/16/1997`, `16.02.1997`, `16 Feb 1997`,
    `February 16, 1997`, `1997年2月16日`.

    Ambiguity: with slashes or dashes and the year last, the first number is the month
    (Meta's US default, and what Meta's own forms send) unless it cannot be a month
    (`16/02/1997`). Dots are the European day-first order. Two-digit years are refused.
    """
    text = _text(value).lower()
    if not text or len(text) > 40:
        return None
    if match := _COMPACT_DATE_RE.fullmatch(text):
        return _date(int(match[1]), int(match[2]), int(match[3]))
    if match := (_ISO_DATE_RE.fullmatch(text) or _CJK_DATE_RE.fullmatch(text)):
        return _date(int(match[1]), int(match[2]), int(match[3]))
    if match := _YEAR_LAST_RE.fullmatch(text):
        first, separator, second, year = int(match[1]), match[2], int(match[3]), int(match[4])
        if separator == "." or first > 12:
            return _date(year, second, first)
        return _date(year, first, second)
    # Month names: "16 feb 1997", "february 16, 1997", "16 de febrero de 1997".
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = _WORDS_RE.findall(ascii_text)
    words = [w for w in words if w not in ("de", "of", "the", "le", "th", "st", "nd", "rd")]
    numbers = [int(w) for w in words if w.isdigit()]
    months = [MONTHS[w] for w in words if w in MONTHS]
    if len(words) == 3 and len(months) == 1 and len(numbers) == 2:
        days = [n for n in numbers if n <= 31]
        years = [n for n in numbers if n >= 1000]
        if len(days) == 1 and len(years) == 1:
            return _date(years[0], months[0], days[0])
    return None


# --- ge -------------------------------------------------------------------------------------

GENDERS: dict[str, str] = {
    **dict.fromkeys(
        ["f", "female", "woman", "w", "mujer", "femenino", "femme", "feminin", "féminin",
         "weiblich", "frau", "feminino", "mulher", "donna", "femmina", "女", "女性"],
        "f",
    ),
    **dict.fromkeys(
        ["m", "male", "man", "hombre", "masculino", "homme", "masculin", "männlich",
         "mannlich", "mann", "homem", "uomo", "maschio", "男", "男性"],
        "m",
    ),
}  # fmt: skip


def gender(value: object) -> str | None:
    """`f` or `m`; any other answer (non-binary, prefer not to say) is left out."""
    return GENDERS.get(_letters_only(_text(value), keep_spaces=False))


# --- hashing --------------------------------------------------------------------------------

Normaliser = Callable[[object], str | None]


def hashed(value: object, normaliser: Normaliser) -> str | None:
    """The SHA-256 of the normalised value; a SHA-256 given as input is passed through."""
    text = _text(value)
    if is_sha256(text):
        return text.lower()
    try:
        normalised = normaliser(value)
    except Exception:  # a normaliser bug must never stop a stage change
        logger.exception("Normalising a %s value failed; the key is left out", normaliser)
        return None
    return sha256(normalised) if normalised else None
