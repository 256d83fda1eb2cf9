"""Write paths of the sales workspace. The UI, the API and the admin call these; each checks
access itself so no caller can forget to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from crm.access import can_access_lead
from crm.models import Assignment, Note
from leads.models import Lead, PipelineStage, StageChange
from leads.pipeline import move_stage

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def _require_access(user: AbstractBaseUser, lead: Lead) -> None:
    if not can_access_lead(user, lead):
        raise PermissionDenied(_("You have no access to this lead's page."))


def move_lead(
    lead: Lead, *, stage: PipelineStage, by: AbstractBaseUser, via: str
) -> StageChange | None:
    """Move a lead for a person (UI, API, admin): access checked, then the one stage-change
    service of `leads`, which records the change and triggers the conversion event."""
    _require_access(by, lead)
    if lead.stage_id is None and lead.fetch_status != Lead.FetchStatus.COMPLETE:
        # The lead enters the pipeline when its data arrives; moving it before would
        # report a stage to Meta for a lead we know nothing about yet.
        raise ValidationError(_("This lead's data has not arrived from Meta yet."))
    return move_stage(lead, stage=stage, by=by, via=via)


def assign_owner(
    lead: Lead, *, owner: AbstractBaseUser | None, by: AbstractBaseUser
) -> Assignment | None:
    """Give the lead an owner (None removes it). The owner must be able to see the lead."""
    _require_access(by, lead)
    with transaction.atomic():
        if owner is None:
            Assignment.objects.filter(lead=lead).delete()
            return None
        if not can_access_lead(owner, lead):
            raise ValidationError(
                _("%(user)s has no access to this lead's page.") % {"user": owner}
            )
        assignment, _created = Assignment.objects.update_or_create(
            lead=lead, defaults={"owner": owner, "assigned_by": by}
        )
    return assignment


def add_note(lead: Lead, *, author: AbstractBaseUser, body: str) -> Note:
    _require_access(author, lead)
    body = body.strip()
    if not body:
        raise ValidationError(_("A note cannot be empty."))
    return Note.objects.create(lead=lead, author=author, body=body)
