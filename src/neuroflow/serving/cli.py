"""`neuroflow serve | predict`: registered with `register(app)`; typer only at module level."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from neuroflow.commands import ModelOpt, ParamsOpt, guarded, load

AliasOpt = Annotated[
    str, typer.Option(help="Registry alias to load (`challenger` before the first promotion).")
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse unknown columns and categories unseen in training (default: score them, "
        "ignoring unknown columns, and report both).",
    ),
]


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        params: ParamsOpt = Path("params.yaml"),
        model: ModelOpt = None,
        host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = (
            "127.0.0.1"
        ),
        port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
        alias: AliasOpt = "champion",
        refresh: Annotated[
            float,
            typer.Option(
                help="Seconds between checks of the alias; a promotion or rollback is picked "
                "up without a restart. 0 = never."
            ),
        ] = 30.0,
        strict: StrictOpt = False,
    ) -> None:
        """Serve models:/NAME@champion over HTTP (MLflow scoring protocol: /ping, /invocations).

        The label column and unknown columns are ignored (header X-Neuroflow-Ignored-Columns);
        unseen categories are counted in X-Neuroflow-Unseen-Categories and logged.
        """

        def go() -> Any:
            from neuroflow.serving.app import load_served_model

            cfg, root = load(params)
            name = model or cfg.registry.model_name
            served = load_served_model(root, name, alias, target=cfg.data.target)
            return served, root, name

        served, root, name = guarded(go)
        from neuroflow.serving.app import moved_model
        from neuroflow.serving.server import serve as run_server

        def follow(current: Any) -> Any:
            return moved_model(root, name, alias, current)

        run_server(served, host, port, follow, refresh, strict=strict)

    @app.command()
    def predict(
        input: Annotated[Path, typer.Option("--input", "-i", help="Raw rows: .csv or .parquet.")],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Where to write: .csv or .parquet.")
        ],
        params: ParamsOpt = Path("params.yaml"),
        model: ModelOpt = None,
        alias: AliasOpt = "champion",
        strict: StrictOpt = False,
        metrics: Annotated[
            bool,
            typer.Option(
                "--metrics", help="Rows include the label: print the test metrics on them."
            ),
        ] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = (
            False
        ),
    ) -> None:
        """Score raw rows in batch with models:/NAME@champion; input columns are kept.

        The label column and unknown columns are ignored with a note; categories unseen in
        training are scored with a warning naming column, value and count.
        """

        def go() -> Any:
            from neuroflow.serving.batch import predict_file

            cfg, root = load(params)
            name = model or cfg.registry.model_name
            return predict_file(
                root,
                name,
                alias,
                input,
                output,
                label=cfg.data.target,
                strict=strict,
                metrics=metrics,
            )

        scored = guarded(go)
        if scored.metrics is not None:
            _print_metrics(scored.metrics, scored.uri, json_out)


def _print_metrics(metrics: dict[str, Any], uri: str, as_json: bool) -> None:
    import json

    if as_json:
        typer.echo(json.dumps({"model": uri, **metrics}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{uri} on {metrics['rows']} labelled rows")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if key != "rows":
            table.add_row(key, "n/a" if value is None else f"{value:.4f}")
    Console().print(table)
