"""Torch twin of ``engine.dsp.features``: same MelSpec, same filterbank matrix.

Used for losses on batches; a test holds it equal to the numpy path to 1e-4.
"""
from __future__ import annotations

import torch

from melsynth.engine.dsp.features import MelSpec, analysis_window, mel_filterbank, mel_pseudo_inverse


class TorchMel(torch.nn.Module):
    """``(batch, samples) -> (batch, n_mels, frames)`` log10 mel (or linear with ``log=False``)."""

    def __init__(self, spec: MelSpec):
        super().__init__()
        self.spec = spec
        self.register_buffer("window", torch.from_numpy(analysis_window(spec)).float(), persistent=False)
        self.register_buffer("basis", torch.from_numpy(mel_filterbank(spec).copy()), persistent=False)
        self.register_buffer("pinv", torch.from_numpy(mel_pseudo_inverse(spec).copy()), persistent=False)

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, samples) -> (batch, n_freqs, frames)`` complex, centred, reflect-padded."""
        s = self.spec
        return torch.stft(audio, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.n_fft,
                          window=self.window, center=True, pad_mode="reflect", return_complex=True)

    def mel_magnitude(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.basis, self.stft(audio).abs())

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log10(torch.clamp(self.mel_magnitude(audio), min=self.spec.log_floor))

    def mel_to_linear(self, log_mel: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, frames) -> (batch, n_freqs, frames)`` pseudo-inverse magnitude."""
        return torch.clamp(torch.matmul(self.pinv, torch.pow(10.0, log_mel)), min=0.0)
