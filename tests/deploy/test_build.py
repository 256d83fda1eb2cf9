"""The check of what `manage.py deploy` builds (config/build.py), and the command itself,
in process: a small static tree and a one-entry catalog under tmp_path."""

from __future__ import annotations

import io
import os
from pathlib import Path

import polib
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from config.build import build_problems, catalog_problems, require_build, static_problems

MANIFEST_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"


@pytest.fixture
def static_tree(settings, tmp_path: Path) -> Path:
    """Production's storage, collecting one folder of ours (not every app's) into tmp."""
    source = tmp_path / "static"
    source.mkdir()
    (source / "app.css").write_text("body { color: #333 }\n")
    settings.STATICFILES_DIRS = [source]
    settings.STATICFILES_FINDERS = ["django.contrib.staticfiles.finders.FileSystemFinder"]
    settings.STATIC_ROOT = tmp_path / "root"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST_STORAGE}}
    return source


@pytest.fixture
def catalog(settings, tmp_path: Path) -> Path:
    """A Spanish catalog of one entry; returns its .po."""
    folder = tmp_path / "locale" / "es" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8", "Language": "es"}
    po.append(polib.POEntry(msgid="Pipeline", msgstr="Embudo"))
    po.save(str(folder / "django.po"))
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    return folder / "django.po"


def collectstatic() -> None:
    call_command("collectstatic", interactive=False, verbosity=0)


def test_without_collectstatic_the_manifest_is_missing(static_tree, tmp_path):
    assert static_problems() == [
        f"the static files manifest {tmp_path}/root/staticfiles.json is missing (collectstatic "
        "has not run into STATIC_ROOT): every page would answer 500"
    ]
    collectstatic()
    assert static_problems() == []


def test_a_manifest_older_than_the_code_is_named(static_tree, tmp_path):
    collectstatic()
    (static_tree / "board.js").write_text("// added after collectstatic ran\n")
    assert static_problems() == [
        f"the static files manifest {tmp_path}/root/staticfiles.json lacks 1 of the code's "
        "static files (e.g. board.js): collectstatic ran for an older version, and pages "
        "using them would answer 500"
    ]


def test_an_unreadable_manifest_is_named(static_tree, tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "staticfiles.json").write_text("{not json")
    assert static_problems() == [
        f"the static files manifest in {tmp_path}/root cannot be read: "
        "Couldn't load manifest 'staticfiles.json' (version 1.1)"
    ]


def test_storage_that_serves_files_as_they_are_needs_no_manifest():
    # The test settings' storage (as DEBUG's): the suite's own servers are not held up.
    assert static_problems() == []


def test_catalogs_missing_stale_and_compiled(catalog):
    mo = catalog.with_suffix(".mo")
    assert catalog_problems() == [f"{mo} is missing: that language would show English"]
    call_command("compile_translations", verbosity=0)
    assert catalog_problems() == []
    later = mo.stat().st_mtime + 10
    os.utime(catalog, (later, later))  # the .po changed (a pull) since it was compiled
    assert catalog_problems() == [f"{mo} is older than its .po: new strings would show English"]


def test_the_start_up_error_names_each_problem_and_the_command(static_tree, catalog, tmp_path):
    with pytest.raises(ImproperlyConfigured) as raised:
        require_build()
    assert str(raised.value) == (
        "Leadloop is not ready to serve with DEBUG off:\n"
        f"  - the static files manifest {tmp_path}/root/staticfiles.json is missing "
        "(collectstatic has not run into STATIC_ROOT): every page would answer 500\n"
        f"  - {catalog.with_suffix('.mo')} is missing: that language would show English\n"
        "Run `python manage.py deploy` with the same settings (it migrates, collects the "
        "static files, compiles the translations and runs check --deploy), then start the "
        "server again. See docs/deploy.md."
    )


def run_deploy() -> str:
    out = io.StringIO()
    call_command("deploy", stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_deploy_builds_everything_and_can_run_again(static_tree, catalog, tmp_path):
    for _ in range(2):  # idempotent: the second run finds everything in place
        output = run_deploy()
        headings = [line for line in output.splitlines() if line.startswith("[")]
        assert headings == [
            "[1/4] Applying database migrations",
            f"[2/4] Collecting static files into {tmp_path}/root",
            "[3/4] Compiling the translations",
            "[4/4] Checking the deployment",
        ]
        assert output.splitlines()[-1] == (
            "Ready to serve. Start (or restart) the web server, `gunicorn config.wsgi`, "
            "and the worker, `python manage.py qcluster`."
        )
        assert build_problems() == []
        assert polib.mofile(str(catalog.with_suffix(".mo")))[0].msgstr == "Embudo"
        assert (tmp_path / "root" / "staticfiles.json").exists()


@pytest.mark.django_db
def test_deploy_stops_at_the_failing_step(static_tree, catalog, tmp_path):
    # The manifest storage refuses a stylesheet that points at a file that is not there.
    (static_tree / "broken.css").write_text('body { background: url("missing.png") }\n')
    with pytest.raises(CommandError) as raised:
        run_deploy()
    message = str(raised.value)
    assert message.startswith(
        f"deploy stopped at step 2 (Collecting static files into {tmp_path}/root): "
    )
    assert message.endswith("Fix the cause and run `python manage.py deploy` again.")
    # Nothing after the failing step ran.
    assert not catalog.with_suffix(".mo").exists()
