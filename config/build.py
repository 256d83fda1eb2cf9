"""What `manage.py deploy` builds and a server with DEBUG off cannot do without.

- The static files manifest (STATIC_ROOT/staticfiles.json, written by collectstatic for
  WhiteNoise's CompressedManifestStaticFilesStorage). Without it, or when it predates a
  static file the templates use, every page that links a stylesheet answers 500.
- The compiled translations (locale/*/LC_MESSAGES/*.mo, git-ignored build output).
  Without them the es/fr/zh UI silently shows English (only Django's own strings are
  translated, from Django's own catalogs).

`config/wsgi.py` and `config/asgi.py` call `require_build()` when DEBUG is off, so such a
server refuses to start and says why, instead of failing per request. The worker
(qcluster) is not checked: it renders no page and activates no language, so it needs
neither. Checks that only need the settings belong to `check --deploy`; this one needs
the build, which a checkout does not have until `manage.py deploy` ran.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import storages

from crm.translations import catalogs

# collectstatic's default ignore patterns: the files it would collect are the ones listed.
_IGNORED = ["CVS", ".*", "*~"]


def _shown(path: Path) -> str:
    """A path as an operator reads it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(settings.BASE_DIR))
    except ValueError:
        return str(path)


def _static_files() -> set[str]:
    """The names collectstatic would collect (and so put in the manifest)."""
    names: set[str] = set()
    for finder in get_finders():
        for path, source in finder.list(_IGNORED):
            prefix = getattr(source, "prefix", None)
            names.add(f"{prefix}/{path}" if prefix else path)
    return names


def static_problems() -> list[str]:
    try:
        storage = storages["staticfiles"]  # a manifest storage reads its manifest here
        if not isinstance(storage, ManifestFilesMixin):
            return []  # files are served as they are (DEBUG, tests): nothing to build
        manifest = storage.manifest_storage.path(storage.manifest_name)
        # Read from disk, not the storage's copy: that one was loaded when it was made.
        if storage.read_manifest() is None:
            return [
                f"the static files manifest {manifest} is missing (collectstatic has not "
                "run into STATIC_ROOT): every page would answer 500"
            ]
        hashed, _ = storage.load_manifest()
    except ValueError as error:
        return [f"the static files manifest in {settings.STATIC_ROOT} cannot be read: {error}"]
    unlisted = sorted(_static_files() - set(hashed))
    if unlisted:
        return [
            f"the static files manifest {manifest} lacks {len(unlisted)} of the code's "
            f"static files (e.g. {unlisted[0]}): collectstatic ran for an older version, "
            "and pages using them would answer 500"
        ]
    return []


def catalog_problems() -> list[str]:
    problems = []
    for po in catalogs():
        mo = po.with_suffix(".mo")
        if not mo.exists():
            problems.append(f"{_shown(mo)} is missing: that language would show English")
        elif mo.stat().st_mtime < po.stat().st_mtime:
            problems.append(f"{_shown(mo)} is older than its .po: new strings would show English")
    return problems


def build_problems() -> list[str]:
    return static_problems() + catalog_problems()


def require_build() -> None:
    """Raise ImproperlyConfigured, naming each missing piece and the command that builds
    it, unless the static manifest and the compiled catalogs are in place."""
    problems = build_problems()
    if problems:
        listed = "".join(f"\n  - {problem}" for problem in problems)
        raise ImproperlyConfigured(
            f"Leadloop is not ready to serve with DEBUG off:{listed}\n"
            "Run `python manage.py deploy` with the same settings (it migrates, collects the "
            "static files, compiles the translations and runs check --deploy), then start "
            "the server again. See docs/deploy.md."
        )
