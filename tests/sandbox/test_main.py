"""`python -m sandbox` runs the sandbox as its own process, without Django."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests


def test_cli_serves_until_terminated() -> None:
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--token", "cli-token"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = line.strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:")
        response = requests.get(f"{url}/v24.0/me", params={"access_token": "cli-token"}, timeout=5)
        assert response.json()["name"] == "Sandbox System User"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()


# Makes `import django` fail, imports every sandbox module but the Django app's own
# (apps, views, urls, context processors, the management command), and prints what of the
# project besides the sandbox got imported.
WITHOUT_DJANGO = """
import importlib, pkgutil, sys
sys.modules["django"] = None
import sandbox, sandbox.__main__, sandbox.demo, sandbox.server
for module in pkgutil.iter_modules(sandbox.server.__path__):
    importlib.import_module("sandbox.server." + module.name)
print(sorted(n for n in sys.modules if n.partition(".")[0] in {"leads", "crm", "capi", "config"}))
"""


def test_the_sandbox_imports_without_django_or_the_apps() -> None:
    root = Path(__file__).resolve().parents[2]

    result = subprocess.run(  # noqa: S603 - a fixed argv
        [sys.executable, "-c", WITHOUT_DJANGO],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "[]\n"
