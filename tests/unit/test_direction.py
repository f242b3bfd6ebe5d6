"""One definition of metric direction, and every ranking in the project goes through it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from neuroflow.evaluation import direction

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("rmse", True),
        ("mae", True),
        ("mse", True),
        ("log_loss", True),
        ("loss", True),
        ("val_loss", True),
        ("mae_vs_naive", True),
        ("fid_ratio", True),
        ("accuracy", False),
        ("roc_auc", False),
        ("r2", False),
        ("f1_macro", False),
    ],
)
def test_direction(metric: str, lower: bool) -> None:
    assert direction.lower_is_better(metric) is lower
    assert direction.higher_is_better(metric) is not lower
    assert direction.optuna_direction(metric) == ("minimize" if lower else "maximize")
    better, worse = (1.0, 2.0) if lower else (2.0, 1.0)
    assert direction.is_better(metric, better, worse)
    assert not direction.is_better(metric, worse, better)
    assert not direction.is_better(metric, better, better)  # equal is not better
    assert not direction.is_better(metric, better, worse, margin=1.5)


@pytest.fixture
def accuracy_is_lower_better(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flip one metric in the single definition; every caller must follow."""
    monkeypatch.setattr(direction, "LOWER_IS_BETTER", direction.LOWER_IS_BETTER | {"accuracy"})


@pytest.mark.usefixtures("accuracy_is_lower_better")
def test_the_gate_follows_the_definition() -> None:
    from neuroflow.registry.gate import Predictions, paired_bootstrap

    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    right = np.eye(2)[y]
    wrong = np.eye(2)[1 - y]
    comparison = paired_bootstrap(
        "accuracy",
        Predictions("binary", y, proba=right),
        Predictions("binary", y, proba=wrong),
        resamples=100,
        seed=0,
    )
    assert not comparison.higher_is_better
    assert comparison.improvement == pytest.approx(1.0)  # lower accuracy now "improves"


@pytest.mark.usefixtures("accuracy_is_lower_better")
def test_the_sweep_follows_the_definition() -> None:
    pytest.importorskip("prefect")
    from pipelines.sweep import best_of

    rows = [{"trial": i, "test": {"accuracy": a}} for i, a in enumerate([0.9, 0.7, 0.8])]
    assert best_of(rows, "accuracy")["trial"] == 1


def _imports_from_direction(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "neuroflow.evaluation.direction"
        for alias in node.names
    }


def test_tune_and_early_stopping_ask_the_definition() -> None:
    """Training and tune rank by validation loss; both take the direction from the module."""
    engine = ROOT / "src/neuroflow/training/engine.py"
    tune = ROOT / "src/neuroflow/search/tune.py"
    assert "is_better" in _imports_from_direction(engine)
    assert 'is_better("val_loss"' in engine.read_text(encoding="utf-8")
    assert "optuna_direction" in _imports_from_direction(tune)
    assert 'direction="minimize"' not in tune.read_text(encoding="utf-8")


def test_no_second_definition() -> None:
    """No module but direction.py defines a metric-direction set."""
    owners = []
    for path in [*ROOT.glob("src/neuroflow/**/*.py"), *ROOT.glob("pipelines/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {t.id for t in targets if isinstance(t, ast.Name)}
                if names & {"LOWER_IS_BETTER", "HIGHER_IS_BETTER"}:
                    owners.append(path.relative_to(ROOT).as_posix())
    assert owners == ["src/neuroflow/evaluation/direction.py"]
