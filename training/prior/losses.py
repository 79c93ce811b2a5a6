"""Adversarial losses of the prior: hinge, plus unpaired feature matching.

Hinge (SN-GAN): the critic is pushed to ``>= 1`` on real and ``<= -1`` on fake
windows and stops caring beyond the margin, which with spectral norm keeps
its logits bounded. The generator maximises the critic's logit on its windows.

Feature matching (Salimans et al. 2016, "Improved techniques"): the generator
also matches the batch-and-time mean of every critic feature map on real
windows. There is no paired target here (unlike a vocoder's), so only
statistics are matched; it gives the generator a dense signal early on.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F


def critic_hinge_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over branches of ``relu(1 - D(real)) + relu(1 + D(fake))``."""
    terms = [F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(terms).mean()


def generator_hinge_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over branches of ``-D(fake)``."""
    return torch.stack([-f.mean() for f in fake_logits]).mean()


def feature_statistics(features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Per-channel mean over batch and all other axes of every feature map."""
    return [f.transpose(0, 1).reshape(f.shape[1], -1).mean(dim=1) for f in features]


def feature_matching_loss(real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of ``|mean(real features) - mean(fake features)|``, real side detached."""
    real_stats = feature_statistics([f.detach() for f in real_features])
    fake_stats = feature_statistics(fake_features)
    return torch.stack([(r - f).abs().mean() for r, f in zip(real_stats, fake_stats)]).mean()
