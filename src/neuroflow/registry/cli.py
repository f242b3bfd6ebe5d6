"""`neuroflow promote | promotions | rollback`: registered with `register(app)`.

Imports typer only at module level; everything else loads when a command runs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from neuroflow.commands import JsonOpt, ModelOpt, ParamsOpt, guarded, load

log = logging.getLogger("neuroflow")
T = TypeVar("T")

REJECTED_EXIT = 3  # a rejected challenger is an outcome, not an error, but scripts must see it


def _fmt(value: float | None) -> str:
    import math

    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.4f}"


def _print_outcome(outcome: Any, *, detail: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    gate = outcome.gate
    if outcome.action == "promote" and not detail:
        console = Console(width=max(console.width, 120))
        summary = Table(title=f"{outcome.model}: promote", show_header=False)
        summary.add_column("field", style="bold")
        summary.add_column("value", overflow="fold")
        for key, value in outcome.summary().items():
            summary.add_row(key, value)
        console.print(summary)
        if outcome.decision == "rejected":  # one unwrapped line for logs and scripts
            typer.echo(f"rejected: {gate.reason if gate is not None else outcome.message}")
        if outcome.ledger_run_id:
            console.print(f"ledger entry: run {outcome.ledger_run_id} (experiment 'promotions')")
        return
    if gate is not None:
        table = Table(
            title=f"{outcome.model}: challenger v{outcome.challenger} vs "
            f"champion {'v' + outcome.champion_before if outcome.champion_before else '(none)'}"
        )
        table.add_column("check")
        table.add_column("result")
        table.add_column("evidence")
        for check in gate.checks:
            table.add_row(check.name, "pass" if check.passed else "FAIL", check.detail)
        console.print(table)
        if gate.slices:
            slices = Table(title="classes and slices (drop = how much worse the challenger is)")
            for col in ("slice", "metric", "rows", "champion", "challenger", "drop"):
                slices.add_column(col, justify="left" if col in ("slice", "metric") else "right")
            for s in gate.slices:
                slices.add_row(
                    s.name,
                    s.metric,
                    str(s.rows),
                    f"{s.champion:.4f}",
                    f"{s.challenger:.4f}",
                    _fmt(s.drop) if s.judged else "not judged",
                )
            console.print(slices)
        if outcome.evaluation:
            ev = outcome.evaluation
            console.print(
                f"evaluation rows: {ev['rows']} from {ev['source']} (sha256 {ev['sha256'][:12]}…)"
            )
    console.print(f"[bold]{outcome.decision}[/bold]: {outcome.message}")
    if outcome.ledger_run_id:
        console.print(f"ledger entry: run {outcome.ledger_run_id} (experiment 'promotions')")


def register(app: typer.Typer) -> None:
    @app.command()
    def promote(
        params: ParamsOpt = Path("params.yaml"),
        model: ModelOpt = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the evidence; change nothing.")
        ] = False,
        as_json: JsonOpt = False,
        allow_rolled_back: Annotated[
            bool,
            typer.Option(
                "--allow-rolled-back",
                help="Let a version that was rolled back become champion again (needs --reason).",
            ),
        ] = False,
        reason: Annotated[
            str, typer.Option(help="Why --allow-rolled-back (recorded in the ledger).")
        ] = "",
        detail: Annotated[
            bool, typer.Option("--detail", help="Every check and slice, not just the summary.")
        ] = False,
    ) -> None:
        """Gate @challenger against @champion on its frozen test rows; promote if it passes.

        Every decision is recorded in the ledger. Exit 0: promoted, nothing to do, or dry run;
        3: rejected by the gate.
        """

        def go() -> Any:
            from neuroflow.registry.promotion import promote as run_promote

            cfg, root = load(params)
            return run_promote(
                cfg,
                root,
                model=model,
                dry_run=dry_run,
                allow_rolled_back=allow_rolled_back,
                reason=reason,
            )

        outcome = guarded(go)
        if as_json:
            typer.echo(json.dumps(outcome.to_json(), indent=2, default=str))
        else:
            _print_outcome(outcome, detail=detail)
        if outcome.decision == "rejected":
            raise typer.Exit(REJECTED_EXIT)

    @app.command()
    def rollback(
        params: ParamsOpt = Path("params.yaml"),
        model: ModelOpt = None,
        reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")] = "",
    ) -> None:
        """Move @champion back to the previous champion in the ledger (recorded too)."""

        def go() -> Any:
            from neuroflow.registry.promotion import rollback as run_rollback

            cfg, root = load(params)
            return run_rollback(cfg, root, model=model, reason=reason)

        _print_outcome(guarded(go))

    @app.command()
    def promotions(
        params: ParamsOpt = Path("params.yaml"), model: ModelOpt = None, as_json: JsonOpt = False
    ) -> None:
        """List the promotion ledger: every decision, oldest first."""

        def go() -> Any:
            from neuroflow.registry.promotion import list_entries

            cfg, root = load(params)
            return list_entries(cfg, root, model=model)

        entries = guarded(go)
        if as_json:
            typer.echo(json.dumps([e.to_json() for e in entries], indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title="promotion ledger")
        for col in (
            "#",
            "when (UTC)",
            "who",
            "action",
            "challenger",
            "champion",
            "decision",
            "metric",
            "Δ",
            "95% CI",
            "reason",
        ):
            table.add_column(col)
        for e in entries:
            ci = "" if e.ci_low is None else f"[{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]"
            decision = e.decision if e.status == "FINISHED" else f"{e.decision} ({e.status})"
            table.add_row(
                str(e.seq),
                e.decided_at,
                e.decided_by,
                e.action,
                f"v{e.challenger}" if e.challenger else "",
                f"{'v' + e.champion_before if e.champion_before else '-'} → "
                f"{'v' + e.champion_after if e.champion_after else '-'}",
                decision,
                e.metric,
                "" if e.improvement is None else _fmt(e.improvement),
                ci,
                e.reason + (f" [rolled-back version allowed: {e.override}]" if e.override else ""),
            )
        Console(width=200).print(table)
