from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CapiConfig(AppConfig):
    name = "capi"
    verbose_name = _("Conversions API")
