"""The prior's latent distribution: N(0, I) per step, with a held phrase part (torch-free).

A generator with ``phrase_size > 0`` (``model.PhraseLatent``) reads its last
``phrase_size`` inputs as the phrase latent: drawn once per sequence and held,
while the rest is drawn anew every step::

    step         0    1    2   ...  S-1
    fast part    e0   e1   e2  ...  e(S-1)     (latent - phrase) x N(0, 1), independent
    phrase part  p    p    p   ...  p          phrase x N(0, 1), one draw per sequence

Every sampler that stands for "the prior's own distribution" (FD/NDB windows,
learning-curve renders, direction fits) draws through here; the engine's walk moves
the phrase part slowly instead (``engine.stream.controls.RandomWalk``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

SampleFn = Callable[[np.ndarray], np.ndarray]


def hold_phrase(z, phrase_size: int):
    """``z (batch, latent, steps)``, torch or numpy, with its last ``phrase_size`` inputs held at
    their first step's values, in place. Returns ``z``."""
    if phrase_size:
        z[:, -phrase_size:, :] = z[:, -phrase_size:, :1]
    return z


def held_sample_fn(sample: SampleFn, phrase_size: int) -> SampleFn:
    """``sample`` fed i.i.d. N(0, I) latents, made to draw each sequence's phrase part once."""
    if not phrase_size:
        return sample

    def held(z: np.ndarray) -> np.ndarray:
        return sample(hold_phrase(np.array(z, copy=True), phrase_size))

    return held
