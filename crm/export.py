"""CSV export of a filtered lead list, streamed: 100,000 leads never sit in memory, and
the first bytes leave before the last row is read.

Columns use the REST API's field names, then one column per question of the forms
involved (in the forms' order), then answers no question names, then the disclaimers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.utils import timezone

from crm.selectors import lead_answers, lead_disclaimers
from leads.export import Echo, csv_cell
from leads.models import Form, Lead

FIXED_COLUMNS = [
    "id",
    "leadgen_id",
    "created_time",
    "full_name",
    "email",
    "phone",
    "stage",
    "owner",
    "page",
    "page_name",
    "form",
    "form_name",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "platform",
    "is_organic",
    "fetch_status",
]
CHUNK = 2000


def question_keys(forms: Iterable[Form]) -> list[str]:
    keys: list[str] = []
    for form in forms:
        for question in form.questions if isinstance(form.questions, list) else []:
            key = question.get("key") if isinstance(question, dict) else None
            if isinstance(key, str) and key not in keys:
                keys.append(key)
    return keys


def lead_csv(leads: QuerySet[Lead], *, forms: Iterable[Form]) -> Iterator[str]:
    """CSV lines (with a BOM, so spreadsheet apps read UTF-8 names correctly) for every lead
    of `leads`, which must come from `visible_leads`. `forms` gives the answer columns."""
    keys = question_keys(forms)
    # A question named like a fixed column (`email`, `full_name`) gets its own header.
    headers = [f"answer_{key}" if key in FIXED_COLUMNS else key for key in keys]
    writer = csv.writer(Echo())
    # Question keys come from Meta's form definitions: a header is defused like any cell.
    header = [*FIXED_COLUMNS, *headers, "other_answers", "disclaimers"]
    yield "\ufeff" + writer.writerow([csv_cell(name) for name in header])
    rows = (
        leads.select_related("page", "form", "stage", "assignment__owner")
        .defer("graph_data")
        .iterator(chunk_size=CHUNK)
    )
    for lead in rows:
        in_form, others = lead_answers(lead)
        by_key = {answer.key: answer for answer in in_form}
        # A lead may answer a question of another form's list than the one it names.
        by_key |= {answer.key: answer for answer in others if answer.key in keys}
        assignment = getattr(lead, "assignment", None)
        created = timezone.localtime(lead.created_time) if lead.created_time else None
        fixed = [
            lead.pk,
            lead.leadgen_id,
            created,
            lead.full_name,
            lead.email,
            lead.phone,
            lead.stage.slug if lead.stage else "",
            assignment.owner.get_username() if assignment else "",
            lead.page.page_id if lead.page else "",
            lead.page.name if lead.page else "",
            lead.form.form_id if lead.form else "",
            lead.form.name if lead.form else "",
            lead.ad_id,
            lead.ad_name,
            lead.adset_id,
            lead.adset_name,
            lead.campaign_id,
            lead.campaign_name,
            lead.platform,
            lead.is_organic,
            lead.fetch_status,
        ]
        answers = [", ".join(by_key[key].values) if key in by_key else "" for key in keys]
        other = "; ".join(
            f"{answer.key}: {', '.join(answer.values)}"
            for answer in others
            if answer.key not in keys
        )
        disclaimers = "; ".join(
            f"{item.key}={'checked' if item.checked else 'unchecked'}"
            for item in lead_disclaimers(lead)
        )
        yield writer.writerow([csv_cell(value) for value in [*fixed, *answers, other, disclaimers]])
