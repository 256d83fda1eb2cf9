from django.apps import AppConfig


class LeadloopConfig(AppConfig):
    """The project package as an app, for what belongs to no domain app: `manage.py deploy`."""

    name = "config"
    verbose_name = "Leadloop"
