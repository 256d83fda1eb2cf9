from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate
from django.utils.translation import gettext_lazy as _


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = _("Leads")

    def ready(self) -> None:
        from leads.keys import forget_deleted
        from leads.models import Form, Page
        from leads.schedules import ensure_schedules

        # After every migrate, so the schedules exist on a fresh database and follow
        # configuration changes. django_q's tables exist by then (it is installed first).
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="leads-schedules")
        # The webhook's cache of page and form keys (leads.keys.KEYS) forgets a deleted row
        # at once. A signal, within this app, because Django announces every way a row is
        # deleted (the admin's page, its bulk action, a queryset) only through it.
        for model in (Page, Form):
            post_delete.connect(forget_deleted, sender=model, dispatch_uid=f"leads-keys-{model}")
