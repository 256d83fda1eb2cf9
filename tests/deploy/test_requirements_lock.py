"""The requirements*.txt files are locks (`make lock`): every package pinned with `==` and
the hashes of its files, and the top-level pins of requirements*.in are the versions the
locks hold, so nobody edits one without regenerating the other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = sorted(ROOT.glob("requirements*.txt"))
# A requirement (with its environment marker, if any), then one or more hashes.
ENTRY = re.compile(r"(?P<requirement>\S+(?: ; .+?)?)(?: +--hash=sha256:[0-9a-f]{64})+")


def entries(path: Path) -> list[str]:
    """The file's logical lines (continuations joined), without comments and blank lines."""
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of a lock."""
    found = {}
    for entry in entries(path):
        requirement = Requirement(entry.split(" --hash", 1)[0])
        (specifier,) = requirement.specifier
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def top_level(path: Path) -> dict[str, str]:
    """{canonical name: version} of a .in file, following its `-r` includes."""
    found: dict[str, str] = {}
    for entry in entries(path):
        if entry.startswith("-r "):
            found |= top_level(path.parent / entry.removeprefix("-r ").strip())
            continue
        requirement = Requirement(entry)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", (path.name, entry)
        found[canonicalize_name(requirement.name)] = specifier.version
    return found


def test_the_locks_are_there():
    assert [path.name for path in LOCKS] == [
        "requirements-dev.txt",
        "requirements-uv.txt",
        "requirements.txt",
    ]


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_every_line_of_a_lock_is_an_exact_pin_with_hashes(lock):
    bad = []
    for entry in entries(lock):
        match = ENTRY.fullmatch(entry)
        specifiers = list(Requirement(match["requirement"]).specifier) if match else []
        exact = len(specifiers) == 1 and specifiers[0].operator == "=="
        if not (exact and "*" not in specifiers[0].version):
            bad.append(entry)
    assert entries(lock)
    assert bad == []


@pytest.mark.parametrize("lock", LOCKS, ids=lambda path: path.name)
def test_the_top_level_pins_are_the_locked_versions(lock):
    wanted = top_level(lock.with_suffix(".in"))
    locked = pins(lock)
    assert {name: locked.get(name) for name in wanted} == wanted


def test_the_dev_lock_installs_the_runtime_lock_unchanged():
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert {name: dev.get(name) for name in runtime} == runtime
