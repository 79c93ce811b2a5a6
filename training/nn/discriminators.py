"""Discriminators on waveforms: MelGAN's multi-scale one and a multi-resolution spectrogram one.

Each returns, for a batch of audio ``(batch, samples)``, a list over its
sub-discriminators of ``(logits, features)`` where ``logits`` is a tensor of
any shape with the batch first and ``features`` the list of hidden
activations (for feature matching). :class:`VocoderDiscriminator` chains them.
Discriminators never stream, so they use plain centred convolutions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from melsynth.training.nn.conv import init_weights, maybe_weight_norm

Output = list[tuple[torch.Tensor, list[torch.Tensor]]]


@dataclass(frozen=True)
class DiscriminatorConfig:
    scales: int = 3                      # MelGAN multi-scale: raw, /2, /4
    base_channels: int = 16
    max_channels: int = 256              # the paper uses 1024
    downsampling: tuple[int, ...] = (4, 4, 4, 4)
    # The paper's strided layers: kernel 10 r + 1, channels x4, 4 input channels per group. Grouped
    # long kernels run at ~0.1 GMAC/s in torch on CPU, so the default is dense, short and narrower.
    kernel_scale: int = 2                # strided kernel = kernel_scale * r + 1 (paper: 10)
    channel_growth: int = 2              # channels multiply by this per strided layer (paper: 4)
    channels_per_group: int = 0          # 0 = dense (paper: 4)
    spectral_resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
    spectral_channels: int = 16          # 0 = no spectrogram discriminator
    weight_norm: bool = True


class WaveformDiscriminator(nn.Module):
    """MelGAN's NLayerDiscriminator: ``(batch, 1, samples) -> (logits (batch, 1, T'), features)``."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        wn = config.weight_norm
        c = config.base_channels
        layers = [maybe_weight_norm(nn.Conv1d(1, c, 15, padding=7, padding_mode="reflect"), wn)]
        for r in config.downsampling:
            nc = min(c * config.channel_growth, config.max_channels)
            groups = max(1, c // config.channels_per_group) if config.channels_per_group else 1
            k = config.kernel_scale * r + 1
            layers.append(maybe_weight_norm(nn.Conv1d(c, nc, k, stride=r, padding=k // 2, groups=groups), wn))
            c = nc
        nc = min(c * 2, config.max_channels)
        layers.append(maybe_weight_norm(nn.Conv1d(c, nc, 5, padding=2), wn))
        self.layers = nn.ModuleList(layers)
        self.out = maybe_weight_norm(nn.Conv1d(nc, 1, 3, padding=1), wn)

    def forward(self, x: torch.Tensor):
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiScaleDiscriminator(nn.Module):
    """``(batch, samples) -> Output``: the waveform discriminator at 1x, 1/2x, 1/4x sample rate."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(WaveformDiscriminator(config) for _ in range(config.scales))

    def forward(self, audio: torch.Tensor) -> Output:
        x = audio[:, None]
        out = []
        for i, d in enumerate(self.discriminators):
            if i > 0:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


class SpectrogramDiscriminator(nn.Module):
    """One resolution: ``(batch, samples) -> (logits (batch, 1, T', F'), features)`` on log1p |STFT|."""

    def __init__(self, n_fft: int, hop: int, channels: int, weight_norm: bool):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        # Every layer halves the frequency axis first: the 2-D convolutions dominate a CPU step.
        self.layers = nn.ModuleList([
            maybe_weight_norm(nn.Conv2d(1, c, (3, 5), stride=(1, 2), padding=(1, 2)), weight_norm),
            maybe_weight_norm(nn.Conv2d(c, c, (3, 5), stride=(1, 2), padding=(1, 2)), weight_norm),
            maybe_weight_norm(nn.Conv2d(c, c, (3, 5), stride=(1, 2), padding=(1, 2)), weight_norm),
            maybe_weight_norm(nn.Conv2d(c, c, (3, 5), stride=(1, 2), padding=(1, 2)), weight_norm),
            maybe_weight_norm(nn.Conv2d(c, c, (3, 3), padding=(1, 1)), weight_norm),
        ])
        self.out = maybe_weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)), weight_norm)

    def forward(self, audio: torch.Tensor):
        spec = torch.stft(audio.float(), self.n_fft, self.hop, window=self.window, center=True,
                          return_complex=True).abs()
        x = torch.log1p(spec).transpose(1, 2)[:, None]   # (batch, 1, frames, freqs)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiResolutionSpectrogramDiscriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(
            SpectrogramDiscriminator(n, h, config.spectral_channels, config.weight_norm)
            for n, h in config.spectral_resolutions)

    def forward(self, audio: torch.Tensor) -> Output:
        return [d(audio) for d in self.discriminators]


class VocoderDiscriminator(nn.Module):
    """``(batch, samples) -> Output`` of the multi-scale and (optionally) the spectrogram discriminators."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        self.multi_scale = MultiScaleDiscriminator(config) if config.scales > 0 else None
        self.spectral = (MultiResolutionSpectrogramDiscriminator(config)
                         if config.spectral_channels > 0 and config.spectral_resolutions else None)
        if self.multi_scale is None and self.spectral is None:
            raise ValueError("DiscriminatorConfig enables no discriminator (scales=0 and no spectral resolutions)")
        init_weights(self)

    def forward(self, audio: torch.Tensor) -> Output:
        out: Output = []
        if self.multi_scale is not None:
            out += self.multi_scale(audio)
        if self.spectral is not None:
            out += self.spectral(audio)
        return out
