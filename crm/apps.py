from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = _("Sales workspace")

    def ready(self) -> None:
        from crm import access
        from leads import visibility

        # The admins of leads and capi show each user the rows of their pages by this
        # rule; leads never imports crm, so crm hands its rule over here.
        visibility.register(
            visibility.PageRule(
                sees_everything=access.sees_everything, visible_pages=access.visible_pages
            )
        )
