"""`python -m pipelines.serve`: serve prefect.yaml's `retrain` as `retrain/retrain-serve`.

No work pool or worker needed: this process polls the Prefect API and runs scheduled and
triggered runs here. The schedule and parameters come from prefect.yaml, declared once. The
deployment is named `<name>-serve` so that it never overwrites the work-pool deployment
`prefect deploy` makes from the same entry (`retrain/retrain`): both can exist, and each shows
in the UI which way it runs. Use one of them for the schedule (the README says how to drop the
other); two scheduled runs on one checkout would queue on its lock and the second would find
nothing to do.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

SERVED_SUFFIX = "-serve"


def served_name(name: str) -> str:
    """The deployment `pipelines.serve` creates for prefect.yaml's deployment `name`."""
    return f"{name}{SERVED_SUFFIX}"


def deployment_config(root: Path, name: str) -> dict[str, Any]:
    """The deployment called `name` in root/prefect.yaml."""
    config = yaml.safe_load((root / "prefect.yaml").read_text(encoding="utf-8")) or {}
    for entry in config.get("deployments", []):
        if entry.get("name") == name:
            return dict(entry)
    raise KeyError(f"{root / 'prefect.yaml'}: no deployment named {name!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", default="retrain", help="deployment in prefect.yaml")
    parser.add_argument("--paused", action="store_true", help="register the schedule paused")
    args = parser.parse_args(argv)

    from prefect.schedules import Cron

    from pipelines.flows import retrain

    root = Path.cwd().resolve()
    cfg = deployment_config(root, args.name)
    schedules = [
        Cron(s["cron"], timezone=s.get("timezone", "UTC"), active=s.get("active", True))
        for s in cfg.get("schedules", [])
        if "cron" in s
    ]
    retrain.serve(
        name=served_name(args.name),
        schedules=schedules,
        parameters={**cfg.get("parameters", {}), "root": str(root)},
        global_limit=cfg.get("concurrency_limit"),
        description=cfg.get("description"),
        tags=cfg.get("tags"),
        paused=args.paused,
        pause_on_shutdown=False,
    )


if __name__ == "__main__":
    main()
