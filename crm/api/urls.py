from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from crm.api import views

router = DefaultRouter()
router.register("leads", views.LeadViewSet, basename="lead")
router.register("stages", views.StageViewSet, basename="stage")

notes = views.LeadNoteViewSet.as_view({"get": "list", "post": "create"})

urlpatterns = [
    path("", include(router.urls)),
    path("leads/<str:lead_pk>/notes/", notes, name="lead-notes"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script from `?script` instead of inline,
    # so the page runs under the CSP (no inline script); its template links our CSS.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="crm/api_docs.html"
        ),
        name="api-docs",
    ),
]
