"""REST API views: thin. Querysets start from `crm.access.visible_leads`, so a lead of a
page not granted to the caller is a 404 for every method; writes call crm.services."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from crm import services
from crm.access import visible_leads
from crm.api.filters import LeadFilter
from crm.api.serializers import (
    LeadSerializer,
    LeadUpdateSerializer,
    NoteSerializer,
    StageSerializer,
)
from crm.models import Note
from leads.models import Lead, PipelineStage, StageChange


class LeadViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = LeadSerializer
    filterset_class = LeadFilter

    def get_queryset(self) -> QuerySet[Lead]:
        return visible_leads(self.request.user).select_related(
            "page", "form", "stage", "assignment__owner"
        )

    @extend_schema(request=LeadUpdateSerializer, responses=LeadSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        lead = self.get_object()
        update = LeadUpdateSerializer(data=request.data, context={"lead": lead})
        update.is_valid(raise_exception=True)
        if "stage" in update.validated_data:
            services.move_lead(
                lead, stage=update.validated_data["stage"], by=request.user, via=StageChange.Via.API
            )
        if "owner" in update.validated_data:
            services.assign_owner(lead, owner=update.validated_data["owner"], by=request.user)
        return Response(LeadSerializer(self.get_queryset().get(pk=lead.pk)).data)


class LeadNoteViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Notes of one lead (`/api/v1/leads/{lead_id}/notes/`)."""

    serializer_class = NoteSerializer

    def lead(self) -> Lead:
        # DRF's get_object_or_404 turns a malformed id into a 404 (JSON) as well.
        return get_object_or_404(visible_leads(self.request.user), pk=self.kwargs["lead_pk"])

    def get_queryset(self) -> QuerySet[Note]:
        if getattr(self, "swagger_fake_view", False):  # schema generation has no lead
            return Note.objects.none()
        return self.lead().notes.select_related("author")

    def create(self, request: Request, *args: object, **kwargs: object) -> Response:
        lead = self.lead()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = services.add_note(lead, author=request.user, body=serializer.validated_data["body"])
        return Response(self.get_serializer(note).data, status=status.HTTP_201_CREATED)


class StageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = StageSerializer
    queryset = PipelineStage.objects.order_by("position", "id")
    lookup_field = "slug"
    pagination_class = None
    filter_backends: list = []
