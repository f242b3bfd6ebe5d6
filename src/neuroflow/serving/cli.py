"""`neuroflow serve | predict`: registered with `register(app)`; typer only at module level."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from neuroflow.registry.cli import ModelOpt, ParamsOpt, guarded, load

AliasOpt = Annotated[str, typer.Option(help="Registry alias to load.")]


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
    ) -> None:
        """Serve models:/NAME@champion over HTTP (MLflow scoring protocol: /ping, /invocations)."""

        def go() -> Any:
            from neuroflow.serving.app import load_served_model

            cfg, root = load(params)
            name = model or cfg.registry.model_name
            return load_served_model(root, name, alias), root, name

        served, root, name = guarded(go)
        from neuroflow.serving.app import moved_model
        from neuroflow.serving.server import serve as run_server

        def follow(current: Any) -> Any:
            return moved_model(root, name, alias, current)

        run_server(served, host, port, follow, refresh)

    @app.command()
    def predict(
        input: Annotated[Path, typer.Option("--input", "-i", help="Raw rows: .csv or .parquet.")],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Where to write: .csv or .parquet.")
        ],
        params: ParamsOpt = Path("params.yaml"),
        model: ModelOpt = None,
        alias: AliasOpt = "champion",
    ) -> None:
        """Score raw rows in batch with models:/NAME@champion; input columns are kept."""

        def go() -> None:
            from neuroflow.serving.batch import predict_file

            cfg, root = load(params)
            predict_file(root, model or cfg.registry.model_name, alias, input, output)

        guarded(go)
