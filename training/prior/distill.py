"""A smaller prior learned from a trained one: regression on the teacher's own outputs.

The adversarial game is slow on 2 cores (the shipped 2.55 M-parameter prior needed a GPU
to reach fd_ratio 3.2). A smaller generator plays faster (the engine's latency target
wants it), but trained as a GAN from nothing it stalled near 6. Here the student sees
the teacher's mel for the very same latents, a dense, deterministic target:

    z (batch, latent, steps)  --teacher (frozen, no grad)-->  mel_t (batch, n_mels, steps * L)
                              --student------------------->  mel_s
    loss = |mel_s - mel_t|  +  delta_weight * |diff_t(mel_s) - diff_t(mel_t)|

Both start from zero state, as a stream in the engine does, so the student also
learns the teacher's first frames. The latents are drawn the ways the engine draws
them, so the student matches the teacher where players go, not only on the training
distribution:

* ``iid``:  a fresh N(0, I) latent every step (how the prior was trained; what
  ``melsynth eval prior`` samples);
* ``walk``: the engine's latent walk (``engine.stream.controls``): a held point, part of it
  replaced by a unit-spread Ornstein-Uhlenbeck walk of random speed and spread;
* either, plus knob offsets: up to ``knobs_per_sequence`` of the teacher bundle's
  directions at ``U(-knob_sigma_max, +knob_sigma_max)`` sigma, the same for every
  step, set at a random step (a knob move in the middle of a phrase).

The student's latent space is the teacher's, so the teacher's knobs mean the same
on it; ``melsynth export prior`` fits and verifies them on the student all the same.
Validation, checkpoints and the learning curve are ``training.gan``'s, as for any
prior; the student's checkpoint is an ordinary prior checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.gan import LossOutput, TrainError, unwrap
from melsynth.training.prior.config import ConfigError, PriorConfig, _from_dict
from melsynth.training.prior.from_bundle import generator_from_bundle, is_bundle
from melsynth.training.prior.train import PriorTask, load_generator


@dataclass(frozen=True)
class DistillConfig:
    """What the student learns from (saved with the run)."""

    teacher: str = ""                 # a bundle folder (its prior), or a prior run folder or checkpoint
    directions_bundle: str = ""       # bundle whose prior directions are the knobs; "" = no knob offsets
    sequence_steps: int = 10          # latent steps per training sequence, from zero state
    walk_fraction: float = 0.5        # share of sequences drawn as the engine's walk (else iid)
    knob_fraction: float = 0.5        # share of sequences with knob offsets
    knobs_per_sequence: int = 3
    knob_sigma_max: float = 3.0       # the app's knob range
    delta_weight: float = 1.0         # weight of the frame-difference term (onsets, motion)

    def __post_init__(self) -> None:
        if self.sequence_steps < 1:
            raise ConfigError(f"sequence_steps={self.sequence_steps} must be >= 1")
        for name in ("walk_fraction", "knob_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}={v} must be in [0, 1]")
        if self.knobs_per_sequence < 0 or self.knob_sigma_max < 0 or self.delta_weight < 0:
            raise ConfigError("knobs_per_sequence, knob_sigma_max and delta_weight must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistillConfig":
        return _from_dict(cls, data, "distill config")


def load_directions(bundle: str | Path) -> np.ndarray:
    """``(n, latent_size)`` knob shifts of one sigma each (``vector * sigma``) of a bundle's prior."""
    from melsynth.engine.runtime.bundle import load_bundle

    b = load_bundle(bundle)
    if b.prior is None or not b.prior.directions:
        raise ConfigError(f"{bundle}: the bundle has no prior directions to draw knob offsets from")
    return np.stack([np.asarray(d.vector, dtype=np.float64) * float(d.sigma) for d in b.prior.directions])


