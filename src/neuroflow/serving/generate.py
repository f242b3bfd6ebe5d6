"""Serving a generator: a request for N samples, answered with N images.

A generative model's graph takes latent vectors (`latent`, (N, latent)), not raw rows, so its
`/invocations` body is `{"n": N}`, optionally with `"seed": S` to get the same images again
(standard-normal latent vectors, as in training; numpy only, no torch). The answer is
`{"images": [[...C×H×W nested lists...], ...], "shape": [C, H, W], "seed": S}` with pixels in
the training data's own units.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import numpy as np

from neuroflow.export.generator import IMAGE, LATENT

GENERATIVE = "generative"
MAX_SAMPLES = 10_000  # one request's images: ~2.5 MB of JSON at 8×8 pixels


class GenerateRequestError(ValueError):
    """A request for samples that cannot be answered; the message says what to send."""


def parse_generate(body: bytes) -> tuple[int, int]:
    """(n, seed) from a JSON body `{"n": N, "seed": S}`; a missing seed draws a fresh one."""
    try:
        request = json.loads(body or b"{}")
    except ValueError as exc:
        raise GenerateRequestError(f'a generator takes JSON {{"n": N}}; not JSON: {exc}') from exc
    if not isinstance(request, dict) or set(request) - {"n", "seed"}:
        raise GenerateRequestError(
            f'a generator takes JSON {{"n": N, "seed": S (optional)}}; got {str(request)[:80]}'
        )
    n, seed = request.get("n"), request.get("seed")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
        raise GenerateRequestError(f'"n" must be an integer from 1 to {MAX_SAMPLES}, got {n!r}')
    if seed is None:
        seed = secrets.randbelow(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise GenerateRequestError(f'"seed" must be a non-negative integer, got {seed!r}')
    return n, int(seed)


def generate_images(session: Any, n: int, seed: int) -> np.ndarray:
    """`n` images from an onnxruntime session over an exported generator, seeded."""
    (latent,) = session.get_inputs()
    z = np.random.default_rng(seed).standard_normal((n, int(latent.shape[1])), dtype=np.float32)
    (images,) = session.run([IMAGE], {LATENT: z})
    return np.asarray(images)


def generate_json(session: Any, body: bytes) -> dict[str, Any]:
    n, seed = parse_generate(body)
    images = generate_images(session, n, seed)
    return {"images": images.round(4).tolist(), "shape": list(images.shape[1:]), "seed": seed}
