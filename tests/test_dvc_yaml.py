"""dvc.yaml against the code: every project file a stage's script runs is among its deps.

DVC reruns a stage only when one of its deps changes, so a module that a stage imports
(directly or through other modules) but that dvc.yaml does not list would let an edit to the
recipe code leave stale models and metrics that `dvc status` calls current. The closure is
computed from the code itself, so the lists cannot drift.
"""

from __future__ import annotations

import ast
import shlex
from pathlib import Path

import pytest
import yaml
from code_imports import REPO_ROOT, import_nodes, imported_modules, module_file

from pricer import layout

PACKAGE_DATA_SUFFIXES = {".json", ".yaml", ".yml", ".txt", ".csv", ".parquet"}
STAGES = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def import_closure(script: Path) -> set[Path]:
    """The project files that running ``script`` may execute or read as package data."""
    seen: set[str] = set()
    pending = imported_modules(script)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending |= imported_modules(module_file(module)) - seen
    files = {module_file(module) for module in seen}
    data = {path for source in files for path in source.parent.iterdir()
            if path.suffix in PACKAGE_DATA_SUFFIXES and path.is_file()}
    return {path.relative_to(REPO_ROOT) for path in files | data}


def stage_script(stage: dict) -> Path:
    words = shlex.split(stage["cmd"])
    return Path(next(word for word in words if word.endswith(".py")))


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_module_a_stage_runs_is_among_its_deps(name):
    stage = STAGES[name]
    script = stage_script(stage)
    closure = import_closure(REPO_ROOT / script) | {script}
    missing = sorted(str(path) for path in closure if not covered(path, stage["deps"]))
    assert not missing, f"dvc.yaml stage {name} runs these files but does not list them in deps: {missing}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_lists_no_source_file_it_does_not_run(name):
    stage = STAGES[name]
    closure = import_closure(REPO_ROOT / stage_script(stage)) | {stage_script(stage)}
    listed = [Path(dep) for dep in stage["deps"] if dep.startswith(("src/", "stages/"))]
    stale = [str(dep) for dep in listed if not any(path == dep or dep in path.parents for path in closure)]
    assert not stale, f"dvc.yaml stage {name} lists deps its code never runs (rename or removal?): {stale}"


def test_fetch_and_vectorize_do_not_import_torch():
    for name in ("fetch", "vectorize"):
        closure = import_closure(REPO_ROOT / stage_script(STAGES[name])) | {stage_script(STAGES[name])}
        importers = [str(path) for path in closure if path.suffix == ".py"
                     and any(module.split(".")[0] == "torch" for module in _all_imports(REPO_ROOT / path))]
        assert not importers, f"{name} imports torch through {importers}"


def _all_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in import_nodes(path):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_stage_calls_the_facade_whose_imports_the_closure_leaves_out():
    facade_names = {"load_model", "predict"}
    for name, stage in STAGES.items():
        for path in import_closure(REPO_ROOT / stage_script(stage)) | {stage_script(stage)}:
            if path.suffix != ".py":
                continue
            tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
            uses = [node for node in ast.walk(tree)
                    if (isinstance(node, ast.Attribute) and node.attr in facade_names
                        and isinstance(node.value, ast.Name) and node.value.id == "pricer")
                    or (isinstance(node, ast.ImportFrom) and node.module == "pricer"
                        and facade_names & {alias.name for alias in node.names})]
            assert not uses, f"{path} (in stage {name}) calls pricer's facade; list its imports in the closure"


def test_the_closure_follows_imports_through_modules(tmp_path):
    # The stage scripts' own closures prove nothing if the walk misses indirection: check it
    # on the real train stage, which reaches the training loop only through the runner.
    closure = import_closure(REPO_ROOT / "stages/train.py")
    assert Path("src/pricer/training/loop.py") in closure and Path("src/pricer/training/__init__.py") in closure
    assert Path("src/pricer/__init__.py") in closure
    assert Path("src/pricer/models.py") in closure  # through runner -> models and predictor -> models


def test_layout_paths_are_the_ones_dvc_yaml_declares():
    declared = set()
    for stage in STAGES.values():
        for section in ("outs", "metrics"):
            for entry in stage.get(section, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    expected = {str(layout.RAW_DIR), str(layout.FETCH_REPORT), str(layout.FEATURES_DIR),
                str(layout.PREDICTIONS_CSV), str(layout.BANDS_CSV), str(layout.BASELINES_JSON),
                str(layout.COMPARISON_JSON)}
    for name in layout.MODEL_NAMES:
        expected |= {str(layout.model_dir(name)), str(layout.checkpoint_file(name)), str(layout.history_csv(name)),
                     str(layout.train_metrics(name)), str(layout.test_metrics(name))}
    ensemble = layout.ENSEMBLE_NAME
    expected |= {str(layout.model_dir(ensemble)), str(layout.train_metrics(ensemble)),
                 str(layout.test_metrics(ensemble))}
    assert declared == expected


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_checks_the_outputs_dvc_yaml_declares_for_it(name):
    """What a stage refuses to write outside the project (layout.stage_outputs) is what it writes."""
    declared = set()
    for section in ("outs", "metrics"):
        for entry in STAGES[name].get(section, []):
            declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    assert {path.as_posix() for path in layout.stage_outputs(name)} == declared


def test_every_model_and_the_ensemble_are_declared_as_dvc_model_artifacts():
    artifacts = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["artifacts"]
    assert set(artifacts) == set(layout.PREDICTOR_NAMES)
    for name, artifact in artifacts.items():
        assert artifact["path"] == layout.model_dir(name).as_posix() and artifact["type"] == "model"
        assert artifact["desc"] and name in artifact["labels"]
        assert any(layout.model_dir(name).as_posix() in stage.get("outs", []) for stage in STAGES.values())
