"""`user_data` of a Conversion Leads event, from a lead's answers: `lead_id` (unhashed) plus
every hashed key we can derive (META.md, "Customer information").

Answers come from the lead's standard questions in `field_data` first, then from the
columns extracted from it (email, phone, full name), which also hold what a CSV import
brought in. Each key is a list, as Meta expects, without duplicates.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Protocol

from django.conf import settings

from capi import normalize
from core.ids import meta_id_number
from leads.lead_data import EMAIL_KEYS, FULL_NAME_KEYS, PHONE_KEYS, ZIP_KEYS, answers

# The hashed keys, in the order Meta's documentation lists them; the admin's coverage
# summary reports the same keys.
MATCH_KEYS: tuple[str, ...] = ("em", "ph", "fn", "ln", "ct", "st", "zp", "country", "db", "ge")

FIRST_NAME_KEYS = ("first_name",)
LAST_NAME_KEYS = ("last_name",)
CITY_KEYS = ("city",)
STATE_KEYS = ("state", "province", "state_province", "region")
COUNTRY_KEYS = ("country",)
DOB_KEYS = ("date_of_birth", "dob", "birthday")
GENDER_KEYS = ("gender",)

# The lead columns `build_user_data` reads.
LEAD_FIELDS = ("pk", "leadgen_id", "field_data", "email", "phone", "full_name")


class LeadLike(Protocol):
    leadgen_id: str
    field_data: Any
    email: str
    phone: str
    full_name: str


def _values(found: dict[str, str], keys: tuple[str, ...], *extra: str) -> list[str]:
    values = [found[key] for key in keys if found.get(key, "").strip()]
    values.extend(value for value in extra if value and value.strip())
    return values


def _add(user_data: dict[str, Any], key: str, digest: str | None) -> None:
    if digest is None:
        return
    bucket = user_data.setdefault(key, [])
    if digest not in bucket:
        bucket.append(digest)


def build_user_data(lead: LeadLike) -> dict[str, Any]:
    """Never raises: a value that cannot be normalised is left out (normalize.hashed)."""
    found = answers(lead.field_data)
    user_data: dict[str, Any] = {}
    # The id rule every path applies (core.ids): what was stored as a lead is sent.
    number = meta_id_number(lead.leadgen_id)
    if number is not None:
        user_data["lead_id"] = number

    # The country first: it decides how phones, states and zips are read.
    countries = [normalize.country(v) for v in _values(found, COUNTRY_KEYS)]
    country = next((c for c in countries if c), None)
    region = (country or settings.DEFAULT_PHONE_REGION or "").upper() or None

    for value in _values(found, EMAIL_KEYS, lead.email):
        _add(user_data, "em", normalize.hashed(value, normalize.email))
    phone = partial(normalize.phone, region=region)
    for value in _values(found, PHONE_KEYS, lead.phone):
        _add(user_data, "ph", normalize.hashed(value, phone))

    first_names = _values(found, FIRST_NAME_KEYS)
    last_names = _values(found, LAST_NAME_KEYS)
    for value in first_names:
        _add(user_data, "fn", normalize.hashed(value, normalize.name))
    for value in last_names:
        _add(user_data, "ln", normalize.hashed(value, normalize.name))
    if not first_names or not last_names:
        # Only a full name: its first word is the first name, its last word the last name.
        for value in _values(found, FULL_NAME_KEYS, lead.full_name)[:1]:
            first, last = normalize.split_full_name(value)
            if not first_names and first:
                _add(user_data, "fn", normalize.sha256(first))
            if not last_names and last:
                _add(user_data, "ln", normalize.sha256(last))

    for value in _values(found, CITY_KEYS):
        _add(user_data, "ct", normalize.hashed(value, normalize.city))
    state = partial(normalize.state, country=country)
    for value in _values(found, STATE_KEYS):
        _add(user_data, "st", normalize.hashed(value, state))
    zip_code = partial(normalize.zip_code, country=country)
    for value in _values(found, ZIP_KEYS):
        _add(user_data, "zp", normalize.hashed(value, zip_code))
    for value in _values(found, COUNTRY_KEYS):
        _add(user_data, "country", normalize.hashed(value, normalize.country))
    for value in _values(found, DOB_KEYS):
        _add(user_data, "db", normalize.hashed(value, normalize.date_of_birth))
    for value in _values(found, GENDER_KEYS):
        _add(user_data, "ge", normalize.hashed(value, normalize.gender))

    # Meta's documented order, lead_id first, for a stable payload.
    return {key: user_data[key] for key in ("lead_id", *MATCH_KEYS) if key in user_data}


def match_keys(user_data: dict[str, Any] | None) -> list[str]:
    """The hashed keys an event carries, in Meta's order (none before it is built)."""
    return [key for key in MATCH_KEYS if (user_data or {}).get(key)]
