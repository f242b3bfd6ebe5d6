"""GAN: network shapes, the adversarial step, the engine loop around it, and the scores."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroflow.config import ParamsError, load_params
from neuroflow.evaluation.generative import (
    frechet_distance,
    generative_scores,
    inception_score,
    meets_bar,
)
from neuroflow.models.factory import build_model
from neuroflow.models.gan import GAN, SampleHead
from neuroflow.models.spec import ModelSpec
from neuroflow.training.engine import TensorSplits, TrainSettings, fit
from neuroflow.training.gan import AdversarialStep, GanSettings, generate


def gan_spec(arch: str = "conv", **kw: object) -> ModelSpec:
    base: dict = {
        "type": "gan",
        "task": "generative",
        "input_dim": 64,
        "output_dim": 64,
        "input_shape": [1, 8, 8],
        "latent": 16,
        "gan_arch": arch,
        "hidden": [32, 64],
        "channels": [8, 16],
        "batch_norm": True,
    }
    return ModelSpec(**(base | kw))


def images(n: int, seed: int = 0) -> torch.Tensor:
    """Blurry 8×8 strokes in [0, 1]: enough structure for a step to move both networks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    x[:, :, :, 3:5] += 1.0
    return (x / 2).clamp(0, 1).flatten(1)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_shapes_and_range(arch: str) -> None:
    torch.manual_seed(0)
    gan = build_model(gan_spec(arch))
    assert isinstance(gan, GAN)
    z = torch.randn(5, 16)
    fake = gan(z).detach()
    assert fake.shape == (5, 64)
    assert float(fake.min()) >= 0.0 and float(fake.max()) <= 1.0  # the processed pixel scale
    assert gan.discriminator(fake).shape == (5, 1)
    head = SampleHead(gan.eval(), pixel_scale=16.0)
    out = head(z)
    assert out.shape == (5, 1, 8, 8)  # an image per latent row, in the data's own units
    torch.testing.assert_close(out.flatten(1), gan(z) * 16.0)


def test_conv_refuses_an_image_it_cannot_halve() -> None:
    with pytest.raises(ValueError, match="cannot be halved 4 times"):
        build_model(gan_spec(channels=[4, 8, 16, 32]))
    with pytest.raises(ValueError, match="needs image data"):
        build_model(gan_spec(input_shape=[64]))
    assert build_model(gan_spec("mlp", input_shape=[64]))(torch.randn(2, 16)).shape == (2, 64)


@pytest.mark.parametrize("d_steps", [1, 2])
def test_one_training_step_changes_both_networks(d_steps: int) -> None:
    torch.manual_seed(0)
    gan = build_model(gan_spec())
    assert isinstance(gan, GAN)
    hook = AdversarialStep(GanSettings(d_steps=d_steps), seed=0)
    settings = TrainSettings(lr=1e-3)
    optimizer = hook.make_optimizer(gan, settings)
    before_g = [p.detach().clone() for p in gan.generator.parameters()]
    before_d = [p.detach().clone() for p in gan.discriminator.parameters()]
    gan.train()
    losses = hook.train_step(
        gan, images(32), optimizer=optimizer, settings=settings, autocast=lambda: nullcontext()
    )
    assert losses.shape == (2,) and bool(torch.isfinite(losses).all())
    moved_g = [
        not torch.equal(a, b) for a, b in zip(before_g, gan.generator.parameters(), strict=True)
    ]
    moved_d = [
        not torch.equal(a, b) for a, b in zip(before_d, gan.discriminator.parameters(), strict=True)
    ]
    assert all(moved_g), "every generator tensor takes a step"
    assert all(moved_d), "every discriminator tensor takes a step"
    # The discriminator's parameters are left trainable after the generator's step.
    assert all(p.requires_grad for p in gan.discriminator.parameters())


def nullcontext() -> object:
    import contextlib

    return contextlib.nullcontext()


def splits(n: int = 96) -> TensorSplits:
    x = images(n + 48, seed=1)
    y = torch.zeros(len(x), dtype=torch.int64)
    return TensorSplits(x[:n], y[:n], x[n:], y[n:])


