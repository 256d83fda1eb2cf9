"""The translation catalogs hold every string the code marks for translation.

`test_ui_i18n` checks each catalog entry is translated, but a string added to the code
and never extracted has no entry at all, and the es, fr and zh-hans UI shows it in
English. This runs Django's `makemessages` (GNU xgettext) over a copy of the sources and
compares what it extracts with the catalogs in the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ["es", "fr", "zh_Hans"]


def _msgids(path: Path) -> set[tuple[str | None, str]]:
    return {(e.msgctxt, e.msgid) for e in polib.pofile(str(path)) if not e.obsolete}


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")
def test_every_marked_string_has_a_catalog_entry(tmp_path):
    # The sources, without what is not marked for translation or not ours.
    skip = shutil.ignore_patterns(
        ".*", "__pycache__", "staticfiles", "test-artifacts", "tests", "bench", "*.sqlite3*"
    )
    shutil.copytree(ROOT, tmp_path / "src", ignore=skip)
    command = [sys.executable, "manage.py", "makemessages", "--no-obsolete", "-v", "0"]
    command += [f"-l{language}" for language in LANGUAGES]
    subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        command,
        cwd=tmp_path / "src",
        check=True,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "true", "LEADLOOP_ENV_FILE": "/nonexistent"},
    )
    for language in LANGUAGES:
        catalog = Path("locale") / language / "LC_MESSAGES" / "django.po"
        missing = _msgids(tmp_path / "src" / catalog) - _msgids(ROOT / catalog)
        assert not missing, (
            f"{catalog} lacks {sorted(missing)}: run makemessages (docs/development.md)"
        )
