"""Forms of the sales UI. They validate input only; the views hand the result to
`crm.services`, which checks access and does the writing."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from crm.labels import stage_name
from leads.models import PipelineStage


class StageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: PipelineStage) -> str:
        return stage_name(obj)


class MoveForm(forms.Form):
    stage = StageChoiceField(
        label=_("Move to stage"),
        queryset=PipelineStage.objects.order_by("position", "id"),
        to_field_name="slug",
        empty_label=None,
    )


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: AbstractBaseUser) -> str:
        full_name = obj.get_full_name() if hasattr(obj, "get_full_name") else ""
        return full_name or obj.get_username()


class OwnerForm(forms.Form):
    owner = OwnerChoiceField(
        label=_("Owner"),
        queryset=None,
        required=False,
        empty_label=_("Nobody (unassigned)"),
    )

    def __init__(self, *args: Any, owners: QuerySet, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = owners


class NoteForm(forms.Form):
    body = forms.CharField(
        label=_("Note"),
        max_length=10_000,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": _("Call summary, next step, anything useful…")}
        ),
    )
