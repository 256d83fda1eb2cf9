"""Compile the UI's translations (.po -> .mo) with polib, so no machine needs GNU gettext.

`make run` (scripts/run.py) and the test session call this before anything renders; .mo
files are build output and are not committed.
"""

from __future__ import annotations

from pathlib import Path

import polib
from django.conf import settings


def catalogs() -> list[Path]:
    return sorted(
        po for folder in settings.LOCALE_PATHS for po in Path(folder).glob("*/LC_MESSAGES/*.po")
    )


def compile_catalogs(*, force: bool = False) -> list[Path]:
    """Write each catalog's .mo when it is missing or older than its .po; return those
    written. Fuzzy and untranslated entries are left out, as msgfmt does."""
    written = []
    for po in catalogs():
        mo = po.with_suffix(".mo")
        if not force and mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        catalog = polib.pofile(str(po))
        # Write beside and rename, so a process reading the catalog never sees half a file.
        partial = mo.with_suffix(".mo.tmp")
        catalog.save_as_mofile(str(partial))
        partial.replace(mo)
        written.append(mo)
    return written
