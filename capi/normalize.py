"""Customer information for the Conversions API: normalise the way Meta's documentation says
(META.md, "Customer information"), then SHA-256.

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
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable

import phonenumbers

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
        # `00` is the international prefix almost everywhere (no national number starts
        # with it); phonenumbers would only recognise it for the region given.
        if not text.startswith("+"):
            digits = digits[2:]
        number = _parse_valid("+" + digits, None)
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
    """First or last name: lowercase, no punctuation, UTF-8 kept (`Valéry` -> `valéry`)."""
    return _letters_only(_text(value), keep_spaces=True) or None


def split_full_name(value: object) -> tuple[str | None, str | None]:
    """`Jürgen Müller` -> (`jürgen`, `müller`); one word is a first name only. Middle names
    are dropped: Meta matches first and last names separately."""
    normalised = name(value)
    if not normalised:
        return None, None
    words = normalised.split()
    if len(words) == 1:
        return words[0], None
    return words[0], words[-1]


def city(value: object) -> str | None:
    """Lowercase, no punctuation, no spaces: `New York` -> `newyork`."""
    return _letters_only(_text(value), keep_spaces=False) or None


US_STATES: dict[str, str] = {
    "alabama": "al",
    "alaska": "ak",
    "arizona": "az",
    "arkansas": "ar",
    "california": "ca",
    "colorado": "co",
    "connecticut": "ct",
    "delaware": "de",
    "districtofcolumbia": "dc",
    "washingtondc": "dc",
    "florida": "fl",
    "georgia": "ga",
    "hawaii": "hi",
    "idaho": "id",
    "illinois": "il",
    "indiana": "in",
    "iowa": "ia",
    "kansas": "ks",
    "kentucky": "ky",
    "louisiana": "la",
    "maine": "me",
    "maryland": "md",
    "massachusetts": "ma",
    "michigan": "mi",
    "minnesota": "mn",
    "mississippi": "ms",
    "missouri": "mo",
    "montana": "mt",
    "nebraska": "ne",
    "nevada": "nv",
    "newhampshire": "nh",
    "newjersey": "nj",
    "newmexico": "nm",
    "newyork": "ny",
    "northcarolina": "nc",
    "northdakota": "nd",
    "ohio": "oh",
    "oklahoma": "ok",
    "oregon": "or",
    "pennsylvania": "pa",
    "rhodeisland": "ri",
    "southcarolina": "sc",
    "southdakota": "sd",
    "tennessee": "tn",
    "texas": "tx",
    "utah": "ut",
    "vermont": "vt",
    "virginia": "va",
    "washington": "wa",
    "westvirginia": "wv",
    "wisconsin": "wi",
    "wyoming": "wy",
    "americansamoa": "as",
    "guam": "gu",
    "northernmarianaislands": "mp",
    "puertorico": "pr",
    "usvirginislands": "vi",
    "virginislands": "vi",
}
US_STATE_CODES = frozenset(US_STATES.values())


def state(value: object, *, country: str | None = None) -> str | None:
    """US: the 2-letter code, from a name or a code (`California`, `CA` -> `ca`).
    Elsewhere: lowercase, no punctuation, no spaces (`Île-de-France` -> `îledefrance`).

    With the country unknown, a US state name or code is taken as one: the form's state
    question is a US question far more often than not.
    """
    compact = _letters_only(_text(value), keep_spaces=False)
    if not compact:
        return None
    if country in (None, "us"):
        if compact in US_STATE_CODES:
            return compact
        if compact in US_STATES:
            return US_STATES[compact]
        if country == "us":
            return None  # not a US state: Meta could never match it
    return compact


# --- zp -------------------------------------------------------------------------------------

US_ZIP_RE = re.compile(r"(\d{5})(?:-?\d{4})?")
UK_POSTCODE_RE = re.compile(r"([a-z]{1,2}\d[a-z\d]?)(\d)[a-z]{2}")


def zip_code(value: object, *, country: str | None = None) -> str | None:
    """Lowercase, no spaces or dashes. US: the first 5 digits (`94035-1234` -> `94035`).
    UK: area, district and sector (`SW1A 1AA` -> `sw1a1`), as Meta asks."""
    compact = re.sub(r"[\s\-]", "", _text(value).lower())
    if not compact or len(compact) > 12 or not compact.isalnum() or not compact.isascii():
        return None
    if country == "us" or (country is None and US_ZIP_RE.fullmatch(compact)):
        match = US_ZIP_RE.fullmatch(compact)
        return match.group(1) if match else None
    if country == "gb":
        match = UK_POSTCODE_RE.fullmatch(compact)
        return match.group(1) + match.group(2) if match else compact
    return compact


# --- country --------------------------------------------------------------------------------

# Every ISO 3166-1 alpha-2 code phonenumbers knows (it keeps them current); "001" and other
# non-geographic entries are not letters and drop out.
ISO_ALPHA2 = frozenset(code.lower() for code in phonenumbers.SUPPORTED_REGIONS if code.isalpha())

# Names (English and local) and alpha-3 codes of the countries leads come from most often,
# keyed as `_country_key` writes them: lowercase, accents and punctuation removed.
COUNTRY_NAMES: dict[str, str] = {
    # Americas
    "unitedstates": "us",
    "unitedstatesofamerica": "us",
    "usa": "us",
    "estadosunidos": "us",
    "etatsunis": "us",
    "america": "us",
    "canada": "ca",
    "can": "ca",
    "mexico": "mx",
    "mex": "mx",
    "brazil": "br",
    "brasil": "br",
    "bra": "br",
    "argentina": "ar",
    "arg": "ar",
    "chile": "cl",
    "chl": "cl",
    "colombia": "co",
    "col": "co",
    "peru": "pe",
    "per": "pe",
    "venezuela": "ve",
    "ecuador": "ec",
    "uruguay": "uy",
    "paraguay": "py",
    "bolivia": "bo",
    "costarica": "cr",
    "panama": "pa",
    "guatemala": "gt",
    "dominicanrepublic": "do",
    "republicadominicana": "do",
    "puertorico": "pr",
    # Europe
    "unitedkingdom": "gb",
    "greatbritain": "gb",
    "england": "gb",
    "scotland": "gb",
    "wales": "gb",
    "northernireland": "gb",
    "uk": "gb",  # not ISO, but what people type
    "gbr": "gb",
    "reinounido": "gb",
    "royaumeuni": "gb",
    "ireland": "ie",
    "irl": "ie",
    "spain": "es",
    "espana": "es",
    "espagne": "es",
    "esp": "es",
    "france": "fr",
    "francia": "fr",
    "fra": "fr",
    "germany": "de",
    "deutschland": "de",
    "alemania": "de",
    "allemagne": "de",
    "deu": "de",
    "italy": "it",
    "italia": "it",
    "italie": "it",
    "ita": "it",
    "portugal": "pt",
    "prt": "pt",
    "netherlands": "nl",
    "thenetherlands": "nl",
    "holland": "nl",
    "nederland": "nl",
    "nld": "nl",
    "belgium": "be",
    "belgique": "be",
    "belgie": "be",
    "bel": "be",
    "switzerland": "ch",
    "suisse": "ch",
    "schweiz": "ch",
    "che": "ch",
    "austria": "at",
    "osterreich": "at",
    "aut": "at",
    "sweden": "se",
    "norway": "no",
    "denmark": "dk",
    "finland": "fi",
    "poland": "pl",
    "polska": "pl",
    "czechrepublic": "cz",
    "czechia": "cz",
    "greece": "gr",
    "romania": "ro",
    "hungary": "hu",
    "ukraine": "ua",
    "russia": "ru",
    "russianfederation": "ru",
    "turkey": "tr",
    "turkiye": "tr",
    # Asia, Oceania, Africa, Middle East
    "china": "cn",
    "zhongguo": "cn",
    "中国": "cn",
    "中华人民共和国": "cn",
    "chn": "cn",
    "hongkong": "hk",
    "香港": "hk",
    "taiwan": "tw",
    "台湾": "tw",
    "japan": "jp",
    "日本": "jp",
    "southkorea": "kr",
    "korea": "kr",
    "republicofkorea": "kr",
    "india": "in",
    "ind": "in",
    "pakistan": "pk",
    "bangladesh": "bd",
    "indonesia": "id",
    "philippines": "ph",
    "vietnam": "vn",
    "thailand": "th",
    "malaysia": "my",
    "singapore": "sg",
    "australia": "au",
    "aus": "au",
    "newzealand": "nz",
    "southafrica": "za",
    "nigeria": "ng",
    "kenya": "ke",
    "egypt": "eg",
    "morocco": "ma",
    "maroc": "ma",
    "marruecos": "ma",
    "israel": "il",
    "saudiarabia": "sa",
    "unitedarabemirates": "ae",
    "uae": "ae",
}


def _country_key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c)[0] in "LN" and c.isalnum())


def country(value: object) -> str | None:
    """ISO 3166-1 alpha-2, lowercase: `United States`, `USA`, `us` -> `us`; `España` -> `es`."""
    key = _country_key(_text(value))
    if not key:
        return None
    if len(key) == 2 and key in ISO_ALPHA2:
        return key
    return COUNTRY_NAMES.get(key)


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
