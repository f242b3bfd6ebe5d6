"""The adversarial step: what a GAN does with a batch, plugged into the engine's one loop.

`fit(..., step_hook=AdversarialStep(...))` keeps everything else of the engine (checkpoints and
exact resume, best epoch, early stopping, schedules, progress, history). Per real batch the
discriminator takes `d_steps` updates, each on fresh noise, then the generator takes one:

- discriminator: BCE(D(real), 1 - label_smoothing) + BCE(D(G(z)), 0)  (one-sided smoothing:
  a discriminator that is never fully sure keeps giving the generator a gradient);
- generator: the non-saturating BCE(D(G(z)), 1).

Both networks share one Adam with a parameter group each (beta1 = 0.5 by default, the DCGAN
setting), so the optimiser's state is one checkpointed object; a step only moves the network
whose loss it took (the other one's gradients are never computed).

Validation: the GAN losses say who is winning, not how good the samples are. The epoch's score
(lower is better, the engine's `val_loss`) is the Fréchet distance, in pixel space, between a
fixed batch of generated samples (seeded noise, the same every epoch) and the validation rows.
Evaluate rates the chosen generator in a trained classifier's feature space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce_logits

from neuroflow.evaluation.generative import frechet_distance
from neuroflow.models.gan import GAN, sample_latent
from neuroflow.training.engine import TrainSettings


@dataclass(frozen=True)
class GanSettings:
    d_steps: int = 1  # discriminator updates per generator update
    label_smoothing: float = 0.1  # the real label is 1 - this
    beta1: float = 0.5  # Adam's first-moment decay for both networks
    val_samples: int = 1000  # generated rows scored against the validation split per epoch


@torch.no_grad()
def generate(model: GAN, n: int, seed: int, batch: int = 4096) -> np.ndarray:
    """`n` flat samples in the processed pixel scale from seeded noise, generator in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    z = sample_latent(n, model.latent, seed, device)
    out = [model(z[i : i + batch]).float().cpu() for i in range(0, n, batch)]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.pixels), np.float32)


class AdversarialStep:
    """The engine's `StepHook` for `GAN` models (see `training.engine.StepHook`)."""

    parts: tuple[str, ...] = ("d_loss", "g_loss")

    def __init__(self, settings: GanSettings, seed: int) -> None:
        self.settings = settings
        self.seed = seed

    def make_optimizer(self, model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
        gan = _gan(model)
        if s.optimizer not in ("adam", "adamw"):
            raise ValueError(f"model.type=gan trains with adam or adamw, not {s.optimizer!r}")
        groups = [
            {"params": list(gan.generator.parameters())},
            {"params": list(gan.discriminator.parameters())},
        ]
        cls = torch.optim.Adam if s.optimizer == "adam" else torch.optim.AdamW
        return cls(groups, lr=s.lr, betas=(self.settings.beta1, 0.999), weight_decay=s.weight_decay)

    def timing(self, model: nn.Module, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        """What the CPU thread probe times: the discriminator on a real batch."""
        return _gan(model).discriminator, x

    def train_step(
        self,
        model: nn.Module,
        xb: torch.Tensor,
        *,
        optimizer: torch.optim.Optimizer,
        settings: TrainSettings,
        autocast: Callable[[], Any],
    ) -> torch.Tensor:
        """`d_steps` discriminator updates then one generator update; the detached mean
        discriminator loss and the generator loss, stacked (device tensors, no sync)."""
        gan = _gan(model)
        d, g = gan.discriminator, gan.generator
        n = len(xb)
        real_target = torch.full((n, 1), 1.0 - self.settings.label_smoothing, device=xb.device)
        fake_target = torch.zeros((n, 1), device=xb.device)
        d_total = torch.zeros((), device=xb.device)
        for _ in range(self.settings.d_steps):
            z = torch.randn(n, gan.latent, device=xb.device)
            with torch.no_grad(), autocast():
                fake = g(z)
            with autocast():
                logits_real, logits_fake = d(xb), d(fake.detach())
            d_loss = bce_logits(logits_real.float(), real_target) + bce_logits(
                logits_fake.float(), fake_target
            )
            _update(optimizer, d_loss, d, settings.grad_clip)
            d_total = d_total + d_loss.detach()
        z = torch.randn(n, gan.latent, device=xb.device)
        d.requires_grad_(False)  # the generator's loss moves the generator only
        try:
            with autocast():
                logits = d(g(z))
            g_loss = bce_logits(logits.float(), torch.ones_like(fake_target))
            _update(optimizer, g_loss, g, settings.grad_clip)
        finally:
            d.requires_grad_(True)
        return torch.stack([d_total / self.settings.d_steps, g_loss.detach()])

    @torch.no_grad()
    def validate(
        self, model: nn.Module, x_val: torch.Tensor, autocast: Callable[[], Any]
    ) -> torch.Tensor:
        """Pixel-space Fréchet distance of a fixed generated batch to the validation rows."""
        gan = _gan(model)
        fake = generate(gan, self.settings.val_samples, self.seed)
        real = x_val.float().cpu().numpy()
        return torch.tensor(frechet_distance(fake, real), device=x_val.device)


def _update(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, net: nn.Module, clip: float
) -> None:
    optimizer.zero_grad(set_to_none=True)  # the other network's grads stay None: Adam skips them
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(net.parameters(), clip)
    optimizer.step()


def _gan(model: nn.Module) -> GAN:
    if not isinstance(model, GAN):
        raise TypeError(f"the adversarial step trains a GAN, got {type(model).__name__}")
    return model
