"""The gate's evidence for a generative model: its samples rated as `evaluate` rates them.

The rating classifier is retrained from the project's processed train/validation splits with
the pipeline's seed (`evaluation/rater.py`: seeded and deterministic, so it is the rater evaluate
used). Both generators draw from the same seeded latent vectors; the frozen test rows are the
held-out reference, the validation rows the real-vs-real one (`gate.Predictions`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from neuroflow.config import Paths
from neuroflow.registry.gate import Check, Predictions

if TYPE_CHECKING:
    from neuroflow.evaluation.rater import Rater
    from neuroflow.export.runtime import OnnxScorer

log = logging.getLogger(__name__)


class Rating:
    def __init__(self, root: Path, seed: int, frame: pd.DataFrame) -> None:
        from neuroflow.evaluation.rater import train_rater
        from neuroflow.export.generator import pixel_scale
        from neuroflow.features.transform import load_preprocessor
        from neuroflow.io import read_json
        from neuroflow.processed import load_split

        paths = Paths(root)
        pre = load_preprocessor(paths)
        shape = list(read_json(paths.schema)["image_shape"])
        x_train, y_train = load_split(paths, "train")
        x_val, y_val = load_split(paths, "val")
        self.rater: Rater = train_rater(x_train, y_train, x_val, y_val, shape, seed=seed)
        reference = pre.transform(frame)
        self.rows = min(len(reference), len(x_val))
        self.reference = self.rater.rate(reference[: self.rows])[0]
        self.real = self.rater.rate(x_val[: self.rows])[0]
        self.scale, self.seed = pixel_scale(pre), seed

    def _features(self, scorer: OnnxScorer) -> np.ndarray:
        from neuroflow.serving.generate import generate_images

        images = generate_images(scorer.session, self.rows, self.seed) / self.scale
        return self.rater.rate(images.reshape(self.rows, -1))[0]

    def predictions(self, scorer: OnnxScorer) -> Predictions:
        return Predictions(
            "generative", self.reference, value=self._features(scorer), naive=self.real
        )

    def smoke(self, scorer: OnnxScorer) -> Check:
        """The registered generator loads and draws finite images (a failure is a failed check)."""
        try:
            features = self._features(scorer)
            if not np.isfinite(features).all():
                raise ValueError("non-finite samples")
        except Exception as exc:  # recorded as the failed check: a broken artifact is not promoted
            log.warning("smoke test of the generator failed: %s", exc)
            return Check("smoke", False, f"the generator failed: {exc}")
        return Check("smoke", True, f"the generator draws {self.rows} finite samples")
