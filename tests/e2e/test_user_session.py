"""A user's session on a committed pipeline: mistakes stop before anything is lost, presets
start from the committed params, and `neuroflow restore` is the one way back.

Each case below is a row of the "User mistakes" table in docs/robustness.md
(`test_the_table_lists_every_case` keeps the two in step). Every case runs `dvc repro` (or a
preset) on a copy of a project whose shrunken pipeline ran and was committed, checks the exit
code and the message, checks what stayed on disk, then runs `neuroflow restore` and checks the
workspace is the committed one again.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REPO, run, set_params, tree_hashes

pytestmark = pytest.mark.slow

# Everything a stage writes or reads: hashed before and after a failed run.
WATCHED = ("params.yaml", "dvc.lock", "data", "artifacts", "reports")


def state(root: Path) -> dict[str, str]:
    return tree_hashes(root, WATCHED)


def diff(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def commit_copy(pipeline_done: Path, root: Path) -> tuple[Path, dict[str, str]]:
    """The shared shrunken pipeline run copied to `root` and committed: the user's last good
    state, and its hashes."""
    shutil.copytree(pipeline_done, root, symlinks=True)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "a good run")
    return root, state(root)


@pytest.fixture(scope="module")
def committed(
    pipeline_done: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    return commit_copy(pipeline_done, tmp_path_factory.mktemp("session") / "project")


@pytest.fixture
def project(committed: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(committed[0], tmp_path / "project", symlinks=True))


@dataclass(frozen=True)
class Case:
    """One user mistake: how to make it, what the user must read, what may change."""

    name: str
    make: Callable[[Path], None]
    expect: tuple[str, ...]  # fragments of the message, in the command's output
    changed: frozenset[str] = frozenset({"params.yaml"})  # what differs after the failure


def _params(overrides: dict[str, Any]) -> Callable[[Path], None]:
    return lambda root: set_params(root, overrides)


def _bad_data(root: Path) -> None:
    # Another bundled table under the committed suite: ingest succeeds, validate refuses it.
    set_params(root, {"data": {"name": "wine"}, "task": "multiclass"})


CASES = [
    Case(
        "unknown-key",
        _params({"train": {"lr_": 0.01}}),
        ("unknown key 'train.lr_'", "did you mean 'train.lr'?"),
    ),
    Case("wrong-type", _params({"train": {"lr": "fast"}}), ("train.lr: got 'fast'",)),
    Case(
        "not-allowed",
        _params({"train": {"optimizer": "adamm"}}),
        ("train.optimizer: got 'adamm'", "allowed: 'adam', 'adamw'"),
    ),
    Case(
        "missing-suite",
        _params({"validate": {"suite": "data/suites/mine.json"}}),
        ("validate.suite: data/suites/mine.json not found", "neuroflow profile -o"),
    ),
    Case(
        "missing-input",
        _params({"data": {"source": "csv", "path": "data/external/mine.csv"}}),
        ("data.path: data/external/mine.csv not found",),
    ),
    Case(
        "bad-data",
        _bad_data,
        ("failed to reproduce 'validate'", "expect_table_columns_to_match_set"),
        # ingest ran (its splits and lock entry are the bad data's); nothing after it did
        frozenset(
            {
                "params.yaml",
                "dvc.lock",
                "data/raw/train.parquet",
                "data/raw/val.parquet",
                "data/raw/test.parquet",
                "data/raw/schema.json",
                "data/validated/summary.json",
            }
        ),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_mistake_stops_with_one_message_and_restore_undoes_it(
    project: Path, committed: tuple[Path, dict[str, str]], case: Case
) -> None:
    _, good = committed
    case.make(project)
    before = state(project)
    proc = run(project, "dvc", "repro", check=False, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    for fragment in case.expect:
        assert fragment in output, output[-3000:]
    assert "Traceback" not in output and "errors.pydantic.dev" not in output, output[-3000:]
    after = state(project)
    if case.changed == {"params.yaml"}:
        assert diff(before, after) == [], "a params mistake must change nothing on disk"
    changed = {k for k in diff(good, after) if not k.startswith("reports/data_docs")}
    assert changed <= case.changed, sorted(changed - case.changed)
    assert "artifacts/model/model.safetensors" in after  # the trained model survives

    restored = run(project, "neuroflow", "restore")
    assert diff(good, state(project)) == [], restored.stderr
    assert run(project, "git", "status", "--porcelain").stdout == ""
    assert "up to date" in run(project, "dvc", "status").stdout


def test_the_table_lists_every_case() -> None:
    doc = (REPO / "docs" / "robustness.md").read_text(encoding="utf-8")
    section = doc[doc.index("## User mistakes") :]
    rows = re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.M)
    assert rows == [c.name for c in CASES]


def test_profile_refuses_to_overwrite_a_suite(project: Path) -> None:
    suite = "data/suites/breast_cancer.json"
    before = (project / suite).read_bytes()
    proc = run(project, "neuroflow", "profile", check=False)
    assert proc.returncode != 0
    assert proc.stderr.count(suite) == 1 and "--force" in proc.stderr, proc.stderr
    assert (project / suite).read_bytes() == before
    run(project, "neuroflow", "profile", "--force")
    assert json.loads((project / suite).read_text())["expectations"]


def test_profile_needs_no_ingest_first(project: Path) -> None:
    shutil.rmtree(project / "data" / "raw")
    run(project, "neuroflow", "profile", "-o", "data/suites/fresh.json")
    assert json.loads((project / "data/suites/fresh.json").read_text())["expectations"]
    assert not (project / "data" / "raw").exists()  # profiling leaves the pipeline's data alone
