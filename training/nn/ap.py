"""Amplitude-phase generator: ``(batch, 256, F)`` log10 mel -> complex STFT frames ``(batch, 513, F)``.

The CPU default (the FreeV / APNet2 / Vocos lineage): a frame-rate ConvNeXt
trunk with causal depthwise convolutions, and heads that predict

- **log-amplitude** as a residual on the mel pseudo-inverse (amplitude is
  nearly right at step 0; the network learns to sharpen the blurred prior);
- **phase with explicit causal state**. A stateless head cannot keep a
  sustained partial's phase advancing (identical mel frames would give
  identical phases), so the phase is *integrated*: the head predicts each
  bin's instantaneous-frequency deviation from its bin centre, and the
  integrator accumulates ``psi[t, k] = psi[t-1, k] + pi k / 2 + dev[t, k]``
  (``2 pi k hop / n_fft = pi k / 2`` is bin ``k``'s centre advance per hop)
  as streaming state;
- **phase locking**: each bin takes a softmax-weighted mix of the integrated
  phasors of its ``2R + 1`` neighbours, so the bins under one partial's main
  lobe can share one phase (their integrators started from unrelated values),
  the learned form of a phase vocoder's peak locking;
- a stateless **phase offset** per bin (transient / group-delay corrections).

Phase reference. ``torch.stft`` frames are referenced to the frame start,
not its centre, so a stationary sinusoid's bins carry an extra ``-pi k``::

    X[t, k] ~ A W(w - w_k) exp(i (w t hop + theta - pi k))
    psi     = angle(X) + pi k      equal across a partial's main lobe

The integrator and locking work on ``psi``; the output multiplies by
``(-1)^k`` to return to ``torch.stft``'s convention (the engine's inverse STFT
uses the same one).

Exact streaming. The integrator sums in float64 and keeps its state as two
float32 numbers (``hi + lo``), so streaming matches offline to ~1e-12 rad
whatever the chunking, and the state stays float32 for the bundle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from melsynth.engine.dsp.features import MelSpec, mel_pseudo_inverse
from melsynth.training.nn.conv import Stateful, StreamConv1d, StreamState, depthwise_conv


@dataclass(frozen=True)
class APConfig:
    dim: int = 192
    layers: int = 4
    mlp_ratio: float = 2.0
    kernel: int = 7                 # causal depthwise kernel (frames)
    input_kernel: int = 3           # causal input convolution (frames)
    lock_radius: int = 1            # phase locking over 2R + 1 neighbouring bins
    lock_self_bias: float = 2.0     # initial preference for a bin's own integrator
    max_log_amp: float = 7.0        # natural-log amplitude ceiling (|STFT| of full-scale audio ~ 256)
    amp_floor: float = 1e-5


class ConvNeXtBlock(nn.Module):
    """``(batch, dim, F) -> (batch, dim, F)``: causal depthwise conv, LayerNorm, MLP, layer scale."""

    def __init__(self, dim: int, hidden: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = depthwise_conv(dim, kernel)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        h = self.dwconv(x, state).transpose(1, 2)
        h = self.pw2(F.gelu(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


class PhaseIntegrator(Stateful):
    """``(batch, bins, F)`` per-frame phase increments -> wrapped running phase in ``[0, 2 pi)``.

    State ``(batch, bins, 2)`` float32: the last wrapped phase as ``hi + lo``.
    """

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def state_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, self.bins, 2)

    def forward(self, increment: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        two_pi = 2.0 * math.pi
        total = torch.cumsum(increment.to(torch.float64), dim=-1)
        if state is not None:
            prev = state.take(self).to(torch.float64)
            total = total + (prev[..., 0:1] + prev[..., 1:2])
        wrapped = total - two_pi * torch.floor(total / two_pi)
        if state is not None:
            last = wrapped[..., -1:]
            hi = last.to(torch.float32)
            lo = (last - hi.to(torch.float64)).to(torch.float32)
            state.put(self, torch.cat([hi, lo], dim=-1))
        return wrapped.to(torch.float32)


class APGenerator(nn.Module):
    """``forward(log_mel (batch, n_mels, F), state=None) -> (real, imag)`` each ``(batch, n_freqs, F)``.

    ``components(log_mel)`` returns the intermediate quantities for the losses.
    """

    def __init__(self, spec: MelSpec, config: APConfig = APConfig()):
        super().__init__()
        self.spec, self.config = spec, config
        bins = spec.n_freqs
        self.bins = bins
        n_lock = 2 * config.lock_radius + 1
        self.input = StreamConv1d(spec.n_mels, config.dim, config.input_kernel)
        hidden = int(config.dim * config.mlp_ratio)
        self.blocks = nn.ModuleList(ConvNeXtBlock(config.dim, hidden, config.kernel, 1.0 / config.layers)
                                    for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        # Heads: log-amp residual, IF deviation, phase offset, locking logits.
        self.head = nn.Linear(config.dim, bins * (3 + n_lock))
        self.integrator = PhaseIntegrator(bins)
        self._init()
        k = torch.arange(bins, dtype=torch.float64)
        advance = torch.remainder(2.0 * math.pi * k * spec.hop_length / spec.n_fft, 2.0 * math.pi)
        self.register_buffer("bin_advance", advance.float()[None, :, None], persistent=False)
        self.register_buffer("bin_sign", torch.where(k.long() % 2 == 0, 1.0, -1.0).float()[None, :, None],
                             persistent=False)
        self.register_buffer("pinv", torch.from_numpy(mel_pseudo_inverse(spec).copy()), persistent=False)
        scale = 2.0 / (spec.norm_high - spec.norm_low)
        self.register_buffer("in_scale", torch.tensor(scale), persistent=False)
        self.register_buffer("in_shift", torch.tensor(-spec.norm_low * scale - 1.0), persistent=False)
        lock_bias = torch.zeros(n_lock)
        lock_bias[config.lock_radius] = config.lock_self_bias
        self.register_buffer("lock_bias", lock_bias[None, :, None, None], persistent=False)

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # Heads start at "prior amplitude, bin-centre frequency, no offset".
        nn.init.normal_(self.head.weight, 0.0, 1e-3)

    def prior_log_amplitude(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, F) -> (batch, n_freqs, F)`` natural-log pseudo-inverse magnitude."""
        lin = torch.matmul(self.pinv, torch.pow(10.0, log_mel))
        return torch.log(torch.clamp(lin, min=self.config.amp_floor))

    def components(self, log_mel: torch.Tensor, state: StreamState | None = None) -> dict[str, torch.Tensor]:
        """All outputs: ``log_amp``, ``real``, ``imag`` ``(batch, n_freqs, F)``."""
        cfg = self.config
        h = self.input(log_mel * self.in_scale + self.in_shift, state)
        for block in self.blocks:
            h = block(h, state)
        out = self.head(self.norm(h.transpose(1, 2))).transpose(1, 2)   # (B, bins * (3 + n_lock), F)
        b, _, frames = out.shape
        bins = self.bins
        d_log_amp = out[:, :bins]
        deviation = math.pi * torch.tanh(out[:, bins:2 * bins])
        offset = out[:, 2 * bins:3 * bins]
        lock_logits = out[:, 3 * bins:].reshape(b, -1, bins, frames) + self.lock_bias
        log_amp = torch.clamp(self.prior_log_amplitude(log_mel) + d_log_amp, max=cfg.max_log_amp)
        psi = self.integrator(self.bin_advance + deviation, state)
        # Phase locking: mix neighbouring integrated phasors (zero phasors beyond the band edges).
        r = cfg.lock_radius
        # Softmax over the neighbour axis written out: onnxruntime's Softmax on a non-last axis
        # transposes internally and was the slowest node of the graph.
        peak = lock_logits.amax(dim=1, keepdim=True)
        expd = torch.exp(lock_logits - peak)
        weights = expd / expd.sum(dim=1, keepdim=True)
        cos_p = F.pad(torch.cos(psi), (0, 0, r, r))
        sin_p = F.pad(torch.sin(psi), (0, 0, r, r))
        z_re = weights[:, 0] * cos_p[:, 0:bins]
        z_im = weights[:, 0] * sin_p[:, 0:bins]
        for j in range(1, 2 * r + 1):
            z_re = z_re + weights[:, j] * cos_p[:, j:j + bins]
            z_im = z_im + weights[:, j] * sin_p[:, j:j + bins]
        inv = torch.rsqrt(z_re * z_re + z_im * z_im + 1e-6)
        # Rotate by the offset and return to torch.stft's frame-start reference ((-1)^k).
        rot_re = torch.cos(offset) * self.bin_sign
        rot_im = torch.sin(offset) * self.bin_sign
        amp = torch.exp(log_amp) * inv
        real = amp * (z_re * rot_re - z_im * rot_im)
        imag = amp * (z_re * rot_im + z_im * rot_re)
        return {"log_amp": log_amp, "real": real, "imag": imag}

    def forward(self, log_mel: torch.Tensor, state: StreamState | None = None):
        c = self.components(log_mel, state)
        return c["real"], c["imag"]
