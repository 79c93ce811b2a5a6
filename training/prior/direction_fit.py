"""Named directions fitted to what a knob does: a large shift shared by every latent step.

``directions.regress_directions`` finds the *average small-shift* effect of the
latent on a property (a regression slope). A knob, though, moves every step of
the stream by up to ``3 sigma`` (the app's span) along its vector, far outside the linear
regime: for a prior with a lively output the regression's "activity" direction
at ``+2 sigma`` drives the output into near silence (activity *falls* in 87% of
starting points). So each regressed direction is only the starting point of a
fit of the knob's own objective::

    maximise over unit v:  E_z0 [ tanh( (P(G(z0 + 2 v)) - P(G(z0))) / s ) ]

``z0`` a random latent sequence (``Protocol``), ``P`` the property, ``s`` its
spread over starting points; ``tanh`` makes the objective a smooth count of
starting points whose property rises (what the verification checks), so a few
huge changes cannot outvote many small losses. Adam on ``v`` through the
generator (torch autograd), on fresh starting points each step; verification
then uses other starting points, with the exact (non-smooth) properties.

Properties in torch mirror ``directions.PROPERTIES`` on ``(batch, n_mels, T)``
log10 mel; loudness, brightness and activity exactly, register through a
smooth stand-in (the lowest prominent peak with soft comparisons, "lowest" as
the first success going up the bins), since the exact one is an argmax.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.directions import VERIFY_SHIFT_SIGMAS, Protocol, _mel_centres_hz
from melsynth.training.prior.latents import hold_phrase

TorchProperty = Callable[[torch.Tensor], torch.Tensor]


def torch_properties(spec: MelSpec) -> dict[str, TorchProperty]:
    """``{name: log_mel (b, n_mels, T) -> (b,)}`` differentiable versions of ``directions.PROPERTIES``."""
    centres = torch.tensor(_mel_centres_hz(spec), dtype=torch.float32)
    octaves = torch.log2(centres.clamp(min=1.0))
    
    def loudness(x):
        energy = torch.pow(10.0, 2.0 * x).sum(dim=1)
        return (10.0 * torch.log10(energy.clamp(min=1e-20))).mean(dim=1)

    def brightness(x):
        mag = torch.pow(10.0, x).sum(dim=2)
        return (mag @ centres) / mag.sum(dim=1).clamp(min=1e-20)

    def register(x, prominence: float = 1.0, sharp: float = 20.0):
        # s_k: soft "bin k is a local maximum within `prominence` of the frame's maximum";
        # the lowest such bin is the first success of independent tries s_k going up the
        # bins, w_k = s_k * prod_{j<k} (1 - s_j); what is left goes to the frame's maximum
        # (the exact property's fallback), softly.
        inner = x[:, 1:-1]
        peak = torch.sigmoid(sharp * (inner - x[:, :-2])) * torch.sigmoid(sharp * (inner - x[:, 2:]))
        s = peak * torch.sigmoid(sharp * (inner - x.amax(dim=1, keepdim=True) + prominence))
        log_miss = torch.log1p(-s.clamp(max=1.0 - 1e-6))
        before = torch.cumsum(log_miss, dim=1) - log_miss           # exclusive: bins below k
        w = s * torch.exp(before)
        left = torch.exp(log_miss.sum(dim=1))                       # (b, T): no peak found
        fallback = torch.softmax(sharp * inner, dim=1) * left[:, None]
        height = ((w + fallback) * octaves[1:-1, None]).sum(dim=1) / (w + fallback).sum(dim=1).clamp(min=1e-30)
        weight = torch.pow(10.0, 2.0 * x).sum(dim=1)
        return (height * weight).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-20)

    def activity(x):
        return torch.relu(x[:, :, 1:] - x[:, :, :-1]).mean(dim=(1, 2))

    return {"loudness": loudness, "brightness": brightness, "register": register, "activity": activity}


@dataclass(frozen=True)
class FitConfig:
    """Adam on the unit direction: ``steps`` steps of ``batch`` fresh starting sequences each."""

    steps: int = 60
    batch: int = 16
    lr: float = 0.05
    shift_sigmas: float = VERIFY_SHIFT_SIGMAS


def fit_direction(generator, prop: TorchProperty, protocol: Protocol, spec: MelSpec, init: np.ndarray,
                  config: FitConfig = FitConfig(), seed: int = 0) -> np.ndarray:
    """A unit ``(latent_size,)`` vector from ``init`` by maximising the knob objective (module docstring)."""
    device = next(generator.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    v = torch.tensor(np.asarray(init, dtype=np.float32), device=device).clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=config.lr)
    start = protocol.warmup_steps * protocol.latent_frames
    low, span = spec.norm_low, (spec.norm_high - spec.norm_low) / 2.0

    def measure(z):
        return prop(((generator(z) + 1.0) * span + low)[:, :, start:])

    trainable = [p for p in generator.parameters() if p.requires_grad]
    for p in trainable:  # only v learns; the weights need no gradients
        p.requires_grad_(False)
    scale = None
    for _ in range(config.steps):
        z0 = hold_phrase(torch.randn(config.batch, protocol.latent_size, protocol.steps, generator=gen),
                         protocol.phrase_size).to(device)
        with torch.no_grad():
            base = measure(z0)
        if scale is None:  # the property's spread over starting points sets the tanh's knee
            scale = float(base.std()) or 1.0
        unit = v / v.norm().clamp(min=1e-8)
        moved = measure(z0 + config.shift_sigmas * unit[None, :, None])
        loss = -torch.tanh((moved - base) / scale).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in trainable:
        p.requires_grad_(True)
    with torch.no_grad():
        return (v / v.norm()).cpu().numpy().astype(np.float32)
