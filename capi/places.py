"""Names and codes of countries and US states, for the `country` and `st` keys: built
from pycountry (ISO 3166-1 countries with their gettext translations, ISO 3166-2 US
subdivisions) on first use, plus what people type that pycountry does not hold. Keys are
written by capi.folding (`compact` for state names, `country_key` for countries)."""

from __future__ import annotations

import functools
import gettext
from typing import Any

import phonenumbers
import pycountry

from capi.folding import compact, country_key

# --- US states -----------------------------------------------------------------------------

# Names pycountry does not give, keyed as `compact` writes them.
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


@functools.cache
def us_states() -> dict[str, str]:
    """US state, district and territory names (pycountry's ISO 3166-2 subdivisions) and
    the abbreviations above, to two-letter codes; built once, on first use."""
    names = {
        compact(subdivision.name): subdivision.code.split("-")[1].lower()
        for subdivision in pycountry.subdivisions.get(country_code="US")
    }
    return {**names, **US_STATE_ALIASES, **US_STATE_ABBREVIATIONS}


@functools.cache
def us_state_codes() -> frozenset[str]:
    return frozenset(us_states().values())


# --- Countries -----------------------------------------------------------------------------

# The languages of the seeds besides English: pycountry's gettext catalogs (iso3166-1).
COUNTRY_NAME_LANGUAGES = ("es", "fr", "zh_CN", "zh_TW", "zh_HK")
# What people type that pycountry does not hold (former, short, local and constituent
# names; "UK" is not ISO but is what people write), keyed as `country_key` writes them.
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


@functools.cache
def iso_alpha2() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes (pycountry), and the few more phonenumbers uses as regions
    (XK Kosovo, AC Ascension, TA Tristan da Cunha): a lead's country is also its phone's
    region."""
    codes = {country.alpha_2.lower() for country in pycountry.countries}
    codes |= {code.lower() for code in phonenumbers.SUPPORTED_REGIONS if code.isalpha()}
    return frozenset(codes)


def _english_names(entry: Any) -> list[str]:
    """A pycountry country's name, official name and common name, those it has."""
    names = (
        getattr(entry, attribute, None) for attribute in ("name", "official_name", "common_name")
    )
    return [name for name in names if name]


@functools.cache
def country_names() -> dict[str, str]:
    """Every country's English names (name, official and common name) and alpha-3 code,
    then its names in Spanish, French and Chinese, to its alpha-2 code; built once, on
    first use. A name two countries share in a translation is left out (ambiguous)."""
    english: dict[str, str] = {}
    for entry in pycountry.countries:
        code = entry.alpha_2.lower()
        english[country_key(entry.alpha_3)] = code
        for text in _english_names(entry):
            english.setdefault(country_key(text), code)
    translated: dict[str, set[str]] = {}
    for language in COUNTRY_NAME_LANGUAGES:
        catalog = gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[language], fallback=True
        )
        for entry in pycountry.countries:
            for text in _english_names(entry):
                key = country_key(catalog.gettext(text))
                translated.setdefault(key, set()).add(entry.alpha_2.lower())
    names = {key: codes.pop() for key, codes in translated.items() if len(codes) == 1}
    names.update(english)  # English names win over a translation that reads the same
    names.update(COUNTRY_ALIASES)
    names.pop("", None)
    return names
