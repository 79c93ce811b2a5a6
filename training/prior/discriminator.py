"""The prior's discriminator over windows of normalised log-mel frames.

Two branches, each a patch critic (a logit per time region, not one per window):

* ``SpectralCritic`` — 1-D convolutions with the mel bins as channels: it sees
  whole spectra, their envelopes and how they move in time.
* ``TextureCritic`` — 2-D convolutions over the (mel x time) image: local
  patterns shared across frequency (harmonic spacing, onsets, vibrato).

Stabiliser: spectral normalisation on every layer of both branches, with the
hinge loss (``training.prior.losses``). Spectral norm bounds the critic's
Lipschitz constant at no extra backward pass, which matters on 2 CPU cores
(R1 or a gradient penalty would need a double backward every step).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from training.prior.config import DiscriminatorConfig


class SpectralCritic(nn.Module):
    """``(batch, n_mels, frames) -> logits (batch, 1, frames / 2**(len(channels)-1))`` + feature maps."""

    def __init__(self, n_mels: int, channels: tuple[int, ...], kernel_size: int, slope: float = 0.2):
        super().__init__()
        self.slope = slope
        layers = []
        c_in = n_mels
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            layers.append(spectral_norm(nn.Conv1d(c_in, c, kernel_size, stride=stride, padding=kernel_size // 2)))
            c_in = c
        self.layers = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv1d(c_in, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), self.slope)
            features.append(x)
        return self.head(x), features


class TextureCritic(nn.Module):
    """``(batch, n_mels, frames) -> logits (batch, 1, n_mels / 2**L, frames / 2**L)`` + feature maps."""

    def __init__(self, channels: tuple[int, ...], slope: float = 0.2):
        super().__init__()
        self.slope = slope
        layers = []
        c_in = 1
        for c in channels:  # every layer halves both axes: cheap on CPU, wide receptive field
            layers.append(spectral_norm(nn.Conv2d(c_in, c, 3, stride=2, padding=1)))
            c_in = c
        self.layers = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv2d(c_in, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x.unsqueeze(1)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), self.slope)
            features.append(x)
        return self.head(x), features


class Discriminator(nn.Module):
    """``(batch, n_mels, frames)`` -> (list of logit maps, list of feature maps) over all branches."""

    def __init__(self, n_mels: int = 256, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        branches = [SpectralCritic(n_mels, config.channels, config.kernel_size)]
        if config.freq_channels:
            branches.append(TextureCritic(config.freq_channels))
        self.branches = nn.ModuleList(branches)

    def forward(self, mel: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, features = [], []
        for branch in self.branches:
            out, feats = branch(mel)
            logits.append(out)
            features.extend(feats)
        return logits, features
