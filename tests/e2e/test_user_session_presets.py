"""Presets in a user's session (test_user_session.py's committed project): each starts from the
committed params, and a failed one names its stage and leaves the workspace as it was. A file of
its own: `make test` hands out whole files, so these two long cases run beside the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.conftest import run, tiny_preset
from tests.e2e.test_user_session import commit_copy, diff, state

pytestmark = pytest.mark.slow


@pytest.fixture
def session(pipeline_done: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A committed copy of the shared pipeline run (the user's last good state), its hashes."""
    return commit_copy(pipeline_done, tmp_path / "project")


def test_presets_in_sequence_each_start_from_the_committed_params(
    session: tuple[Path, dict[str, str]],
) -> None:
    project, _ = session
    committed_params = yaml.safe_load((project / "params.yaml").read_text())
    for name in ("forecast", "anomaly"):
        preset = tiny_preset(project, name, {"epochs": 3, "patience": 3})
        proc = run(project, "neuroflow", "run-preset", "--file", str(preset), timeout=600)
        printed = json.loads(proc.stdout[proc.stdout.index("{") :])
        assert printed["test"], proc.stdout
    params = yaml.safe_load((project / "params.yaml").read_text())
    anomaly = yaml.safe_load((project / "presets" / "anomaly.yaml").read_text())
    # Nothing of the forecast preset is left: the data section is the committed one plus
    # the anomaly preset's keys.
    assert params["data"] == {**committed_params["data"], **anomaly["data"]}
    assert params["task"] == "anomaly" and params["model"]["type"] == "autoencoder"


def test_a_failed_preset_names_the_stage_and_leaves_the_workspace(
    session: tuple[Path, dict[str, str]],
) -> None:
    project, good = session
    preset = project / "wrong_suite.yaml"  # wine rows under the breast-cancer suite
    preset.write_text(yaml.safe_dump({"task": "multiclass", "data": {"name": "wine"}}))
    proc = run(project, "neuroflow", "run-preset", "--file", str(preset), check=False)
    assert proc.returncode != 0
    assert "failed at stage 'validate'" in proc.stderr, proc.stderr[-3000:]
    assert "expect_table_columns_to_match_set" in proc.stderr
    assert "as they were before the run" in proc.stderr
    changed = {k for k in diff(good, state(project)) if not k.startswith("reports/data_docs")}
    assert changed == set(), sorted(changed)
