from django.contrib import admin
from django.urls import include, path

from leads.views import MetaWebhookView, healthz

urlpatterns = [
    path("webhooks/meta/", MetaWebhookView.as_view(), name="meta-webhook"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("crm.api.urls")),
    path("sandbox/", include("sandbox.urls")),
]
