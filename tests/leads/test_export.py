"""`csv_cell`, the one rule that defuses spreadsheet formulas in both CSV exports (the admin's
and the sales UI's), for headers and values alike."""

from __future__ import annotations

import datetime as dt

import pytest

from leads.export import csv_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("+", "'+"),
        ("\tTAB", "'\tTAB"),
        ("\r=1", "'\r=1"),
        # A line feed first: the cell shows blank and the formula sits on its second line.
        ("\n=HYPERLINK(1)", "'\n=HYPERLINK(1)"),
        # Full-width and small look-alikes, which spreadsheets fold to = + - @.
        ("\uff1dHYPERLINK(1)", "'\uff1dHYPERLINK(1)"),
        ("\uff0b1+1", "'\uff0b1+1"),
        ("\uff0d1+1", "'\uff0d1+1"),
        ("\uff20SUM(A1)", "'\uff20SUM(A1)"),
        ("\ufe661+1", "'\ufe661+1"),
        ("\ufe6bSUM(A1)", "'\ufe6bSUM(A1)"),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_prefixed(value, cell):
    assert csv_cell(value) == cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("+34 612 345 678", "+34 612 345 678"),
        ("-(0)30 1234", "-(0)30 1234"),
        ("\uff0b34 612 345 678", "\uff0b34 612 345 678"),
        ("Jürgen = Müller", "Jürgen = Müller"),
        ("名前", "名前"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (12, "12"),
        (dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.UTC), "2025-01-02T03:04:00+00:00"),
    ],
)
def test_data_is_left_as_it_is(value, cell):
    assert csv_cell(value) == cell
