"""A markdown model card: what the model is, what it was trained on, how well it does."""

from __future__ import annotations

from typing import Any


def render_model_card(
    *,
    name: str,
    params: dict[str, str],
    metrics: dict[str, Any],
    schema: dict[str, Any],
    data_hashes: dict[str, str],
    run_id: str,
    parity: float,
    feature_names: list[str],
) -> str:
    task = schema["task"]
    lines = [
        f"# Model card: {name}",
        "",
        f"- **Task**: {task} on `{schema['target']}` (source `{schema['source']}`)",
        f"- **Network**: {params.get('model.type', '?')} hidden={params.get('model.hidden', '?')}",
        f"- **MLflow run**: `{run_id}`",
        "- **Format**: one ONNX graph, raw feature rows in (preprocessing inside), "
        + ("`label` and `probabilities` out" if task != "regression" else "`prediction` out"),
        f"- **Parity**: max |ONNX − PyTorch| on the test split = {parity:.2e}",
        "",
        "## Data",
        "",
        f"Rows per split: {schema['rows']}.",
        "",
        "| file | sha256 |",
        "| --- | --- |",
        *[f"| `{path}` | `{digest}` |" for path, digest in sorted(data_hashes.items())],
        "",
        f"Inputs ({len(schema['numeric'])} numeric, {len(schema['categorical'])} categorical): "
        + ", ".join(f"`{c}`" for c in [*schema["numeric"], *schema["categorical"]]),
        "",
        f"Features after preprocessing ({len(feature_names)}): "
        + ", ".join(f"`{f}`" for f in feature_names[:40])
        + (" …" if len(feature_names) > 40 else ""),
        "",
        "## Test metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[
            f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
            for k, v in metrics.get("test", {}).items()
        ],
        "",
        "## Parameters",
        "",
        "| key | value |",
        "| --- | --- |",
        *[f"| `{k}` | `{v}` |" for k, v in sorted(params.items())],
        "",
        "## Intended use",
        "",
        "Scoring rows drawn from the same population and schema as the training data. The",
        "expectation suite that gated the training data is the contract for inputs: validate new",
        "batches with it before trusting predictions.",
        "",
        "## Limits",
        "",
        "- Trained on a small, single-source dataset; performance outside its ranges is unknown.",
        "- Categorical values unseen in training are encoded as all-zero (ignored), and missing",
        "  numeric values are imputed with the training statistic, silently.",
        "- Probabilities are not calibrated beyond what the network learned.",
        "- Not evaluated for fairness across sub-populations; check slices before relying on it.",
        "",
    ]
    return "\n".join(lines)
