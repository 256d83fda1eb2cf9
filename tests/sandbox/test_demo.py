"""The sandbox's demo leads: names written in each language's order, answers in the lead's
language, and the app reading the same name back from FIRST_NAME and LAST_NAME."""

from __future__ import annotations

import random

import pytest

from leads.lead_data import contact_columns
from sandbox import MetaSandbox
from sandbox.demo import (
    CALL_TIMES,
    FORMS,
    PEOPLE,
    ROOFS,
    SOLAR_FORM_ID,
    STORE_KEY,
    VISIT_FORM_ID,
    DemoFeed,
    Person,
)

SOLAR, VISIT = ({form["id"]: form for form in FORMS}[i] for i in (SOLAR_FORM_ID, VISIT_FORM_ID))


def person(full_name: str) -> Person:
    return next(p for p in PEOPLE if p.full_name == full_name)


def answers(lead: dict) -> dict[str, str]:
    return {item["name"]: item["values"][0] for item in lead["field_data"]}


@pytest.fixture
def feed() -> DemoFeed:
    demo = DemoFeed(MetaSandbox(), random.Random(7))
    demo.setup()
    return demo


def test_names_follow_their_language_s_order() -> None:
    # Every language of a demo person has its answers.
    assert {p.lang for p in PEOPLE} == set(ROOFS) == set(CALL_TIMES)
    names = {p.full_name: (p.given, p.family) for p in PEOPLE}
    assert names["王伟"] == ("伟", "王")
    assert names["李秀英"] == ("秀英", "李")
    assert names["佐藤花子"] == ("花子", "佐藤")
    assert names["김민준"] == ("민준", "김")
    assert names["Lucía García Pérez"] == ("Lucía", "García Pérez")
    assert names["Sofía Hernández López"] == ("Sofía", "Hernández López")
    assert names["Jérôme Lefèvre"] == ("Jérôme", "Lefèvre")
    assert names["Emma Johnson"] == ("Emma", "Johnson")


def test_the_solar_form_has_the_full_name_and_answers_in_the_lead_s_language(feed) -> None:
    wang = person("王伟")

    found = answers(feed.lead(wang, SOLAR))

    assert found["full_name"] == "王伟"
    assert found["email"] == "wang.wei@example.com"
    assert found["city"] == "上海"
    assert found["zip_code"] == "200000"
    assert found["3125558714412233"] in ("瓦片", "金属", "平顶")
    assert found["phone_number"].startswith("+86 138 ")


def test_the_visit_form_has_given_and_family_name_and_answers_in_the_lead_s_language(
    feed,
) -> None:
    wang = person("王伟")

    found = answers(feed.lead(wang, VISIT))

    assert (found["first_name"], found["last_name"]) == ("伟", "王")
    assert found[STORE_KEY] == "99213480"  # the Shanghai showroom
    assert found["when_can_we_call_you?"] in ("上午", "下午五点以后", "随时")


@pytest.mark.parametrize("who", PEOPLE, ids=lambda p: p.email)
def test_every_lead_answers_in_its_language_and_the_app_reads_its_name_back(feed, who) -> None:
    solar = answers(feed.lead(who, SOLAR))
    visit = answers(feed.lead(who, VISIT))

    assert solar["3125558714412233"] in ROOFS[who.lang]
    assert visit["when_can_we_call_you?"] in CALL_TIMES[who.lang]
    assert solar["city"] == who.city
    # One name, whichever form the lead filled in: the app joins FIRST_NAME and LAST_NAME
    # in the language's order.
    assert contact_columns(feed.lead(who, SOLAR)["field_data"])["full_name"] == who.full_name
    assert contact_columns(feed.lead(who, VISIT)["field_data"])["full_name"] == who.full_name


def test_new_leads_continue_from_the_id_they_are_given(feed) -> None:
    feed.next_id = 900_000_000_000_311

    leads = feed.new_leads(2)

    assert [lead["id"] for lead in leads] == ["900000000000311", "900000000000312"]
    assert feed.next_id == 900_000_000_000_313
