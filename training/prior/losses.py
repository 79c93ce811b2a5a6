"""Adversarial losses of the prior: hinge, plus unpaired feature matching.

Hinge (SN-GAN): the critic is pushed to ``>= 1`` on real and ``<= -1`` on fake
windows and stops caring beyond the margin, which with spectral norm keeps
its logits bounded. The generator maximises the critic's logit on its windows.

Feature matching (Salimans et al. 2016, "Improved techniques"): the generator
also matches the batch-and-time mean of every critic feature map on real
windows. There is no paired target here (unlike a vocoder's), so only
statistics are matched; it gives the generator a dense signal early on.

Window moments: the mean, and the spread along the real principal axes, over a
batch, of each window's time average (``window_moment_loss``). Music keeps its loudness and timbre for
seconds, so these averages vary from window to window as much as the frames do;
a generator fed fresh noise every step averages that variety away, and a critic
sees it only through its batch-std feature. Matching the moments against the
real ones, computed once over the train split, gives that variety a direct
gradient.

The same loss applies to any ``(batch, channels, T)``: window means of codes along
axes fitted once, or of the decoded mel along the real mel windows' own axes.
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


def window_means(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``(batch, channels, T) -> (batch * (T // steps), channels)``: the means of consecutive ``steps``-long windows."""
    n = x.shape[2] // steps
    if n < 1:
        raise ValueError(f"need at least {steps} steps, got {x.shape[2]}")
    w = x[:, :, :n * steps].reshape(x.shape[0], x.shape[1], n, steps).mean(dim=3)
    return w.permute(0, 2, 1).reshape(-1, x.shape[1])


def window_moment_loss(x: torch.Tensor, steps: int, target_mean: torch.Tensor, basis: torch.Tensor,
                       target_var: torch.Tensor) -> torch.Tensor:
    """``(batch, channels, T)`` -> scalar: how far ``window_means(x, steps)`` are from the real ones in
    their mean and in their spread along the real principal axes.

    ``target_mean (C,)``; ``basis (C, k)``: the real window means' top ``k`` principal axes
    (orthonormal columns); ``target_var (k,)``: the real variance along each. The loss is
    ``mean((mean - target_mean)^2) + mean(log(var_j / target_var_j)^2)``: 0 at the target,
    and each axis counts alike, a halved spread as much on the 16th axis as on the first. A
    full covariance of 128 codes from one batch (a few dozen windows) is mostly sampling
    noise; k variances are not (about sqrt(2 / n) relative error each).
    """
    m = window_means(x, steps)
    mean = m.mean(dim=0)
    var = ((m - mean) @ basis).var(dim=0)
    floor = 1e-3 * target_var.max()
    return ((mean - target_mean) ** 2).mean() + (torch.log((var + floor) / (target_var + floor)) ** 2).mean()
