from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The built-in Meta sandbox: `manage.py meta_sandbox` and the page of the conversion
    events it received. `sandbox.server` itself does not need Django."""

    name = "sandbox"
    verbose_name = "Meta sandbox"
