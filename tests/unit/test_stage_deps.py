"""dvc.yaml lists, for each stage, every source file the stage's code can import.

A stage whose code changes must re-run: DVC only knows that if the file is one of the stage's
`deps`. The imports are read statically (every `import neuroflow...` in a module, also inside
functions, since the heavy ones are lazy), so the closure is a superset of what one run loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(module: str) -> set[str]:
    path = module_file(module)
    assert path is not None, module
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py too.
    with_parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)}
    return {m for m in with_parents if m.startswith("neuroflow") and module_file(m)}


def import_closure(module: str) -> set[Path]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imported_modules(current))
    return {module_file(m) for m in seen} - {None}  # type: ignore[return-value]


def decides_nothing(path: Path) -> bool:
    """A package marker: an __init__.py holding only a docstring and constants."""
    if path.name != "__init__.py":
        return False
    body = ast.parse(path.read_text()).body
    return all(isinstance(node, ast.Expr | ast.Assign) for node in body)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_source_file_is_a_dependency(stage: str) -> None:
    deps = [REPO / str(dep).rstrip("/") for dep in STAGES[stage]["deps"]]
    missing = sorted(
        str(path.relative_to(REPO))
        for path in import_closure(f"neuroflow.stages.{stage}")
        if not decides_nothing(path) and not any(path == dep or dep in path.parents for dep in deps)
    )
    assert not missing, f"dvc.yaml stage {stage!r} imports but does not depend on: {missing}"


def test_bytecode_caches_are_never_dependencies() -> None:
    # They appear when code first runs and differ per interpreter: a fresh clone would never
    # find `dvc repro` a no-op if a source directory's hash included them.
    ignored = (REPO / ".dvcignore").read_text().split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored


def test_config_imports_nothing_of_the_package() -> None:
    # Every stage imports config.py: what it imported would be a dependency of every stage.
    assert imported_modules("neuroflow.config") == set()
