from django.contrib import admin
from django.urls import include, path

from leads.views import MetaWebhookView, healthz

urlpatterns = [
    path("webhooks/meta/", MetaWebhookView.as_view(), name="meta-webhook"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("crm.api.urls")),
    # Django's set_language view: the switcher POSTs here; the choice lives in a cookie.
    path("i18n/", include("django.conf.urls.i18n")),
    path("sandbox/", include("sandbox.urls")),
    # The sales UI owns the rest of the site, "/" included.
    path("", include("crm.urls")),
]

# JSON under /api/, the UI's page elsewhere (DEBUG off; Django's debug page otherwise).
handler404 = "crm.views.not_found"
