"""The registry's vocabulary lives in registry/names.py and only registry/ moves aliases."""

from __future__ import annotations

import ast
from pathlib import Path

from neuroflow.registry import names

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*ROOT.glob("src/neuroflow/**/*.py"), *ROOT.glob("pipelines/*.py")]
ALIAS_WRITES = {"set_registered_model_alias", "delete_registered_model_alias"}
TAG_NAMES = {
    names.TEST_SHA_TAG,
    names.CONTENT_TAG,
    names.SEASON_TAG,
    names.ROLLED_BACK_TAG,
    names.DECISION_TAG,
    names.LEDGER_RUN_TAG,
}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_only_the_registry_writes_aliases() -> None:
    writers = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ALIAS_WRITES:
                writers.add(_rel(path))
    assert writers == {"src/neuroflow/registry/names.py", "src/neuroflow/registry/promotion.py"}


def test_tag_names_are_spelled_once() -> None:
    spelled: dict[str, set[str]] = {}
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in TAG_NAMES:
                spelled.setdefault(node.value, set()).add(_rel(path))
    assert spelled == {tag: {"src/neuroflow/registry/names.py"} for tag in TAG_NAMES}


def test_export_and_the_flows_take_the_challenger_from_the_registry() -> None:
    def imported(path: str) -> set[str]:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        return {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("neuroflow.registry")
            for alias in node.names
        }

    assert "CHALLENGER" in imported("pipelines/flows.py")
    assert "set_challenger" in imported("pipelines/sweep.py")
    assert {"names", "register_challenger"} <= imported("src/neuroflow/stages/export.py")
    register = (ROOT / "src/neuroflow/registry/register.py").read_text(encoding="utf-8")
    assert "set_challenger(client, name, version)" in register
