"""API representations. Serializers validate and shape data; writes go through services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from core.meta import AD_FIELDS
from crm.access import users_seeing_page
from crm.models import Note
from leads.lead_data import CONTACT_COLUMNS, OWN_COLUMNS
from leads.models import Lead, PipelineStage


class StageSerializer(serializers.ModelSerializer):
    class Meta:
        model = PipelineStage
        fields = ["slug", "name", "position", "event_name", "sends_conversion"]


class AnswerSerializer(serializers.Serializer):
    name = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField())


class DisclaimerSerializer(serializers.Serializer):
    checkbox_key = serializers.CharField()
    is_checked = serializers.CharField(help_text='"1" when checked, "" when not (as Meta sends).')


class LeadSerializer(serializers.ModelSerializer):
    page = serializers.CharField(
        source="page.page_id", default=None, read_only=True, allow_null=True
    )
    form = serializers.CharField(
        source="form.form_id", default=None, read_only=True, allow_null=True
    )
    form_name = serializers.CharField(source="form.name", default="", read_only=True)
    stage = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    owner = serializers.CharField(
        source="assignment.owner.get_username", default=None, read_only=True, allow_null=True
    )
    # Exactly as Meta sent them; the schema documents the usual shape.
    field_data = serializers.JSONField(read_only=True)
    custom_disclaimer_responses = serializers.JSONField(read_only=True)

    class Meta:
        model = Lead
        fields = [
            "id",
            "leadgen_id",
            "created_time",
            "page",
            "form",
            "form_name",
            *AD_FIELDS,
            "is_organic",
            "platform",
            *OWN_COLUMNS,
            *CONTACT_COLUMNS,
            "stage",
            "stage_changed_at",
            "owner",
            "source",
            "fetch_status",
            "fetch_error",
            "created_at",
        ]
        read_only_fields = fields


class LeadUpdateSerializer(serializers.Serializer):
    """PATCH body: move the lead (`stage`) and/or give it an owner (`owner`, null clears).

    With the lead in the context (`{"lead": lead}`), `owner` accepts only people who can
    see it, so a username that does not exist, an inactive one and one without access to
    the lead's page all get the same answer: any caller could otherwise tell which
    usernames exist. It also refuses such an owner before anything changes, rather than
    after the stage has moved.
    """

    stage = serializers.SlugRelatedField(
        slug_field="slug", queryset=PipelineStage.objects.all(), required=False
    )
    owner = serializers.SlugRelatedField(
        slug_field=get_user_model().USERNAME_FIELD,
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        allow_null=True,
        error_messages={"does_not_exist": _("No user called “{value}” can own this lead.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lead = self.context.get("lead")
        if lead is not None:
            self.fields["owner"].queryset = users_seeing_page(lead.page_id)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("Give `stage` and/or `owner`.")
        return attrs


class NoteSerializer(serializers.ModelSerializer):
    author = serializers.CharField(
        source="author.get_username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Note
        fields = ["id", "body", "author", "created_at"]
        read_only_fields = ["id", "author", "created_at"]
        extra_kwargs = {"body": {"trim_whitespace": True}}
