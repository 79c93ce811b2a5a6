"""Causal MelGAN generator: ``(batch, 256, F)`` log10 mel -> ``(batch, F * 256)`` audio.

The paper's layout (Kumar et al. 2019) adapted to melsynth: 256 mel channels
in, upsampling ratios 8, 8, 2, 2 (product = hop 256), after each upsampling a
residual stack with dilations 1, 3, 9, weight norm, LeakyReLU 0.2, tanh out.
Every convolution is causal (left context only) and streams with explicit
state (``training.nn.conv``), so sample ``n`` depends on mel frames
``<= n // 256`` only: zero look-ahead.

Width ``channels`` is that of the first layer and halves at every upsampling
(512 = the paper, about 4.9 M parameters with 256 mel channels in).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.nn.conv import StreamConv1d, StreamConvTranspose1d, StreamState, init_weights


@dataclass(frozen=True)
class MelGANConfig:
    channels: int = 512
    ratios: tuple[int, ...] = (8, 8, 2, 2)
    dilations: tuple[int, ...] = (1, 3, 9)
    input_kernel: int = 7
    output_kernel: int = 7
    weight_norm: bool = True


class ResidualUnit(nn.Module):
    """``x + conv1x1(lrelu(dilated_conv(lrelu(x))))``, causal."""

    def __init__(self, channels: int, dilation: int, weight_norm: bool):
        super().__init__()
        self.dilated = StreamConv1d(channels, channels, 3, dilation=dilation, weight_norm=weight_norm)
        self.pointwise = StreamConv1d(channels, channels, 1, weight_norm=weight_norm)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        h = self.dilated(F.leaky_relu(x, 0.2), state)
        return x + self.pointwise(F.leaky_relu(h, 0.2), state)


class UpsampleStage(nn.Module):
    """``(batch, c, T) -> (batch, c / 2, T * ratio)``: transposed conv then a residual stack."""

    def __init__(self, in_channels: int, out_channels: int, ratio: int, dilations: tuple[int, ...],
                 weight_norm: bool):
        super().__init__()
        self.up = StreamConvTranspose1d(in_channels, out_channels, ratio, 2 * ratio, weight_norm=weight_norm)
        self.units = nn.ModuleList(ResidualUnit(out_channels, d, weight_norm) for d in dilations)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        x = self.up(F.leaky_relu(x, 0.2), state)
        for unit in self.units:
            x = unit(x, state)
        return x


class MelGANGenerator(nn.Module):
    """``forward(log_mel (batch, n_mels, F), state=None) -> audio (batch, F * hop)`` in [-1, 1]."""

    def __init__(self, spec: MelSpec, config: MelGANConfig = MelGANConfig()):
        super().__init__()
        hop = 1
        for r in config.ratios:
            hop *= r
        if hop != spec.hop_length:
            raise ValueError(f"MelGAN ratios {config.ratios} give hop {hop}, MelSpec has {spec.hop_length}")
        if config.channels % (2 ** len(config.ratios)):
            raise ValueError(f"channels={config.channels} must be divisible by 2^{len(config.ratios)}")
        self.spec, self.config = spec, config
        wn = config.weight_norm
        c = config.channels
        self.input = StreamConv1d(spec.n_mels, c, config.input_kernel, weight_norm=wn)
        stages = []
        for r in config.ratios:
            stages.append(UpsampleStage(c, c // 2, r, config.dilations, wn))
            c //= 2
        self.stages = nn.ModuleList(stages)
        self.output = StreamConv1d(c, 1, config.output_kernel, weight_norm=wn)
        init_weights(self)
        # Normalisation constants of the input (log10 mel -> about [-1, 1]) as buffers so they export.
        scale = 2.0 / (spec.norm_high - spec.norm_low)
        self.register_buffer("in_scale", torch.tensor(scale), persistent=False)
        self.register_buffer("in_shift", torch.tensor(-spec.norm_low * scale - 1.0), persistent=False)

    def forward(self, log_mel: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        x = log_mel * self.in_scale + self.in_shift
        x = self.input(x, state)
        for stage in self.stages:
            x = stage(x, state)
        x = self.output(F.leaky_relu(x, 0.2), state)
        return torch.tanh(x).squeeze(1)
