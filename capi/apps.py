from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class CapiConfig(AppConfig):
    name = "capi"
    verbose_name = _("Conversions API")

    def ready(self) -> None:
        from capi.outbox import record_stage_changes
        from capi.schedules import ensure_schedules
        from leads.pipeline import stage_changed

        # `leads` announces stage changes without knowing who listens; the outbox row is
        # written inside the stage-change transaction (see capi.outbox).
        stage_changed.connect(record_stage_changes, dispatch_uid="capi-conversion-outbox")
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="capi-schedules")
