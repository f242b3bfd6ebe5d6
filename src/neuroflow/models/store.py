"""Load a trained network from safetensors weights + its JSON spec (no pickle anywhere)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from neuroflow.io import read_json
from neuroflow.models.factory import InferenceHead, build_model
from neuroflow.models.spec import ModelSpec


def load_network(weights: Path, spec_path: Path) -> tuple[ModelSpec, nn.Module]:
    from safetensors.torch import load_file

    spec = ModelSpec.from_json(read_json(spec_path))
    network = build_model(spec)
    network.load_state_dict(load_file(str(weights)))
    network.eval()
    return spec, network


def load_head(weights: Path, spec_path: Path) -> tuple[ModelSpec, InferenceHead]:
    spec, network = load_network(weights, spec_path)
    return spec, InferenceHead(network, spec).eval()
