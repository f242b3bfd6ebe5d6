"""Export of a GAN's generator: latent vectors in (`latent`, (N, latent)), images out (`image`,
(N, C, H, W) in the data's own pixel units), checked against the PyTorch path. The graph's
metadata says `neuroflow.task: generative`, which is how serving knows to answer `{"n": N}`.

The discriminator is a training device and is not exported. The preprocessing's image scaling
(pixels divided by the train maximum) is undone inside the graph, so a generated image reads
like an input row: for the digits, values in [0, 16].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx
    import torch

    from neuroflow.config import ExportConfig
    from neuroflow.features.transform import FittedPreprocessor

log = logging.getLogger(__name__)

LATENT = "latent"
IMAGE = "image"
PARITY_ROWS = 512  # seeded latent vectors both paths generate from


@dataclass(frozen=True)
class ExportedGenerator:
    model: onnx.ModelProto
    parity_max_abs_diff: float
    output_scale: float  # max |image| on the parity batch: the tolerance's rtol reference
    example: dict[str, np.ndarray]  # MLflow's input example: a few latent vectors
    signature: Any  # mlflow.models.ModelSignature


def pixel_scale(pre: FittedPreprocessor) -> float:
    """The factor that undoes the global image scaling (one shared scale, no centring)."""
    scales, centers = set(pre.scale), set(pre.center)
    if len(scales) != 1 or centers - {0.0}:
        raise ValueError(
            "a generator exports with preprocess.image_scale=global (one pixel scale); "
            f"this preprocessor has {len(scales)} scales and centres {sorted(centers)[:3]}"
        )
    return float(scales.pop())


def export_generator(
    gan: torch.nn.Module, pre: FittedPreprocessor, cfg: ExportConfig, seed: int
) -> ExportedGenerator:
    """The generator as ONNX, parity-checked on seeded latent vectors; raises ValueError on a
    disagreement beyond cfg.parity_atol + cfg.parity_rtol × the output's scale."""
    import onnx
    import torch
    from mlflow.models import infer_signature

    from neuroflow.export.onnx_graph import compare_outputs, torchscript_onnx
    from neuroflow.models.gan import GAN, SampleHead, sample_latent

    if not isinstance(gan, GAN):
        raise TypeError(f"a generator export needs a GAN, got {type(gan).__name__}")

    head = SampleHead(gan, pixel_scale(pre)).eval()
    dummy = torch.zeros(2, gan.latent)  # 2 rows: no folding of a size-1 batch dimension
    model = torchscript_onnx(head, dummy, cfg.opset, LATENT, IMAGE)
    model.doc_string = "neuroflow GAN generator: latent (N, latent) → image (N, C, H, W)"
    onnx.helper.set_model_props(model, {"neuroflow.task": "generative"})
    z = sample_latent(PARITY_ROWS, gan.latent, seed).numpy()
    onnx_out = run_generator(model.SerializeToString(), z)
    with torch.inference_mode():
        torch_out = head(torch.from_numpy(z)).numpy()
    # The one tolerance rule of export's parity check (atol + rtol × output scale).
    check = compare_outputs(IMAGE, onnx_out, torch_out)
    if not check.ok(cfg.parity_atol, cfg.parity_rtol):
        raise ValueError(
            f"generator ONNX and PyTorch disagree on {PARITY_ROWS} latent vectors: "
            + check.describe(cfg.parity_atol, cfg.parity_rtol)
        )
    diff, scale = check.max_abs_diff, check.scale
    example = {LATENT: z[:5]}
    signature = infer_signature(example, {IMAGE: onnx_out[:5]})
    log.info("export: generator ONNX parity %.2e on %d latent vectors", diff, PARITY_ROWS)
    return ExportedGenerator(model, diff, scale, example, signature)


def run_generator(model: bytes, z: np.ndarray) -> np.ndarray:
    """Images from an exported generator on onnxruntime's CPU provider."""
    import onnxruntime

    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    (images,) = session.run([IMAGE], {LATENT: np.ascontiguousarray(z, dtype=np.float32)})
    return np.asarray(images)
