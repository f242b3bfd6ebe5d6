"""`neuroflow compare`'s table: what it keeps from `dvc exp show --json`, and that it fits.

The real `dvc exp show` output is exercised in tests/stage/test_dvc_views.py; here the layout
rules run on many experiments, which would take minutes to create with DVC.
"""

from __future__ import annotations

from typing import Any

from neuroflow.compare import parse, render, table


def _rev(name: str, lr: float, accuracy: float) -> dict[str, Any]:
    return {
        "rev": f"{name}-sha",
        "name": name,
        "data": {
            "params": {"params.yaml": {"data": {"seed": 42, "train": {"lr": lr, "epochs": 12}}}},
            "metrics": {
                "artifacts/metrics.json": {
                    "data": {
                        "run_key": f"run-{name}",
                        "rows": 114,
                        "per_class": {"0": {"f1": 0.9}},
                        "test": {"accuracy": accuracy, "precision_macro": 0.95, "roc_auc": 0.99},
                    }
                }
            },
        },
    }


def exp_show(n: int) -> list[dict[str, Any]]:
    base = _rev("main", 0.001, 0.95)
    base["experiments"] = [
        {"name": f"exp-{i}", "revs": [_rev(f"exp-{i}", 0.001 * (i + 2), 0.9 + i / 1000)]}
        for i in range(n)
    ]
    workspace = _rev("workspace", 0.001, 0.95) | {"rev": "workspace"}
    return [workspace, base]


def test_keeps_changed_params_and_test_metrics_only() -> None:
    header, rows = table(parse(exp_show(2)))
    assert header == ["experiment", "train.lr", "accuracy", "precision_macro", "roc_auc"]
    assert [r[0] for r in rows] == ["main", "  exp-0", "  exp-1"]  # no workspace row
    assert rows[1][1] == "0.002" and rows[1][2] == "0.9000"  # params as written, metrics 4 dp


def test_wide_tables_are_transposed_in_groups_that_fit() -> None:
    header, rows = table(parse(exp_show(30)))
    assert max(map(len, render(header, rows, width=120).splitlines())) <= 120  # rows fit
    text = render(header, rows, width=50)  # rows ~65 wide: one column per experiment instead
    lines = text.splitlines()
    assert max(map(len, lines)) <= 50 and lines[0].split()[0] == "experiment"
    blocks = text.split("\n\n")
    assert len(blocks) > 1 and all(b.splitlines()[1].startswith("train.lr") for b in blocks)
    shown = [name for b in blocks for name in b.splitlines()[0].split()[1:]]
    assert shown == ["main", *(f"exp-{i}" for i in range(30))]  # every experiment, in order
    assert render(*table(parse(exp_show(1))), width=120).splitlines()[0].startswith("experiment")
