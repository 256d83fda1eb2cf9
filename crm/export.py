"""The sales UI's CSV export of a filtered lead list, written by the one lead export writer
(`leads.export.csv_lines`): streamed, 100,000 leads never sit in memory.

Columns use the REST API's field names, then one column per question of the forms
involved (in the forms' order), then answers no question names, then the disclaimers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from core.meta import AD_FIELDS
from crm.selectors import lead_answers, lead_disclaimers
from leads.export import (
    FIRST_COLUMNS,
    RELATED,
    Columns,
    answers_text,
    csv_lines,
    disclaimers_text,
    named_columns,
)
from leads.models import Form, Lead

FIXED_COLUMNS = (
    *FIRST_COLUMNS,
    "owner",
    "page",
    "page_name",
    "form",
    "form_name",
    *AD_FIELDS,
    "platform",
    "is_organic",
    "fetch_status",
)


def _local_created(lead: Lead) -> Any:
    return timezone.localtime(lead.created_time) if lead.created_time else None


def _owner(lead: Lead) -> str:
    assignment = getattr(lead, "assignment", None)
    return assignment.owner.get_username() if assignment else ""


# The cells of FIXED_COLUMNS that are not the lead's own values as the admin writes them.
OWN_CELLS = {"created_time": _local_created, "owner": _owner}


def question_keys(forms: Iterable[Form]) -> list[str]:
    keys: list[str] = []
    for form in forms:
        for question in form.questions if isinstance(form.questions, list) else []:
            key = question.get("key") if isinstance(question, dict) else None
            if isinstance(key, str) and key not in keys:
                keys.append(key)
    return keys


def answer_columns(keys: Sequence[str]) -> Columns:
    """A column per question key, then `other_answers` and `disclaimers`."""
    # A question named like a fixed column (`email`, `full_name`) gets its own header.
    headers = [f"answer_{key}" if key in FIXED_COLUMNS else key for key in keys]

    def cells(lead: Lead) -> list[str]:
        in_form, others = lead_answers(lead)
        by_key = {answer.key: answer for answer in in_form}
        # A lead may answer a question of another form's list than the one it names.
        by_key |= {answer.key: answer for answer in others if answer.key in keys}
        answers = [", ".join(by_key[key].values) if key in by_key else "" for key in keys]
        other = answers_text(
            (answer.key, answer.values) for answer in others if answer.key not in keys
        )
        disclaimers = disclaimers_text((item.key, item.checked) for item in lead_disclaimers(lead))
        return [*answers, other, disclaimers]

    return Columns((*headers, "other_answers", "disclaimers"), cells)


def lead_csv(leads: QuerySet[Lead], *, forms: Iterable[Form]) -> Iterator[str]:
    """CSV lines (with a BOM, so spreadsheet apps read UTF-8 names correctly) for every lead
    of `leads`, which must come from `visible_leads`. `forms` gives the answer columns,
    read when the first line is."""
    columns = [
        named_columns(FIXED_COLUMNS, own=OWN_CELLS),
        answer_columns(question_keys(forms)),
    ]
    yield from csv_lines(leads, columns=columns, related=(*RELATED, "assignment__owner"))
