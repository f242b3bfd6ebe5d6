"""The registry's vocabulary: alias and tag names, and the helpers that move `@challenger`.

Every module that names an alias or a version tag imports it from here (export, the promotion
gate, the Prefect flows, the sweep), so a rename is one edit. Standard library only at import
time; MLflow loads inside the helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from neuroflow.errors import NeuroflowError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"

# Version tags written at export.
RUN_ID_TAG = "run_id"
TASK_TAG = "task"
TEST_SHA_TAG = "data.test_sha256"  # the frozen raw test rows the version was evaluated on
SEASON_TAG = "data.season"  # forecasts: the seasonal-naive period (mae_vs_naive)
CONTENT_TAG = "content.sha256"  # ONNX graph + preprocessing: one version per model content
TEST_METRIC_PREFIX = "test."

# Version tags written by `promote` / `rollback`.
DECISION_TAG = "promotion.decision"
LEDGER_RUN_TAG = "promotion.ledger_run_id"
DECIDED_AT_TAG = "promotion.decided_at"
RESTORED_BY_TAG = "promotion.restored_by"
ROLLED_BACK_TAG = "promotion.rolled_back"  # the rollback's reason; blocks re-promotion
ROLLED_BACK_AT_TAG = "promotion.rolled_back_at"
ROLLED_BACK_BY_TAG = "promotion.rolled_back_by"  # the rollback's ledger run id


def model_uri(name: str, version: str) -> str:
    """MLflow's URI of one registered model version."""
    return f"models:/{name}/{version}"


class RegistryError(NeuroflowError):
    """The registry lacks what a command needs (model, alias, version, artifact)."""


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """alias → version of a registered model; RegistryError if the model does not exist."""
    from mlflow.exceptions import MlflowException

    from neuroflow.tracking import retry_locked

    try:
        model = retry_locked(client.get_registered_model, name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(
                f"registered model {name!r} not found: run the pipeline (`dvc repro`) to "
                "register a challenger"
            ) from None
        raise
    return {str(k): str(v) for k, v in (model.aliases or {}).items()}


def challenger_version(client: MlflowClient, name: str) -> str | None:
    """The version `@challenger` points at, or None (no model, or no challenger yet)."""
    try:
        return aliases(client, name).get(CHALLENGER)
    except RegistryError:
        return None


def set_challenger(client: MlflowClient, name: str, version: str) -> None:
    """Point `@challenger` at `version` (retried while a SQLite store is busy, and once more
    if another export set the alias at the same moment)."""
    from neuroflow.tracking import upsert

    upsert(client.set_registered_model_alias, name, CHALLENGER, str(version))


def get_version_tags(client: MlflowClient, name: str, version: str) -> dict[str, str]:
    from mlflow.exceptions import MlflowException

    from neuroflow.tracking import retry_locked

    try:
        mv = retry_locked(client.get_model_version, name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"{name} version {version} not found: {exc.message}") from None
    return {str(k): str(v) for k, v in (mv.tags or {}).items()}
