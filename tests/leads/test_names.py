"""A lead's name from FIRST_NAME and LAST_NAME answers, in its language's order."""

from __future__ import annotations

import pytest

from leads.lead_data import contact_columns, join_name


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        ("伟", "王", "王伟"),
        ("花子", "佐藤", "佐藤花子"),
        ("さくら", "山田", "山田さくら"),  # a given name in hiragana
        ("민준", "김", "김민준"),
        ("Lucía", "García Pérez", "Lucía García Pérez"),
        ("Emma", "Johnson", "Emma Johnson"),
        # A surname in katakana is a foreign one: given name first, as Japanese writes it.
        ("ジョン", "スミス", "ジョン スミス"),
        ("Wei", "王", "Wei 王"),
        ("伟", "", "伟"),
        ("", "王", "王"),
        ("", "", ""),
    ],
)
def test_join_name(first: str, last: str, name: str) -> None:
    assert join_name(first, last) == name


def test_the_full_name_column_of_a_chinese_lead_has_no_space() -> None:
    field_data = [
        {"name": "first_name", "values": ["伟"]},
        {"name": "last_name", "values": ["王"]},
    ]

    assert contact_columns(field_data)["full_name"] == "王伟"
