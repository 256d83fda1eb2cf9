"""`python -m sandbox` runs the sandbox as its own process."""

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
