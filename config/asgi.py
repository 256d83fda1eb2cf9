import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_asgi_application()

from django.conf import settings  # noqa: E402 - configured by the line above

if not settings.DEBUG:
    from config.build import require_build

    # As config/wsgi.py: no start without the static manifest and compiled translations.
    require_build()
