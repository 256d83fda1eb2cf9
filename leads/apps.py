from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = _("Leads")

    def ready(self) -> None:
        from leads.schedules import ensure_schedules

        # After every migrate, so the schedules exist on a fresh database and follow
        # configuration changes. django_q's tables exist by then (it is installed first).
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="leads-schedules")
