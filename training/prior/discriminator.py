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

from melsynth.training.prior.config import DiscriminatorConfig
from melsynth.training.prior.pca import MelPCA

MINIBATCH_GROUP = 4


def minibatch_std(x: torch.Tensor, group: int = MINIBATCH_GROUP) -> torch.Tensor:
    """``(batch, C, T) -> (batch, C + 1, T)``: ProGAN's feature, the std across a group of samples.

    Groups are contiguous runs of the batch (one group when the batch is not a
    multiple of the group size); the prior's losses pass real and generated
    windows separately, so a group never mixes the two.
    """
    b = x.shape[0]
    g = group if b % group == 0 else b
    y = x.reshape(b // g, g, *x.shape[1:])
    std = torch.sqrt(y.var(dim=1, unbiased=False) + 1e-8).mean(dim=1, keepdim=True)   # (b/g, 1, T)
    return torch.cat([x, std.repeat_interleave(g, dim=0)], dim=1)


class SpectralCritic(nn.Module):
    """``(batch, n_mels, frames) -> logits (batch, 1, frames / 2**(len(channels)-1))`` + feature maps."""

    def __init__(self, n_mels: int, channels: tuple[int, ...], kernel_size: int, slope: float = 0.2,
                 batch_std: bool = False, delta: bool = False):
        super().__init__()
        self.slope = slope
        self.batch_std = batch_std
        self.delta = delta
        n_mels = 2 * n_mels if delta else n_mels
        layers = []
        c_in = n_mels
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            layers.append(spectral_norm(nn.Conv1d(c_in, c, kernel_size, stride=stride, padding=kernel_size // 2)))
            c_in = c
        self.layers = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv1d(c_in + int(batch_std), 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.delta:
            # Measured: critics on the frames alone let generators settle on static drones
            # (per-window std 0.05 against the corpus's 0.53); the differences make motion explicit.
            x = torch.cat([x, F.pad(x[:, :, 1:] - x[:, :, :-1], (1, 0))], dim=1)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), self.slope)
            features.append(x)
        if self.batch_std:
            x = minibatch_std(x)
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

    def __init__(self, n_mels: int = 256, config: DiscriminatorConfig | None = None, pca_components: int = 0):
        super().__init__()
        self.config = config = config or DiscriminatorConfig()
        if config.pca_input and not pca_components:
            raise ValueError("pca_input needs the generator's pca_components > 0")
        # The same frozen basis as the generator's (set by the task); buffers, so checkpoints keep it.
        self.pca = MelPCA(n_mels, pca_components) if config.pca_input else None
        spectral_in = pca_components if config.pca_input else n_mels
        branches = [SpectralCritic(spectral_in, config.channels, config.kernel_size, batch_std=config.minibatch_std,
                                   delta=config.delta_input)]
        if config.freq_channels:
            branches.append(TextureCritic(config.freq_channels))
        self.branches = nn.ModuleList(branches)

    def forward(self, mel: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, features = [], []
        for i, branch in enumerate(self.branches):
            out, feats = branch(self.pca.project(mel) if i == 0 and self.pca is not None else mel)
            logits.append(out)
            features.extend(feats)
        return logits, features
