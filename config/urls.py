from django.contrib import admin
from django.urls import path

from leads.views import MetaWebhookView, healthz

urlpatterns = [
    path("webhooks/meta/", MetaWebhookView.as_view(), name="meta-webhook"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
