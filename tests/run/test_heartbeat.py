"""The heartbeat line of `make run`: its counts, the last minute, and how it is written to
a terminal and to a file."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import time_machine
from django.db import OperationalError
from django.utils import timezone

from capi.models import ConversionEvent
from config.heartbeat import Counts, Heartbeat, LastMinute, leads_since, read_counts, render
from leads.models import Lead, PipelineStage, StageChange

NOON = dt.datetime(2026, 3, 1, 12, 4, 5)
COUNTS = Counts(leads=42, waiting=1, fetch_failed=0, sent=40, pending=2, failed=0, expired=0)
LINE = (
    "12:04:05  leads: 42, 3 in the last minute, 1 waiting for fetch"
    " | events: 40 sent, 2 pending, 0 failed"
)


def test_render() -> None:
    assert render(COUNTS, last_minute=3, at=NOON) == LINE


def test_render_names_failed_fetches_and_expired_events_when_there_are_some() -> None:
    counts = Counts(leads=9, waiting=0, fetch_failed=2, sent=5, pending=0, failed=1, expired=3)

    assert render(counts, last_minute=0, at=NOON) == (
        "12:04:05  leads: 9, 0 in the last minute, 0 waiting for fetch, 2 failed to fetch"
        " | events: 5 sent, 0 pending, 1 failed, 3 expired"
    )


def make_lead(number: int, status: str) -> Lead:
    return Lead.objects.create(leadgen_id=str(1000 + number), fetch_status=status)


def make_event(lead: Lead, status: str) -> ConversionEvent:
    stage = PipelineStage.objects.order_by("position").first()
    change = StageChange.objects.create(
        lead=lead, to_stage=stage, changed_at=timezone.now(), via="system"
    )
    extra = {"sent_at": timezone.now()} if status == "sent" else {}
    if status == "sending":
        extra = {"claim_token": "t", "claimed_at": timezone.now()}
    return ConversionEvent.objects.create(
        stage_change=change,
        lead=lead,
        event_id=f"leadloop-{change.pk}",
        event_name="Lead",
        event_time=timezone.now(),
        status=status,
        **extra,
    )


@pytest.mark.django_db
def test_read_counts_in_three_queries(django_assert_num_queries) -> None:
    statuses = ["complete"] * 4 + ["pending"] * 3 + ["fetching", "parked"] + ["failed"] * 2
    leads = [make_lead(i, status) for i, status in enumerate(statuses)]
    events = ["sent"] * 3 + ["pending", "sending"] + ["failed"] + ["expired"] * 2
    for lead, status in zip(leads, events, strict=False):
        make_event(lead, status)

    with django_assert_num_queries(3):
        counts = read_counts()

    assert counts == Counts(
        leads=11, waiting=5, fetch_failed=2, sent=3, pending=2, failed=1, expired=2
    )


@pytest.mark.django_db
def test_leads_since() -> None:
    old = make_lead(1, "complete")
    make_lead(2, "complete")
    Lead.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(minutes=2))

    assert leads_since(timezone.now() - dt.timedelta(minutes=1)) == 1


def test_last_minute_is_the_growth_since_the_newest_total_a_minute_old() -> None:
    minute = LastMinute()
    minute.seed(1000.0, total=10, recent=4)  # 6 leads until 940 s, 4 since

    assert minute.add(1000.0, 10) == 4
    assert minute.add(1030.0, 15) == 9
    assert minute.add(1060.0, 17) == 7  # since 1000 s (10)
    assert minute.add(1090.0, 17) == 2  # since 1030 s (15)
    assert minute.add(1200.0, 17) == 0
    assert minute.add(1210.0, 12) == 0  # deleted leads are no arrivals


def counts_with(leads: int) -> Counts:
    return Counts(leads=leads, waiting=1, fetch_failed=0, sent=40, pending=2, failed=0, expired=0)


@time_machine.travel(dt.datetime(2026, 3, 1, 12, 4, 5).astimezone(), tick=False)
def test_on_a_terminal_the_line_is_rewritten_in_place_every_two_seconds() -> None:
    totals = iter([42, 43, 45])
    stream = io.StringIO()
    heartbeat = Heartbeat(
        stream, tty=True, every=30, read=lambda: counts_with(next(totals)), recent=lambda _: 3
    )

    heartbeat.tick(100.0)
    heartbeat.tick(101.0)  # not due
    heartbeat.tick(102.0)
    heartbeat.tick(104.5)
    heartbeat.end_line()
    heartbeat.end_line()  # the line is finished once

    line = "12:04:05  leads: {}, {} in the last minute, 1 waiting for fetch | events: 40 sent, 2 pending, 0 failed"  # noqa: E501
    assert stream.getvalue() == (
        f"\r{line.format(42, 3)}\x1b[K\r{line.format(43, 4)}\x1b[K\r{line.format(45, 6)}\x1b[K\n"
    )


@time_machine.travel(dt.datetime(2026, 3, 1, 12, 4, 5).astimezone(), tick=False)
def test_to_a_file_a_line_every_interval() -> None:
    stream = io.StringIO()
    heartbeat = Heartbeat(stream, tty=False, every=30, read=lambda: COUNTS, recent=lambda _: 3)

    for now in (0.0, 2.0, 29.9, 30.0, 59.0):
        heartbeat.tick(now)
    heartbeat.end_line()

    assert stream.getvalue() == f"{LINE}\n{LINE}\n"


def test_a_long_line_is_cut_to_the_terminal_s_width(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    stream = io.StringIO()

    Heartbeat(stream, tty=True, every=30, read=lambda: COUNTS, recent=lambda _: 3).tick(0.0)

    assert len(stream.getvalue()) == len("\r") + 39 + len("\x1b[K")


def test_zero_turns_it_off() -> None:
    stream = io.StringIO()
    heartbeat = Heartbeat(stream, tty=True, every=0, read=lambda: COUNTS, recent=lambda _: 3)

    heartbeat.tick(0.0)
    heartbeat.end_line()

    assert stream.getvalue() == ""


@time_machine.travel(dt.datetime(2026, 3, 1, 12, 4, 5).astimezone(), tick=False)
def test_a_database_that_does_not_answer_is_said_and_tried_again() -> None:
    answers: list[object] = [OperationalError("database is locked\nmore detail"), COUNTS]

    def read() -> Counts:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    stream = io.StringIO()
    heartbeat = Heartbeat(stream, tty=False, every=30, read=read, recent=lambda _: 3)

    heartbeat.tick(0.0)
    heartbeat.tick(30.0)

    assert stream.getvalue() == f"12:04:05  database not answering: database is locked\n{LINE}\n"
