"""Vocoder losses: phase (anti-wrapping), amplitude, consistency, mel, multi-resolution STFT, GAN.

Shapes: STFT frames ``(batch, n_freqs, frames)`` complex or real/imag pairs;
audio ``(batch, samples)``; log-mel ``(batch, n_mels, frames)`` log10.

Phase is supervised through differences, not absolute values: absolute phase
is not a function of the mel (and drifts freely under integration), but the
instantaneous frequency (time difference) and the group delay (frequency
difference) are. Differences are compared through the anti-wrapping function
``|x - 2 pi round(x / 2 pi)|`` (APNet), weighted by the target amplitude so
near-silent bins, whose phase is noise, do not count.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from melsynth.training.features import TorchMel


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """``|x - 2 pi round(x / 2 pi)|``: distance of an angle difference to 0 on the circle."""
    return torch.abs(x - 2.0 * math.pi * torch.round(x / (2.0 * math.pi)))


def amplitude_weights(amplitude: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """``(batch, freqs, frames)`` weights ``(A / max A)^power`` per item; the phase losses' mask."""
    peak = amplitude.flatten(1).amax(dim=1).clamp(min=1e-8)[:, None, None]
    return (amplitude / peak).pow(power)


def phase_losses(pred_phase: torch.Tensor, true_phase: torch.Tensor, weight: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
    """Weighted anti-wrapping losses on instantaneous frequency (``if``) and group delay (``gd``).

    All inputs ``(batch, freqs, frames)``; a difference's weight is the
    geometric mean of its two bins' weights.
    """
    def weighted(diff_pred, diff_true, w):
        return (anti_wrap(diff_pred - diff_true) * w).sum() / w.sum().clamp(min=1e-8)

    w_t = torch.sqrt(weight[..., 1:] * weight[..., :-1])
    w_f = torch.sqrt(weight[:, 1:] * weight[:, :-1])
    return {
        "if": weighted(torch.diff(pred_phase, dim=-1), torch.diff(true_phase, dim=-1), w_t),
        "gd": weighted(torch.diff(pred_phase, dim=-2), torch.diff(true_phase, dim=-2), w_f),
    }


def log_amplitude_l1(pred_log_amp: torch.Tensor, true_amp: torch.Tensor, floor: float = 1e-5) -> torch.Tensor:
    """L1 between natural-log amplitudes."""
    return F.l1_loss(pred_log_amp, torch.log(true_amp.clamp(min=floor)))


def complex_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``|pred - target|`` of complex tensors, normalised by the target's mean magnitude."""
    return (pred - target).abs().mean() / target.abs().mean().clamp(min=1e-8)


class STFTLosses(torch.nn.Module):
    """Waveform-domain losses on a fixed set of STFT resolutions.

    ``multi_resolution(pred, target)``: mean over resolutions of log10
    magnitude L1 (the evaluation's MR-STFT metric, floored at 1e-5) plus spectral
    convergence. ``mel(pred_audio, target_log_mel)``: log10 mel L1.
    """

    def __init__(self, mel: TorchMel, ffts: tuple[int, ...] = (512, 1024, 2048), floor: float = 1e-5):
        super().__init__()
        self.mel = mel
        self.ffts = tuple(ffts)
        self.floor = floor
        for n in self.ffts:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def magnitude(self, audio: torch.Tensor, n_fft: int) -> torch.Tensor:
        return torch.stft(audio, n_fft, n_fft // 4, window=getattr(self, f"window_{n_fft}"), center=True,
                          pad_mode="reflect", return_complex=True).abs()

    def multi_resolution(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        log_l1 = pred.new_zeros(())
        sc = pred.new_zeros(())
        for n in self.ffts:
            p, t = self.magnitude(pred, n), self.magnitude(target, n)
            log_l1 = log_l1 + F.l1_loss(torch.log10(p.clamp(min=self.floor)), torch.log10(t.clamp(min=self.floor)))
            sc = sc + torch.linalg.vector_norm(p - t) / torch.linalg.vector_norm(t).clamp(min=1e-8)
        k = len(self.ffts)
        return {"mrstft": log_l1 / k, "spectral_convergence": sc / k}

    def mel_l1(self, pred_audio: torch.Tensor, target_log_mel: torch.Tensor) -> torch.Tensor:
        pred = self.mel(pred_audio)
        frames = min(pred.shape[-1], target_log_mel.shape[-1])
        return F.l1_loss(pred[..., :frames], target_log_mel[..., :frames])


def consistency_l1(mel: TorchMel, frames: torch.Tensor, n_samples: int) -> torch.Tensor:
    """STFT consistency: ``|S - STFT(iSTFT(S))|`` relative to ``|S|`` (APNet's consistency loss)."""
    s = mel.spec
    audio = torch.istft(frames, s.n_fft, s.hop_length, s.n_fft, window=mel.window, center=True, length=n_samples)
    again = mel.stft(audio)
    n = min(again.shape[-1], frames.shape[-1])
    return complex_l1(frames[..., :n], again[..., :n])


# --------------------------------------------------------------------------- adversarial
def discriminator_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor], kind: str = "hinge"
                       ) -> torch.Tensor:
    """Mean over sub-discriminators; ``kind`` ``hinge`` or ``lsgan``."""
    total = real_logits[0].new_zeros(())
    for r, f in zip(real_logits, fake_logits):
        if kind == "hinge":
            total = total + F.relu(1 - r).mean() + F.relu(1 + f).mean()
        elif kind == "lsgan":
            total = total + ((r - 1) ** 2).mean() + (f ** 2).mean()
        else:
            raise ValueError(f"unknown GAN loss {kind!r} (hinge or lsgan)")
    return total / len(real_logits)


def generator_adversarial_loss(fake_logits: list[torch.Tensor], kind: str = "hinge") -> torch.Tensor:
    total = fake_logits[0].new_zeros(())
    for f in fake_logits:
        if kind == "hinge":
            total = total - f.mean()
        elif kind == "lsgan":
            total = total + ((f - 1) ** 2).mean()
        else:
            raise ValueError(f"unknown GAN loss {kind!r} (hinge or lsgan)")
    return total / len(fake_logits)


def feature_matching_loss(real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
                          ) -> torch.Tensor:
    """Mean L1 between real (detached) and fake hidden activations, over layers and discriminators."""
    total, count = None, 0
    for rf, ff in zip(real_features, fake_features):
        for r, f in zip(rf, ff):
            term = F.l1_loss(f, r.detach())
            total = term if total is None else total + term
            count += 1
    return total / max(count, 1)


def split_batch(outputs: list[tuple[torch.Tensor, list[torch.Tensor]]], n_real: int):
    """Split a discriminator output on ``cat([real, fake])`` into ``(real_logits, fake_logits, real_feats, fake_feats)``."""
    real_logits = [o[0][:n_real] for o in outputs]
    fake_logits = [o[0][n_real:] for o in outputs]
    real_feats = [[f[:n_real] for f in o[1]] for o in outputs]
    fake_feats = [[f[n_real:] for f in o[1]] for o in outputs]
    return real_logits, fake_logits, real_feats, fake_feats
