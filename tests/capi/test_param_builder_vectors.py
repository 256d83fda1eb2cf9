"""capi.normalize against the published test vectors of Meta's normalisation library,
capi-param-builder (tests/fixtures/capi_param_builder/vectors.json: source, licence, and
the reason for every vector where we normalise otherwise; docs/normalisation.md)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from capi import normalize
from tests.conftest import FIXTURES

VECTORS = json.loads((FIXTURES / "capi_param_builder" / "vectors.json").read_text())
NORMALISERS: dict[str, Callable[[str], str | None]] = {
    "fn_ln": normalize.name,
    "country": normalize.country,
    "st": normalize.state,
    # The library has no region; Leadloop reads national numbers in DEFAULT_PHONE_REGION.
    "ph": lambda value: normalize.phone(value, region="US"),
    "ct": normalize.city,
    "zp": normalize.zip_code,
    "em": normalize.email,
    "db": normalize.date_of_birth,
    "ge": normalize.gender,
}


def test_every_key_we_send_is_covered():
    assert set(VECTORS["vectors"]) == set(NORMALISERS)
    assert all(VECTORS["vectors"][key] for key in NORMALISERS)


@pytest.mark.parametrize("key", sorted(NORMALISERS))
def test_library_vectors(key):
    """Each vector gives the library's value, or ours with the reason we differ (and a
    deviation written down is one still)."""
    wrong = []
    for vector in VECTORS["vectors"][key]:
        ours = NORMALISERS[key](vector["input"])
        if "why" in vector:
            assert vector["why"] in VECTORS["reasons"], vector
            assert vector["ours"] != vector["library"], vector
            expected = vector["ours"]
        else:
            expected = vector["library"]
        if ours != expected:
            wrong.append((vector["input"], expected, ours))
    assert wrong == []


def test_we_agree_with_the_library_on_its_canonical_examples():
    """The cases the library's tests call its example data, and the ones Meta's
    documentation shows, are never a deviation."""
    examples = {
        ("fn_ln", "John Smith"): "johnsmith",
        ("fn_ln", "  Mary-Jane  O'Connor  "): "maryjaneoconnor",
        ("country", "       United States       "): "us",
        ("country", "Georgia"): "ge",
        ("st", "    California.   "): "ca",
        ("st", "Calif."): "ca",
        ("st", "Fla."): "fl",
        ("st", "Mass."): "ma",
        ("ph", "+1 (616) 954-78 88"): "16169547888",
        ("ph", "+001 (616) 954-78 88"): "16169547888",
        ("zp", "90210-1234"): "90210",
    }
    vectors = {(key, v["input"]): v for key, rows in VECTORS["vectors"].items() for v in rows}
    for (key, value), expected in examples.items():
        assert vectors[key, value]["library"] == expected
        assert "why" not in vectors[key, value]
        assert NORMALISERS[key](value) == expected
