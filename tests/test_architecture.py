"""pricer's import direction: each module imports only from its own part or from the layers below.

The layers, lowest first, as the README's "Layout" states them. A part (``tracking``, say) may
import its own modules; parts that share a layer never import each other; nothing imports
upwards, not even inside a function (a function-level import is still a dependency, only a
later one). The facade (``pricer/__init__.py``: ``load_model``, ``predict``) stands above all.
"""

from __future__ import annotations

import re
from pathlib import Path

from code_imports import REPO_ROOT, direct_imports, package_modules

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "digests", "memory", "signals"),
    ("atomic", "layout", "console", "text", "engine"),
    ("params",),
    ("catalogue", "cores"),
    ("sources", "features"),
    ("models", "target", "metrics", "comparison"),
    ("batching", "intervals"),
    ("predictor",),
    ("ensemble",),
    ("training", "evaluation"),
    ("tracking",),
    ("cli",),
)
FACADE = "pricer"


def part(module: str) -> str:
    return module.split(".")[1]


def layer_of(module: str) -> int:
    return next(index for index, parts in enumerate(LAYERS) if part(module) in parts)


def import_graph() -> dict[str, set[str]]:
    return {module: direct_imports(path) - {module} for module, path in package_modules().items()}


def test_every_module_belongs_to_a_layer():
    unplaced = sorted({part(module) for module in package_modules() if module != FACADE}
                      - {name for parts in LAYERS for name in parts})
    assert not unplaced, f"place these parts of pricer in LAYERS (and the README's layout): {unplaced}"


def test_no_module_imports_against_the_layers():
    upward = []
    for module, imported in import_graph().items():
        if module == FACADE:
            continue
        for target in imported:
            if target == FACADE:
                upward.append(f"{module} -> the facade")
            elif part(target) != part(module) and layer_of(target) >= layer_of(module):
                upward.append(f"{module} (layer {layer_of(module)}) -> {target} (layer {layer_of(target)})")
    assert not upward, "imports against the direction of the layers:\n" + "\n".join(sorted(upward))


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            raise AssertionError("an import cycle: " + " -> ".join(cycle))


def test_the_check_sees_function_level_imports(tmp_path):
    # The direction must hold for lazy imports too: the reader must find one inside a function.
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from pricer.tracking import registry\n    import pricer.cli.app\n")
    assert direct_imports(source) == {"pricer.tracking.registry", "pricer.cli.app"}


def test_the_readme_states_the_same_layers():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"<!-- layers:start -->(.*?)<!-- layers:end -->", readme, re.S)
    assert stated, "README.md must state the layers between <!-- layers:start --> and <!-- layers:end -->"
    rows = [re.findall(r"`([a-z_]+)`", line) for line in stated.group(1).splitlines()]
    assert tuple(tuple(row) for row in rows if row) == LAYERS[::-1], "README's layers differ from LAYERS"


def test_stage_scripts_stay_thin():
    # A stage reads params, calls the library and writes outputs: no lambdas, no MLflow tags.
    for script in sorted((REPO_ROOT / "stages").glob("*.py")):
        text = script.read_text(encoding="utf-8")
        assert "lambda" not in text and "noqa" not in text, f"{script.name}: logic belongs in src/pricer"
        assert not re.search(r"^\s*(import mlflow|from mlflow)|run_tags|set_tags", text, re.M), (
            f"{script.name}: MLflow belongs in pricer.tracking")
        assert len(text.splitlines()) <= 60, f"{script.name}: {len(text.splitlines())} lines; stages stay short"


def test_mlflow_is_imported_only_under_tracking():
    outside = []
    for module, path in package_modules().items():
        if module.startswith("pricer.tracking"):
            continue
        text = Path(path).read_text(encoding="utf-8")
        if re.search(r"^\s*(import mlflow|from mlflow)", text, re.M):
            outside.append(module)
    assert not outside, f"MLflow code outside pricer.tracking: {outside}"


def test_no_private_mlflow_api():
    # MLflow's underscored names change without notice between releases.
    private = re.compile(r"(from mlflow[\w.]*\._\w+|from mlflow[\w.]* import .*\b_\w+|mlflow(\.\w+)*\._\w+)")
    found = [f"{module}: {match.group(0)}" for module, path in package_modules().items()
             for match in private.finditer(Path(path).read_text(encoding="utf-8"))]
    assert not found, f"private MLflow names: {found}"
