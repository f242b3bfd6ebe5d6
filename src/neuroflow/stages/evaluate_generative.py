"""evaluate for task=generative: the generator rated by a classifier of the real data.

A CNN trained here on the real training split (`evaluation/rater.py`) rates as many generated
samples as the validation split has rows; the same scores for the validation rows are the
real-vs-real reference, and both sides are compared with the test split (held out from the GAN
and from the rater). Writes the DVC metrics (`test.fid`, `test.fid_real`, `test.fid_ratio`,
`test.inception_score`, `test.inception_score_real`, `test.classes_generated`), a sample grid
(DVC image plot and MLflow artifact) and the loss curves of both networks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from neuroflow.config import Params, Paths
from neuroflow.evaluation.generative import FD_RATIO_BAR, generative_scores, meets_bar
from neuroflow.evaluation.plots import clear_pngs, png_axes, write_plot_data
from neuroflow.io import read_json, write_json

log = logging.getLogger(__name__)

SAMPLES_KIND = "samples"  # the DVC plot folder of the sample grid (plots.PLOT_KINDS)
GRID_PER_CLASS = 10


def sample_seed(seed: int) -> int:
    """The latent noise evaluate draws (another stream than the training's validation noise)."""
    return seed + 1


def run(params: Params, paths: Paths) -> dict[str, Any]:
    from neuroflow import tracking
    from neuroflow.evaluation.rater import train_rater
    from neuroflow.models.gan import GAN
    from neuroflow.models.store import load_network
    from neuroflow.processed import load_split
    from neuroflow.training.gan import generate

    spec, network = load_network(paths.weights, paths.model_spec)
    if not isinstance(network, GAN):
        raise TypeError(f"task=generative evaluates a GAN, got model.type={spec.type}")
    x_train, y_train = load_split(paths, "train")
    x_val, y_val = load_split(paths, "val")
    x_test, _ = load_split(paths, "test")
    image_shape = spec.shape if len(spec.shape) == 3 else [1, 1, spec.input_dim]
    rater = train_rater(x_train, y_train, x_val, y_val, image_shape, seed=params.seed)
    fake = generate(network, len(x_val), sample_seed(params.seed))
    fake_features, fake_probs = rater.rate(fake)
    real_features, real_probs = rater.rate(x_val)
    reference, _ = rater.rate(x_test)
    scores = generative_scores(fake_features, fake_probs, real_features, real_probs, reference)
    noise_features, noise_probs = rater.rate(noise_baseline(x_train, len(x_val), params.seed))
    baseline = generative_scores(noise_features, noise_probs, real_features, real_probs, reference)
    histogram = scores.pop("class_histogram")
    classes = read_json(paths.schema).get("classes") or list(range(rater.classes))
    test = {
        **{k: v for k, v in scores.items() if k != "classes"},
        # The naive baseline: per-pixel Gaussian noise at the training rows' mean and variance.
        "baseline_fid": baseline["fid"],
        "baseline_fid_ratio": baseline["fid_ratio"],
        "baseline_inception_score": baseline["inception_score"],
        "rater_val_accuracy": rater.val_accuracy,
        "meets_bar": float(meets_bar({**scores, "class_histogram": histogram})),
    }

    clear_pngs(paths.report_dir)
    history = read_json(paths.history)
    save_gan_history_png(history, paths.report_dir / "history.png")
    grid = paths.report_dir / "samples.png"
    save_sample_grid_png(fake, fake_probs.argmax(axis=1), image_shape, classes, grid)
    write_plot_data(paths.plots_dir / "test", {})
    folder = paths.plots_dir / "test" / SAMPLES_KIND
    for old in folder.iterdir():
        old.unlink()
    (folder / "samples.png").write_bytes(grid.read_bytes())

    from neuroflow.evaluation import metrics as metric_fns

    result = metric_fns.json_safe(
        {
            "run_key": tracking.load_run_key(paths.run_info),
            "rows": len(x_test),
            "generated": len(fake),
            "test": test,
            "generated_per_class": {str(c): n for c, n in zip(classes, histogram, strict=False)},
        }
    )
    write_json(paths.metrics, result)
    log.info(
        "evaluate: fid=%.4f (real-vs-real %.4f, ratio %.2f, bar %.1f), inception score %.3f "
        "(real %.3f), %d of %d classes generated",
        test["fid"],
        test["fid_real"],
        test["fid_ratio"],
        FD_RATIO_BAR,
        test["inception_score"],
        test["inception_score_real"],
        test["classes_generated"],
        scores["classes"],
    )
    return result


def noise_baseline(x_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` rows of independent per-pixel Gaussian noise at the training rows' mean and variance
    (unclipped): what a generator that learned only the first two moments per pixel draws."""
    rng = np.random.default_rng(seed)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    return rng.normal(mean, std, size=(n, x_train.shape[1])).astype(np.float32)


def save_sample_grid_png(
    samples: np.ndarray, labels: np.ndarray, shape: list[int], classes: list[Any], path: Path
) -> None:
    """One row per class: the first GRID_PER_CLASS samples the rater assigns to it (an empty
    row is a class the generator never produced)."""
    rows, cols = len(classes), GRID_PER_CLASS
    h, w = shape[-2], shape[-1]
    canvas = np.ones((rows * (h + 1), cols * (w + 1)), dtype=np.float32)
    for r in range(rows):
        for c, i in enumerate(np.flatnonzero(labels == r)[:cols]):
            image = samples[i].reshape(h, w)  # [1, H, W] or [1, 1, D]: one channel
            canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = 1.0 - image
    with png_axes(path, figsize=(cols * 0.5 + 1, rows * 0.5 + 0.6)) as ax:
        ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_yticks([r * (h + 1) + h / 2 for r in range(rows)], [str(c) for c in classes])
        ax.set_xticks([])
        ax.set_ylabel("class the rater assigns")
        ax.set_title("Generated samples")


def save_gan_history_png(history: list[dict], path: Path) -> None:
    """Both networks' losses, and the validation Fréchet distance (pixel space) per epoch."""
    epochs = [h["epoch"] for h in history]
    with png_axes(path, figsize=(7, 4)) as ax:
        for key, label in (("d_loss", "discriminator loss"), ("g_loss", "generator loss")):
            ax.plot(epochs, [h.get(key, np.nan) for h in history], label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(loc="upper left")
        score = ax.twinx()
        score.plot(epochs, [h["val_loss"] for h in history], color="tab:green")
        score.set_ylabel("validation Fréchet distance (pixels)", color="tab:green")
        ax.set_title("GAN training")