def sample_latents(rng: np.random.Generator, batch: int, latent_size: int, steps: int, config: DistillConfig,
                   directions: np.ndarray | None = None) -> np.ndarray:
    """``(batch, latent_size, steps)`` float32 latents drawn as described in the module docstring."""
    z = np.empty((batch, latent_size, steps), dtype=np.float64)
    for b in range(batch):
        if rng.random() < config.walk_fraction:
            speed = rng.uniform(0.05, 1.0)
            spread = rng.uniform(0.0, 1.0)
            point = rng.standard_normal(latent_size)
            walk = rng.standard_normal(latent_size)  # stationary start, as engine.stream.controls.RandomWalk
            keep = 1.0 - speed
            for t in range(steps):
                walk = keep * walk + math.sqrt(1.0 - keep * keep) * rng.standard_normal(latent_size)
                z[b, :, t] = math.sqrt(1.0 - spread * spread) * point + spread * walk
        else:
            z[b] = rng.standard_normal((latent_size, steps))
        if directions is not None and len(directions) and rng.random() < config.knob_fraction:
            n = int(rng.integers(1, config.knobs_per_sequence + 1)) if config.knobs_per_sequence else 0
            chosen = rng.choice(len(directions), size=min(n, len(directions)), replace=False)
            shift = (rng.uniform(-config.knob_sigma_max, config.knob_sigma_max, len(chosen))[:, None]
                     * directions[chosen]).sum(axis=0)
            start = int(rng.integers(0, steps))
            z[b, :, start:] += shift[:, None]
    return z.astype(np.float32)


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, delta_weight: float
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """``(batch, n_mels, frames)`` x 2 -> L1 of the frames + ``delta_weight`` * L1 of their time differences."""
    l1 = (student - teacher).abs().mean()
    loss = l1
    logs = {"distill_l1": float(l1.detach())}
    if delta_weight > 0 and student.shape[2] > 1:
        d = (torch.diff(student, dim=2) - torch.diff(teacher, dim=2)).abs().mean()
        loss = loss + delta_weight * d
        logs["distill_delta_l1"] = float(d.detach())
    return loss, logs


class DistillTask(PriorTask):
    """A prior (``config.generator``) trained to reproduce a teacher prior; no critic."""

    name = "prior"  # the student is an ordinary prior checkpoint (load_generator, export)

    def __init__(self, config: PriorConfig, distill: DistillConfig, corpus_dir: str | Path,
                 spec: MelSpec | None = None, reference_cache: str | Path | None = None,
                 teacher: nn.Module | None = None):
        super().__init__(config, corpus_dir, spec, reference_cache=reference_cache)
        self.distill = distill
        if teacher is None:
            if not distill.teacher:
                raise TrainError("distillation needs a teacher: DistillConfig.teacher is empty")
            if is_bundle(distill.teacher):  # a shipped prior: rebuildable from the repository alone
                teacher = generator_from_bundle(distill.teacher)
            else:
                teacher, _ = load_generator(distill.teacher)
        g = config.generator
        if (teacher.latent_size, teacher.latent_frames) != (g.latent_size, g.latent_frames):
            raise TrainError(f"teacher {distill.teacher or '(given)'}: latent_size {teacher.latent_size}, "
                             f"latent_frames {teacher.latent_frames}; the student is configured with "
                             f"{g.latent_size}, {g.latent_frames}: they must match (one latent space)")
        self.teacher = teacher.eval().requires_grad_(False)
        self.directions = load_directions(distill.directions_bundle) if distill.directions_bundle else None
        if self.directions is not None and self.directions.shape[1] != g.latent_size:
            raise TrainError(f"{distill.directions_bundle}: directions have {self.directions.shape[1]} "
                             f"dimensions, the prior's latent has {g.latent_size}")

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "distill": self.distill.to_dict()}

    def build_discriminator(self) -> None:
        return None

    def batches(self, rank: int, world_size: int, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Endless ``(batch, latent, steps)`` latents (the teacher's answer is computed on the device)."""
        rng = np.random.default_rng([seed, rank, world_size, 17])
        g = self.config.generator
        while True:
            yield torch.from_numpy(sample_latents(rng, batch_size, g.latent_size, self.distill.sequence_steps,
                                                  self.distill, self.directions))

    def generator_loss(self, generator, discriminator, z, adversarial) -> LossOutput:
        unwrap(generator).update_ema()
        if next(self.teacher.parameters()).device != z.device:
            self.teacher.to(z.device)
        with torch.no_grad():
            target = self.teacher(z)
        return LossOutput(*distill_loss(generator(z), target, self.distill.delta_weight))
