import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - configured by the line above

if not settings.DEBUG:
    from config.build import require_build

    # Refuse to start without the static manifest and the compiled translations, rather
    # than answer 500 on every page or show the es/fr/zh UI in English (config/build.py).
    require_build()