def train(epochs: int, checkpoints: Path | None, seed: int = 0) -> tuple[GAN, list[dict]]:
    torch.manual_seed(seed)
    gan = build_model(gan_spec())
    assert isinstance(gan, GAN)
    result = fit(
        gan,
        splits(),
        TrainSettings(epochs=epochs, batch_size=32, lr=1e-3, device="cpu", seed=seed, patience=50),
        checkpoint_dir=checkpoints,
        fingerprint="gan-test",
        step_hook=AdversarialStep(GanSettings(val_samples=64), seed=seed),
    )
    return gan, [r.as_dict() for r in result.history]


def test_engine_loop_records_both_losses_and_resumes_exactly(tmp_path: Path) -> None:
    whole, history = train(3, tmp_path / "whole")
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for row in history:
        assert row["d_loss"] > 0 and row["g_loss"] > 0
        assert row["train_loss"] == pytest.approx(row["d_loss"] + row["g_loss"])
        assert row["val_loss"] > 0  # the validation Fréchet distance, the early-stopping score
    train(2, tmp_path / "split")  # interrupted after two epochs ...
    resumed, resumed_history = train(3, tmp_path / "split")  # ... and resumed to three
    assert resumed_history == [
        {**r, "seconds": s["seconds"]} for r, s in zip(history, resumed_history, strict=True)
    ]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=f"{name} differs after resuming")


def test_generate_is_seeded_and_in_range() -> None:
    torch.manual_seed(0)
    gan = build_model(gan_spec())
    assert isinstance(gan, GAN)
    a, b = generate(gan, 10, seed=3), generate(gan, 10, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 64) and not np.array_equal(a, generate(gan, 10, seed=4))


def test_frechet_distance_real_vs_real_is_near_zero() -> None:
    rng = np.random.default_rng(0)
    cov = np.diag([1.0, 4.0, 0.25])
    a = rng.multivariate_normal([0, 0, 0], cov, size=20_000)
    b = rng.multivariate_normal([0, 0, 0], cov, size=20_000)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, b) < 0.01
    # Closed form for diagonal covariances: |Δmu|² + Σ (σ_a - σ_b)².
    c = rng.multivariate_normal([1, 0, 0], np.diag([4.0, 4.0, 0.25]), size=20_000)
    assert frechet_distance(a, c) == pytest.approx(1.0 + 1.0, rel=0.05)


def test_inception_score_bounds() -> None:
    sure = np.eye(10)[np.arange(100) % 10]
    assert inception_score(sure) == pytest.approx(10.0)  # confident and every class
    assert inception_score(np.tile(np.eye(10)[3], (100, 1))) == pytest.approx(1.0)  # one class
    assert inception_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)  # never confident


def test_scores_and_bar() -> None:
    rng = np.random.default_rng(0)
    real, reference = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    probs = np.eye(10)[np.arange(300) % 10]
    same = generative_scores(rng.normal(size=(300, 4)), probs, real, probs, reference)
    assert same["classes_generated"] == 10 and meets_bar(same)
    assert same["fid_ratio"] < 3.0
    collapsed = np.tile(np.eye(10)[0], (300, 1))
    off = generative_scores(rng.normal(3, 1, size=(300, 4)), collapsed, real, probs, reference)
    assert off["fid_ratio"] > 3.0 and off["classes_generated"] == 1 and not meets_bar(off)
    assert off["class_histogram"] == [300] + [0] * 9


PAIRED = re.escape("task=generative and model.type=gan go together")


def test_params_pair_generative_with_gan(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("seed: 1\n")
    ok = load_params(params, {"task": "generative", "model.type": "gan", "data.name": "digits"})
    assert ok.model.gan_arch == "conv" and ok.train.gan_d_steps == 1
    with pytest.raises(ParamsError, match=PAIRED):
        load_params(params, {"task": "generative", "model.type": "mlp"})
    with pytest.raises(ParamsError, match=PAIRED):
        load_params(params, {"task": "multiclass", "model.type": "gan"})
    with pytest.raises(ParamsError, match="gan_label_smoothing"):
        load_params(
            params, {"task": "generative", "model.type": "gan", "train.gan_label_smoothing": 0.7}
        )
