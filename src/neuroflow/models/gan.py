"""Generative adversarial network: a generator (latent → image) and a discriminator (image → logit).

Two variants from params: `mlp` (fully connected, any input) and `conv` (DCGAN-style: strided
transposed convolutions up from a small grid in the generator, strided convolutions down in the
discriminator). Images travel flat (N, C·H·W) like every other network here; the generator ends
in a sigmoid because the pipeline's image scaling maps pixels into [0, 1].

`GAN.forward` is the generator: a latent batch in, flat images out. Both networks live in one
module so the engine's checkpoint, best-epoch and safetensors machinery hold them as one state.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from neuroflow.models.mlp import dense_layers

GAN_ARCHS = ("mlp", "conv")
# The DCGAN discriminator's slope: a leaky ReLU keeps gradients flowing to the generator where
# the discriminator is sure a sample is fake.
LEAK = 0.2


def _mlp_generator(latent: int, out_dim: int, hidden: list[int], batch_norm: bool) -> nn.Module:
    layers, width = dense_layers(latent, hidden, nn.ReLU, batch_norm=batch_norm)
    return nn.Sequential(*layers, nn.Linear(width, out_dim), nn.Sigmoid())


def _mlp_discriminator(in_dim: int, hidden: list[int], dropout: float) -> nn.Module:
    # The mirror of the generator: narrow towards the logit.
    mirror = list(reversed(hidden))
    layers, width = dense_layers(in_dim, mirror, lambda: nn.LeakyReLU(LEAK), dropout=dropout)
    return nn.Sequential(*layers, nn.Linear(width, 1))


class _ConvGenerator(nn.Module):
    """Linear → (widest, h0, w0) grid → [ConvTranspose(4, stride 2) → BN → ReLU]* → C channels."""

    def __init__(
        self, latent: int, shape: list[int], channels: list[int], batch_norm: bool
    ) -> None:
        super().__init__()
        c, h, w = shape
        ups = len(channels)
        self.grid = [channels[-1], h >> ups, w >> ups]
        self.project = nn.Sequential(
            nn.Linear(latent, channels[-1] * self.grid[1] * self.grid[2]),
            *([nn.BatchNorm1d(channels[-1] * self.grid[1] * self.grid[2])] if batch_norm else []),
            nn.ReLU(),
        )
        layers: list[nn.Module] = []
        widths = [*reversed(channels), c]  # widest first, the image's channels last
        for i, (w_in, w_out) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1))
            if i < ups - 1:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(w_out))
                layers.append(nn.ReLU())
        layers.append(nn.Sigmoid())
        self.up = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        grid = self.project(z).reshape(-1, *self.grid)
        return self.up(grid).flatten(1)


class _ConvDiscriminator(nn.Module):
    """[Conv(4, stride 2) → LeakyReLU → Dropout]* → Linear → one logit."""

    def __init__(self, shape: list[int], channels: list[int], dropout: float) -> None:
        super().__init__()
        self.shape = shape
        layers: list[nn.Module] = []
        width = shape[0]
        for out in channels:
            layers += [nn.Conv2d(width, out, 4, stride=2, padding=1), nn.LeakyReLU(LEAK)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = out
        self.down = nn.Sequential(*layers)
        ups = len(channels)
        self.head = nn.Linear(width * (shape[1] >> ups) * (shape[2] >> ups), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.down(x.reshape(-1, *self.shape)).flatten(1))


class GAN(nn.Module):
    """`generator` maps (N, latent) to flat images in [0, 1]; `discriminator` maps flat images to
    one real-vs-fake logit each. `forward` samples through the generator."""

    def __init__(
        self,
        image_shape: list[int],
        latent: int,
        *,
        arch: str = "conv",
        hidden: list[int] | None = None,
        channels: list[int] | None = None,
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        shape = list(image_shape)
        pixels = 1
        for s in shape:
            pixels *= s
        self.latent, self.pixels, self.image_shape = latent, pixels, shape
        if arch == "mlp":
            widths = list(hidden or [128, 256])
            self.generator = _mlp_generator(latent, pixels, widths, batch_norm)
            self.discriminator = _mlp_discriminator(pixels, widths, dropout)
        elif arch == "conv":
            widths = list(channels or [32, 64])
            if len(shape) != 3:
                raise ValueError(
                    f"gan: model.gan_arch=conv needs image data ([C, H, W]), got shape {shape}; "
                    "use model.gan_arch=mlp for feature vectors"
                )
            step = 1 << len(widths)
            if shape[1] % step or shape[2] % step:
                raise ValueError(
                    f"gan: a {shape[1]}×{shape[2]} image cannot be halved {len(widths)} times "
                    f"(model.channels={widths}); use fewer model.channels"
                )
            self.generator = _ConvGenerator(latent, shape, widths, batch_norm)
            self.discriminator = _ConvDiscriminator(shape, widths, dropout)
        else:
            raise ValueError(f"gan: model.gan_arch={arch!r} is not one of {GAN_ARCHS}")
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def _dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights, BatchNorm scale N(1, 0.02): the DCGAN recipe, which keeps both
    networks' first steps small and balanced (He init lets one side win at once)."""
    if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def sample_latent(
    n: int, latent: int, seed: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Seeded standard-normal latent vectors, the same on every machine (drawn on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent, generator=generator).to(device)


class SampleHead(nn.Module):
    """The exported generator: a latent batch (N, latent) in, images (N, C, H, W) out, in the
    data's own pixel units (the preprocessing's global scale undone), so a sample reads like an
    input row."""

    def __init__(self, gan: GAN, pixel_scale: float) -> None:
        super().__init__()
        self.generator = gan.generator
        self.image_shape = list(gan.image_shape)
        self.register_buffer("pixel_scale", torch.tensor(float(pixel_scale)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.generator(z) * self.pixel_scale).reshape(-1, *self.image_shape)
