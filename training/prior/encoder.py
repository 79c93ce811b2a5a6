"""The training-only encoder: real mel -> a posterior over the latent sequence (the VAE warm start).

Two stages, as RAVE trains its decoder: first a VAE (this encoder, the
generator as decoder, reconstruction + KL to N(0, I)), which gives the
generator a dense learning signal and a latent space already shaped like its
prior; then the adversarial game from N(0, I) samples sharpens it. On 2 CPU
cores the warm start reaches plausible spectra in hundreds of steps where a
GAN from scratch needs thousands.

``(batch, n_mels, steps * latent_frames) -> mean, log_variance (batch, latent, steps)``.
Not causal (it is never streamed or exported): latent ``s`` is read from the
frames around step ``s``; stride-2 convolutions halve time until one vector
per ``latent_frames`` frames remains.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class Encoder(nn.Module):
    """``(batch, n_mels, S * K) -> (mean, log_var)``, each ``(batch, latent_size, S)``; ``K`` a power of 2."""

    def __init__(self, n_mels: int, latent_size: int, latent_frames: int, channels: int = 256):
        super().__init__()
        halvings = int(round(math.log2(latent_frames)))
        if 2 ** halvings != latent_frames:
            raise ValueError(f"the encoder needs latent_frames to be a power of 2, got {latent_frames}")
        self.latent_frames = latent_frames
        self.input = nn.Conv1d(n_mels, channels, 3, padding=1)
        self.down = nn.ModuleList(nn.Conv1d(channels, channels, 4, stride=2, padding=1) for _ in range(halvings))
        self.head = nn.Conv1d(channels, 2 * latent_size, 3, padding=1)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mel.shape[-1] % self.latent_frames:
            raise ValueError(f"encoder input of {mel.shape[-1]} frames is not a multiple of {self.latent_frames}")
        x = F.leaky_relu(self.input(mel), 0.2)
        for conv in self.down:
            x = F.leaky_relu(conv(x), 0.2)
        mean, log_var = self.head(x).chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 4.0)


def reparameterise(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)


def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), averaged over every latent dimension and step (nats)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).mean()
