"""OpenAPI: every operation documents the error body of `crm.api.errors`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(required=False, help_text="Validation errors by field.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# Authentication, permission, not found, method, rate limit: any operation may answer these.
COMMON_ERRORS = ("401", "403", "404", "405", "429")


class LeadloopAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = list(COMMON_ERRORS)
        # Requests with parameters or a body can be invalid.
        if self.method in ("POST", "PATCH", "PUT") or self._is_list_view():
            codes.insert(0, "400")
        for code in codes:
            responses.setdefault(
                code, self._get_response_for_code(ErrorSerializer, code, direction=direction)
            )
        return responses
