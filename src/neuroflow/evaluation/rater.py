"""The rating classifier of the generative task: the project's CNN, trained on the real train split.

It plays Inception-v3's part in FID / IS for data Inception never saw: its softmax gives the
class probabilities (Inception Score, the generated-class histogram) and its penultimate layer
the features the Fréchet distance compares. It is trained inside `evaluate`, seeded and
deterministic (the same data and seed give the same rater, hence comparable scores across
runs), with the digits preset's architecture and the engine's own loop (early stopping on the
validation split).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from neuroflow.models.cnn import CNN
from neuroflow.models.factory import build_model
from neuroflow.models.spec import ModelSpec
from neuroflow.training.engine import TensorSplits, TrainSettings, fit

log = logging.getLogger(__name__)

# The digits preset's CNN (presets/digits.yaml): 98% test accuracy on the 8×8 digits.
RATER_CHANNELS = [16, 32]
RATER_HIDDEN = [64]
RATER_EPOCHS = 40


@dataclass
class Rater:
    network: CNN
    classes: int
    val_accuracy: float

    @torch.no_grad()
    def rate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(penultimate features, class probabilities) of flat rows in the processed scale."""
        self.network.eval()
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        z = self.network.features(t.reshape(-1, *self.network.shape)).flatten(1)
        head: nn.Sequential = self.network.classifier.net
        features = head[:-1](z)
        probs = torch.softmax(head[-1](features), dim=1)
        return features.numpy().astype(np.float64), probs.numpy().astype(np.float64)


def train_rater(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    image_shape: list[int],
    seed: int,
    epochs: int = RATER_EPOCHS,
) -> Rater:
    """A CNN classifier of the real rows' labels, on the CPU, deterministic for `seed`."""
    labels = np.asarray(y_train).astype(np.int64)
    classes = int(labels.max()) + 1
    spec = ModelSpec(
        type="cnn",
        task="multiclass",
        input_dim=int(np.prod(image_shape)),
        output_dim=classes,
        hidden=RATER_HIDDEN,
        dropout=0.2,
        batch_norm=True,
        input_shape=list(image_shape),
        channels=RATER_CHANNELS,
    )
    torch.manual_seed(seed)
    network = build_model(spec)
    assert isinstance(network, CNN)
    data = TensorSplits(
        torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        torch.from_numpy(labels),
        torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32)),
        torch.from_numpy(np.asarray(y_val).astype(np.int64)),
    )
    settings = TrainSettings(
        epochs=epochs,
        batch_size=64,
        lr=3e-3,
        weight_decay=1e-4,
        scheduler="plateau",
        patience=10,
        loss="cross_entropy",
        device="cpu",
        seed=seed,
    )
    result = fit(network, data, settings)
    best = result.history[result.best_epoch - 1]
    accuracy = float(best.val_accuracy or 0.0)
    log.info("rater: CNN val accuracy %.4f (epoch %d)", accuracy, result.best_epoch)
    return Rater(network, classes, accuracy)
