"""`neuroflow warm status | stop`: see and stop this user's warm stage servers."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from neuroflow.commands import JsonOpt


def register(app: typer.Typer) -> None:
    warm = typer.Typer(
        help="Warm stage servers, one per environment (NEUROFLOW_WARM=0 turns them off).",
        no_args_is_help=True,
    )
    app.add_typer(warm, name="warm")

    @warm.command("status")
    def status_cmd(as_json: JsonOpt = False) -> None:
        """The live servers: pid, state, idle seconds and the environment each serves."""
        from neuroflow.warm import registry

        config = registry.settings()
        servers = registry.live_servers(config.directory)
        if as_json:
            typer.echo(json.dumps([s.__dict__ for s in servers], indent=2))
            return
        if not servers:
            typer.echo(f"no warm server ({config.directory})")
        for s in servers:
            idle = time.time() - s.last_used
            typer.echo(f"{s.pid:>8}  {s.state:<8}  idle {idle:6.0f} s  {s.python}")

    @warm.command("stop")
    def stop_cmd(
        every: Annotated[
            bool, typer.Option("--all", help="Every server, not only the one for this environment.")
        ] = False,
    ) -> None:
        """Stop the server this environment's stages use, or all; running stages finish."""
        from neuroflow.warm import registry

        config = registry.settings()
        key = registry.server_key()
        chosen = [s for s in registry.live_servers(config.directory) if every or s.key == key]
        left = registry.stop_servers(chosen, timeout_s=30.0)
        typer.echo(f"stopped {len(chosen) - len(left)} server(s)")
        if left:
            pids = ", ".join(str(s.pid) for s in left)
            typer.echo(f"still finishing their stages: {pids}", err=True)
            raise typer.Exit(1)
