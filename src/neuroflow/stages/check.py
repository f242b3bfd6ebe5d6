"""check: params.yaml and the files it names, validated before any stage can touch an output.

DVC removes a stage's outputs just before it runs the stage's command, so a typo that only
`train` notices has already cost the trained model. This stage runs first (ingest depends on
its marker file), whenever params.yaml, the suite or the input files change, and fails with one
line per problem; DVC then runs nothing else and every output stays as it was. The marker's
content never changes, so passing the check never re-runs ingest by itself.
"""

from __future__ import annotations

import logging
from pathlib import Path

from neuroflow.config import Params, ParamsError, Paths
from neuroflow.io import write_text

log = logging.getLogger(__name__)

MARKER = "params.yaml and the files it names passed `neuroflow check`\n"


def problems(params: Params, root: Path) -> list[str]:
    """What would make a later stage fail for want of a file params.yaml names."""
    found: list[str] = []
    suite = params.validate_.suite
    if not (root / suite).is_file():
        found.append(
            f"validate.suite: {suite} not found; propose one from your data with "
            f"`neuroflow profile -o {suite}`, review it, and commit it"
        )
    data = params.data
    for key, name in (("data.path", data.path), ("data.labels_path", data.labels_path)):
        if name and data.source in ("csv", "parquet", "idx", "series"):
            path = Path(name) if Path(name).is_absolute() else root / name
            if not path.is_file():
                found.append(f"{key}: {name} not found (paths are relative to {root})")
    return found


def run(params: Params, paths: Paths) -> list[str]:
    found = problems(params, paths.root)
    if found:
        raise ParamsError(
            "params.yaml: " + "; ".join(found)
            if len(found) == 1
            else "params.yaml:\n" + "\n".join(f"  - {p}" for p in found)
        )
    write_text(paths.params_checked, MARKER)
    log.info("check: params.yaml and the files it names are valid")
    return found
