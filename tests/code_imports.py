"""What pricer's own code imports, read from its source with ``ast`` (nothing is executed):
shared by the dvc.yaml deps check (tests/test_dvc_yaml.py) and the import-direction check
(tests/test_architecture.py)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE_ROOT = REPO_ROOT / "src"


def module_file(module: str) -> Path | None:
    """The file that defines ``module`` (``pricer.a.b``) in this project, or None."""
    base = SOURCE_ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


FACADE = SOURCE_ROOT / "pricer" / "__init__.py"


def import_nodes(path: Path) -> list[ast.stmt]:
    """The import statements that may run when ``path`` is used: all of them, lazy imports in
    functions included, except those under ``if TYPE_CHECKING:``, and except inside the
    functions of the ``pricer`` facade (``pricer.load_model``/``pricer.predict``, the users'
    API, which no stage calls: a test below checks that)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        is_type_checking = isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        is_facade_function = path == FACADE and isinstance(node, ast.FunctionDef)
        if is_type_checking or is_facade_function:
            skipped.update(id(inner) for inner in ast.walk(node))
    return [node for node in ast.walk(tree) if id(node) not in skipped and (
        isinstance(node, (ast.Import, ast.ImportFrom)) or _dynamic_import(node) is not None)]


def _dynamic_import(node: ast.AST) -> str | None:
    """``importlib.import_module("pricer.x")``: the module named by a literal, else None."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def imported_modules(path: Path) -> set[str]:
    """Every ``pricer`` module ``path`` imports, with the packages that importing each executes."""
    found: set[str] = set()
    for node in import_nodes(path):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call):
            names = [_dynamic_import(node)]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "pricer" or module_file(name) is None:
                continue  # another library, or a name imported from a module rather than a module
            parts = name.split(".")
            found.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return found


def direct_imports(path: Path) -> set[str]:
    """The ``pricer`` modules ``path`` names in its imports, each by its most specific module
    (``from pricer.tracking import registry`` is ``pricer.tracking.registry``): function-level
    and ``TYPE_CHECKING`` imports included, since they too say which way the code depends."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [[f"{node.module}.{alias.name}", node.module] for alias in node.names]
        elif isinstance(node, ast.Call) and _dynamic_import(node):
            candidates = [[_dynamic_import(node)]]
        else:
            continue
        for names in candidates:
            module = next((name for name in names if name.split(".")[0] == "pricer" and module_file(name)), None)
            if module is not None:
                found.add(module)
    return found


def package_modules() -> dict[str, Path]:
    """Every module of the ``pricer`` package, by dotted name."""
    modules = {}
    for path in sorted((SOURCE_ROOT / "pricer").rglob("*.py")):
        parts = path.relative_to(SOURCE_ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules
