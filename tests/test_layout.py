"""The layout's one-way dependencies (docs/architecture.md): what each part imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pixel_threshold

PACKAGE = Path(pixel_threshold.__file__).parent
CORE_PACKAGES = {"numpy", "threadpoolctl"}
HEAVY = {"tensorflow", "keras", "mlflow", "click", "PIL", "matplotlib", "sklearn", "ray", "tqdm"}


def imports(path: Path) -> set[str]:
    """The modules ``path`` imports when it runs, anywhere in it (absolute names;
    relative ones as ``pixel_threshold...``)."""
    names = set()
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):  # imports for type checking only do not load anything
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.level == 0 else f"pixel_threshold.{node.module}")
    return names


def modules_of(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def loaded_by(modules: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after importing ``modules``
    (comma-separated)."""
    code = f"import sys, {modules}; print(' '.join({{name.split('.')[0] for name in sys.modules}}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_core_imports_only_numpy_threadpoolctl_and_itself() -> None:
    for path in modules_of("attack"):
        for name in imports(path):
            top = name.split(".")[0]
            assert (
                top in sys.stdlib_module_names
                or top in CORE_PACKAGES
                or name.startswith("pixel_threshold.attack")
            ), f"{path.name} imports {name}"


def test_the_core_loads_no_framework_in_a_fresh_interpreter() -> None:
    loaded = loaded_by("pixel_threshold.attack")
    assert not loaded & (HEAVY | {"cma"})
    assert {"numpy", "threadpoolctl"} <= loaded


def test_only_the_models_package_imports_keras_or_tensorflow() -> None:
    outside = [
        (path.relative_to(PACKAGE), name)
        for path in sorted(PACKAGE.rglob("*.py"))
        if PACKAGE / "models" not in path.parents
        for name in imports(path)
        if name.split(".")[0] in ("keras", "tensorflow")
    ]
    assert outside == []


def test_the_architecture_registry_and_the_checks_before_work_import_no_framework() -> None:
    loaded = loaded_by("pixel_threshold.models.registry, pixel_threshold.steps.plan")
    assert not loaded & {"tensorflow", "keras", "mlflow"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, modules: set[str]) -> set[str]:
    """The project's modules ``path`` imports: ``from package import module`` names the
    module, ``from module import name`` the module (a package: its ``__init__``)."""
    found = set()
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING":
            block.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                inner = f"{node.module}.{alias.name}"
                found.add(inner if inner in modules else node.module)
    return found & modules


def test_no_module_of_the_package_imports_itself_through_others() -> None:
    """No import circle, counting imports made inside functions (a lazy import hides a
    circle from Python, not from the reader)."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: project_imports(path, set(paths)) - {name} for name, path in paths.items()}
    circles = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            name, trail = stack.pop()
            for target in sorted(graph[name]):
                if target == start:
                    circles.append(" -> ".join([*trail, start]))
                elif target not in seen and target > start:
                    seen.add(target)
                    stack.append((target, [*trail, target]))
    assert circles == []


def test_the_run_machinery_imports_no_step() -> None:
    """``runs/`` is what the steps share: it never reaches back into ``steps/``."""
    reaching = [
        (path.name, name)
        for path in modules_of("runs")
        for name in imports(path)
        if name.startswith("pixel_threshold.steps")
    ]
    assert reaching == []
