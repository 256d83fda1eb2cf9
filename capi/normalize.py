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

This module has one normaliser a key, and the hashing. How text is folded first is
capi.folding's; the names and codes of countries and US states are capi.places'.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable

import phonenumbers

from capi import places
from capi.folding import as_text, compact, country_key

logger = logging.getLogger(__name__)

SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


def is_sha256(value: str) -> bool:
    return bool(SHA256_RE.fullmatch(value))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- em -------------------------------------------------------------------------------------

# One @, something on each side, a dot in the domain, no spaces. Deliberately not RFC 5322:
# the point is to leave out answers that are clearly not an address ("n/a", "no tengo").
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def email(value: object) -> str | None:
    text = as_text(value).lower()
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
    text = as_text(value)
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
        for char in as_text(value).lower()
        if unicodedata.category(char)[0] in "LM" or unicodedata.category(char) == "Nd"
    ]
    # NFC again: dropping a character can leave combining marks that compose anew.
    normalised = unicodedata.normalize("NFC", "".join(kept))
    return normalised if any(char.isalpha() for char in normalised) else None


def split_full_name(value: object) -> tuple[str | None, str | None]:
    """`Jürgen Müller` -> (`jürgen`, `müller`); one word is a first name only. Middle names
    are dropped: Meta matches first and last names separately.

    Chinese and Korean names put the family name first, usually with no space between the
    two (`王伟`, `김민준`): the family name is the first character (or a known two-character
    one, `欧阳`, `남궁`), the rest is the given name. Written with a space (`王 伟`), the
    first word is the family name. A four-character Han name is split two and two (most
    are Japanese, `佐藤花子`, or Chinese with a two-character family name); a longer one,
    or one mixing scripts (kana), cannot be split by its letters and is a first name
    only, as before."""
    words = [word for word in map(name, as_text(value).split()) if word]
    if not words:
        return None, None
    east_asian = _east_asian_split(words)
    if east_asian is not None:
        return east_asian
    if len(words) == 1:
        return words[0], None
    return words[0], words[-1]


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3]+")
# Two-character family names (the common ones); every other one is a single character.
COMPOUND_FAMILY_NAMES = frozenset(
    [
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "长孙",
        "宇文",
        "夏侯",
        "轩辕",
        "端木",
        "独孤",
        "南宫",
        "西门",
        "歐陽",
        "司馬",
        "諸葛",
        "東方",
        "長孫",
        "軒轅",
        "獨孤",
        "南宮",
        "남궁",
        "황보",
        "제갈",
        "선우",
        "독고",
        "사공",
        "서문",
    ]
)


def _east_asian_split(words: list[str]) -> tuple[str, str] | None:
    if not all(_HAN.fullmatch(word) or _HANGUL.fullmatch(word) for word in words):
        return None
    if len(words) > 1:  # family name first, then the given name
        return "".join(words[1:]), words[0]
    (text,) = words
    if len(text) < 2 or len(text) > 4:
        return None
    family = 2 if text[:2] in COMPOUND_FAMILY_NAMES or len(text) == 4 else 1
    if len(text) - family < 1:
        return None
    return text[family:], text[:family]


def city(value: object) -> str | None:
    """Lowercase, no punctuation, no spaces: `New York` -> `newyork`."""
    return compact(as_text(value)) or None


def state(value: object, *, country: str | None = None) -> str | None:
    """US: the 2-letter code, from a name, a code or an abbreviation (`California`, `CA`,
    `Calif.` -> `ca`). Elsewhere: lowercase, no punctuation, no spaces (`Île-de-France`
    -> `îledefrance`), as Meta's documentation says for states outside the US.

    With the country unknown, a US state name or code is taken as one: the form's state
    question is a US question far more often than not.
    """
    letters = compact(as_text(value))
    if not letters:
        return None
    if country in (None, "us"):
        # US names are ASCII: `Califórnia` (Portuguese) is California, as in capi-param-
        # builder; a name elsewhere keeps its accents (Meta: UTF-8).
        folded = country_key(letters)
        if folded in places.us_state_codes():
            return folded
        if folded in places.us_states():
            return places.us_states()[folded]
        if country == "us":
            return None  # not a US state: Meta could never match it
    return letters


# --- zp -------------------------------------------------------------------------------------

US_ZIP_RE = re.compile(r"(\d{5})(?:-?\d{4})?")
UK_POSTCODE_RE = re.compile(r"([a-z]{1,2}\d[a-z\d]?)(\d)[a-z]{2}")


def zip_code(value: object, *, country: str | None = None) -> str | None:
    """Lowercase, no spaces or dashes. US: the first 5 digits (`94035-1234` -> `94035`).
    UK: area, district and sector (`SW1A 1AA` -> `sw1a1`), as Meta asks."""
    text = as_text(value).lower()
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


def country(value: object) -> str | None:
    """ISO 3166-1 alpha-2, lowercase, from a code, an alpha-3 code or any country's name
    in English, Spanish, French or Chinese: `United States`, `USA`, `us` -> `us`;
    `España` -> `es`; `Côte d'Ivoire`, `Costa de Marfil` -> `ci`; `中国` -> `cn`."""
    key = country_key(as_text(value))
    if not key:
        return None
    if len(key) == 2 and key in places.iso_alpha2():
        return key
    return places.country_names().get(key)


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
    text = as_text(value).lower()
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
    return GENDERS.get(compact(as_text(value)))


# --- hashing --------------------------------------------------------------------------------

Normaliser = Callable[[object], str | None]


def hashed(value: object, normaliser: Normaliser) -> str | None:
    """The SHA-256 of the normalised value; a SHA-256 given as input is passed through."""
    text = as_text(value)
    if is_sha256(text):
        return text.lower()
    try:
        normalised = normaliser(value)
    except Exception:  # a normaliser bug must never stop a stage change
        logger.exception("Normalising a %s value failed; the key is left out", normaliser)
        return None
    return sha256(normalised) if normalised else None
