"""pyproject.toml, requirements.lock and the code agree: every third-party package the code
imports is declared, the lock was made from the declared dependencies (tools/relock), pins each
of them at an allowed version with hashes, and the README installs from it."""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys

import pytest
from code_imports import REPO_ROOT
from packaging.requirements import Requirement

sys.path.insert(0, str(REPO_ROOT / "tools"))
import lockfile  # noqa: E402  (tools/ is not a package: it holds the lock's helpers beside tools/relock)

STANDARD_LIBRARY = sys.stdlib_module_names
LOCAL_MODULES = {"pricer", "code_imports", "conftest", "helpers", "harness", "scoring", "lockfile"}


def third_party_imports(*folders: str) -> set[str]:
    names = set()
    for folder in folders:
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return {name for name in names if name not in STANDARD_LIBRARY and name not in LOCAL_MODULES
            and not any((REPO_ROOT / root / local).exists() for root in folders for local in (name, f"{name}.py"))}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_names(*groups: str) -> set[str]:
    declared = lockfile.declared()
    return {normalized(Requirement(line).name) for group in groups for line in declared[group]}


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed package's metadata: once


def distributions_of(module: str) -> set[str]:
    """The distributions that provide ``module`` here; by its own name where none is installed
    (a package for another Python version, such as tomli)."""
    return {normalized(name) for name in installed_distributions().get(module, [module])}


@pytest.mark.parametrize(("folders", "groups"), [
    (("src", "stages"), ("",)),
    (("tests", "benchmarks", "tools"), ("", "test", "team")),  # the tests run the team's services too
])
def test_every_imported_package_is_declared(folders, groups):
    declared = declared_names(*groups)
    undeclared = sorted(module for module in third_party_imports(*folders)
                        if not distributions_of(module) & declared)
    assert not undeclared, f"{'/'.join(folders)} import packages pyproject.toml does not declare: {undeclared}"


def test_the_lock_was_made_from_this_pyproject():
    assert lockfile.recorded_digest() == lockfile.dependency_digest(), (
        "requirements.lock was made from other dependencies than pyproject.toml declares: run tools/relock")


def test_the_lock_pins_every_declared_requirement_at_an_allowed_version_with_hashes():
    pins = lockfile.pins()
    problems = []
    for group, lines in lockfile.declared().items():
        for line in lines:
            requirement = Requirement(line)
            name = normalized(requirement.name)
            if lockfile.UNLOCKED.match(name):
                continue
            if name not in pins:
                problems.append(f"{line} ({group or 'dependencies'}): not in the lock")
            for version, marker, hashes in pins.get(name, []):
                if version not in requirement.specifier:
                    problems.append(f"{line}: locked at {version} {marker}")
                if not hashes:
                    problems.append(f"{name}=={version}: no hash")
    assert not problems, "requirements.lock disagrees with pyproject.toml (run tools/relock):\n" + "\n".join(problems)


def test_torch_is_pinned_exactly_and_the_lock_holds_no_machine_specific_build():
    torch_pins = [line for line in lockfile.declared()[""] if Requirement(line).name == "torch"]
    assert torch_pins == ["torch==2.13.0"]
    pins = lockfile.pins()
    assert not [name for name in pins if lockfile.UNLOCKED.match(name)]
    assert "+" not in lockfile.LOCK.read_text(encoding="utf-8").split("--hash")[0]
    assert not [(name, version) for name, entries in pins.items() for version, _, _ in entries if "+" in version]


def test_the_readme_installs_from_the_lock():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    first_command = re.search(r"```bash\n(.+?)\n```", readme).group(1)
    assert "pip install --require-hashes -r requirements.lock" in first_command
    assert first_command.index("requirements.lock") < first_command.index('pip install -e ".[test]"')


def test_this_environment_matches_the_lock():
    # What the README installed is what the lock pins (a stale venv fails here, not in a figure).
    pins = lockfile.pins()
    mismatched = []
    declared = lockfile.declared()
    for requirement in (Requirement(line) for group in ("", "test") for line in declared[group]):
        name = normalized(requirement.name)
        if lockfile.UNLOCKED.match(name) or name not in pins or (
                requirement.marker and not requirement.marker.evaluate()):
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            mismatched.append(f"{name}: not installed")
            continue
        if installed not in {version for version, _, _ in pins[name]}:
            mismatched.append(f"{name}: {installed} installed, lock has {[v for v, _, _ in pins[name]]}")
    assert not mismatched, "this environment differs from requirements.lock:\n" + "\n".join(mismatched)
