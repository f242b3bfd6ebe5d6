"""Load a trained network from safetensors weights + its JSON spec (no pickle anywhere)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from neuroflow.errors import NeuroflowError
from neuroflow.io import read_json
from neuroflow.models.factory import InferenceHead, build_model
from neuroflow.models.spec import ModelSpec


class ModelLoadError(NeuroflowError):
    """Weights that are not a readable safetensors file (never unpickled) or do not fit."""


def load_network(weights: Path, spec_path: Path) -> tuple[ModelSpec, nn.Module]:
    from safetensors.torch import load_file

    spec = ModelSpec.from_json(read_json(spec_path))
    network = build_model(spec)
    try:
        state = load_file(str(weights))
    except Exception as exc:  # the header parser refuses anything that is not safetensors
        raise ModelLoadError(f"{weights}: not a readable safetensors weights file ({exc})") from exc
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"{weights}: weights do not match {spec_path}: {exc}") from exc
    network.eval()
    return spec, network


def load_head(weights: Path, spec_path: Path) -> tuple[ModelSpec, InferenceHead]:
    spec, network = load_network(weights, spec_path)
    return spec, InferenceHead(network, spec).eval()
