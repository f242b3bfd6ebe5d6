"""Prefect flows over the DVC pipeline: wiring only, no ML logic.

The DAG lives in dvc.yaml; these flows read it and run every stage through `dvc repro`, so DVC's
cache and dvc.lock stay the single record of what ran with which data and params.
"""

import os

# Prefect decides on client-side analytics when it is first imported: this must be set before
# that happens, so the flows never attempt an outbound call beyond the configured API.
os.environ.setdefault("DO_NOT_TRACK", "1")
