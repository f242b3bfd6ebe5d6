"""`neuroflow cv | tune`: registered with `register(app)`; imports typer only at module level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from neuroflow.commands import ParamsOpt, context, guarded


def register(app: typer.Typer) -> None:
    @app.command("cv")
    def cv_cmd(params: ParamsOpt = Path("params.yaml")) -> None:
        """k-fold cross-validation on train+val (needs `preprocess`): mean ± std per metric."""

        def go() -> None:
            from neuroflow.search.cv import cross_validate

            cfg, paths = context(params)
            report = cross_validate(cfg, paths)
            for key, stats in report["summary"].items():
                typer.echo(f"{key:>18}: {stats['mean']:.4f} ± {stats['std']:.4f}")

        guarded(go)

    @app.command("tune")
    def tune_cmd(
        params: ParamsOpt = Path("params.yaml"),
        trials: Annotated[int | None, typer.Option(help="Override tune.trials.")] = None,
    ) -> None:
        """Hyperparameter search (TPE / grid / random), each trial a nested MLflow run."""

        def go() -> None:
            from neuroflow.search.tune import tune

            cfg, paths = context(params)
            result = tune(cfg, paths, trials=trials)
            typer.echo(json.dumps(result["best"], indent=2))
            typer.echo(f"apply with: neuroflow run-preset --file {result['output']}")

        guarded(go)
