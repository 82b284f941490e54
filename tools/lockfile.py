"""requirements.lock against pyproject.toml: the digest the lock records of the dependencies it
was made from, and the pins it holds. Used by tools/relock (which writes the digest) and by
tests/test_packaging.py (which fails when the two disagree). ``python3 tools/lockfile.py`` prints
the digest of the current pyproject.toml."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
DIGEST_LINE = "# pyproject.toml dependencies sha256: "
# Installed by `pip install -e .` from pyproject's exact pin, never from the lock (tools/relock says why).
UNLOCKED = re.compile(r"^(torch|triton|nvidia-.+)$")


def declared(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, list[str]]:
    """``{"": [runtime requirements], "<extra>": [...]}`` as pyproject.toml declares them."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return {"": project.get("dependencies", []), **project.get("optional-dependencies", {})}


def dependency_digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    return hashlib.sha256(json.dumps(declared(pyproject), sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path = LOCK) -> str | None:
    first = lock.read_text(encoding="utf-8").splitlines()[0]
    return first.removeprefix(DIGEST_LINE) if first.startswith(DIGEST_LINE) else None


def pins(lock: Path = LOCK) -> dict[str, list[tuple[str, str, int]]]:
    """``{name: [(version, marker, number of hashes), ...]}`` (one entry per marker variant)."""
    found: dict[str, list[tuple[str, str, int]]] = {}
    current = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$", line)
        if pin:
            current = [pin[2], (pin[3] or "").strip(), 0]
            found.setdefault(pin[1].lower().replace("_", "-"), []).append(current)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            current[2] += 1
    return {name: [tuple(entry) for entry in entries] for name, entries in found.items()}


if __name__ == "__main__":
    print(dependency_digest())
