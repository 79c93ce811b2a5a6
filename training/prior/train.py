"""Training the prior with the one GAN trainer (``training.gan``).

The game (see ``discriminator`` and ``losses``): windows of ``window_frames``
real frames against generated ones, hinge loss, spectral norm in the critic,
plus feature matching for the generator. Each generated window is cut out of
a longer sequence of independent latents, after ``warmup_steps`` latent steps
and at a random frame offset::

    latents   | z0 | z1 | z2 | z3 | z4 | ... | z11 | z12 |
    frames    |<- warm-up ->|~|<-------- window -------->|
                             random offset in [0, latent_frames)

so the critic never sees the zero-state start of a stream nor the latent
grid, and the generator learns transitions that can run forever.

The trained module is ``EMAGenerator``: the generator and its exponential
moving average in one ``nn.Module`` (the trainer checkpoints both with no
special support; the average has no gradient, so the optimiser skips it).
Validation, the best checkpoint and export use the average.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from engine.features import MelSpec
from training.gan import GANTask, LossOutput, TrainConfig, Validation, unwrap
from training.prior.config import PriorConfig
from training.prior.discriminator import Discriminator
from training.prior.losses import (critic_hinge_loss, feature_matching_loss, generator_hinge_loss)
from training.prior.model import Generator

TASK_NAME = "prior"


def default_trainer_config(**overrides: Any) -> TrainConfig:
    """Optimiser settings of the prior: TTUR learning rates, Adam(0.5, 0.9), adversarial from step 0."""
    base = dict(batch_size=16, lr_g=1e-4, lr_d=2e-4, betas=(0.5, 0.9), warmup_steps=0,
                validate_minutes=20.0, checkpoint_minutes=5.0, log_every=50)
    base.update(overrides)
    return TrainConfig(**base)


class EMAGenerator(nn.Module):
    """``forward`` = the trained generator; ``ema`` = its moving average (``(batch, latent, S) -> mel``)."""

    def __init__(self, config, decay: float):
        super().__init__()
        self.net = Generator(config)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.decay = decay

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    @torch.no_grad()
    def update_ema(self) -> None:
        for avg, p in zip(self.ema.parameters(), self.net.parameters()):
            avg.lerp_(p.detach(), 1.0 - self.decay)
        for avg, b in zip(self.ema.buffers(), self.net.buffers()):
            avg.copy_(b)


def crop_windows(mel: torch.Tensor, window_frames: int, warmup_frames: int, offsets: torch.Tensor) -> torch.Tensor:
    """``(batch, n_mels, T) -> (batch, n_mels, window_frames)`` starting at ``warmup_frames + offsets[b]``."""
    idx = warmup_frames + offsets[:, None] + torch.arange(window_frames, device=mel.device)[None]
    return torch.gather(mel, 2, idx[:, None, :].expand(-1, mel.shape[1], -1))


class PriorTask(GANTask):
    """The prior as a ``training.gan`` task."""

    name = TASK_NAME
    best_metric = "fd_ratio"

    def __init__(self, config: PriorConfig, corpus_dir: str | Path, spec: MelSpec | None = None,
                 vocoder_bundle: str | Path | None = None):
        self.config = config
        self.spec = spec or MelSpec()
        self.corpus_dir = Path(corpus_dir)
        self.vocoder_bundle = vocoder_bundle
        self._train = None
        self._reference = None
        self._vocoder = None

    # ----------------------------------------------------------------- networks
    def config_dict(self) -> dict[str, Any]:
        return {"prior": self.config.to_dict(), "mel": self.spec.to_dict()}

    def build_generator(self) -> nn.Module:
        return EMAGenerator(self.config.generator, self.config.ema_decay)

    def build_discriminator(self) -> nn.Module:
        return Discriminator(self.config.generator.n_mels, self.config.discriminator)

    # ----------------------------------------------------------------- data
    def train_split(self):
        if self._train is None:
            from training.prior.data import load_split

            self._train = load_split(self.corpus_dir, "train", self.spec,
                                     min_frames=self.config.window_frames).load_into_memory()
        return self._train

    def batches(self, rank: int, world_size: int, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Endless ``(batch, n_mels, window_frames)`` normalised real windows, a fresh draw each step."""
        split = self.train_split()
        rng = np.random.default_rng([seed, rank, world_size])
        while True:
            windows = split.sample_windows(batch_size, self.config.window_frames, rng)
            yield torch.from_numpy(self.spec.normalize(windows).astype(np.float32))

    # ----------------------------------------------------------------- losses
    def generate(self, generator: nn.Module, batch: int, device: torch.device) -> torch.Tensor:
        """``(batch, n_mels, window_frames)`` generated windows (see the module diagram)."""
        cfg = self.config
        lf = cfg.generator.latent_frames
        steps = cfg.warmup_steps + cfg.window_frames // lf + 1
        z = torch.randn(batch, cfg.generator.latent_size, steps, device=device)
        mel = generator(z)
        offsets = torch.randint(0, lf, (batch,), device=device)
        return crop_windows(mel, cfg.window_frames, cfg.warmup_steps * lf, offsets)

    def generator_loss(self, generator, discriminator, batch, adversarial) -> LossOutput:
        bare = unwrap(generator)
        if isinstance(bare, EMAGenerator):
            bare.update_ema()
        fake = self.generate(generator, batch.shape[0], batch.device)
        if discriminator is None:  # no reconstruction target exists for an unconditional prior
            raise RuntimeError("the prior trains adversarially from step 0: set trainer warmup_steps=0")
        fake_logits, fake_features = discriminator(fake)
        loss_adv = generator_hinge_loss(fake_logits)
        logs = {"g_adv": float(loss_adv.detach())}
        loss = loss_adv
        if self.config.feature_matching > 0:
            with torch.no_grad():
                _, real_features = discriminator(batch)
            loss_fm = feature_matching_loss(real_features, fake_features)
            loss = loss + self.config.feature_matching * loss_fm
            logs["g_fm"] = float(loss_fm.detach())
        return LossOutput(loss, logs, fake.detach())

    def discriminator_loss(self, discriminator, batch, fake) -> LossOutput:
        n = batch.shape[0]
        logits, _ = discriminator(torch.cat([batch, fake], dim=0))
        real_logits = [l[:n] for l in logits]
        fake_logits = [l[n:] for l in logits]
        loss = critic_hinge_loss(real_logits, fake_logits)
        logs = {"d_real": float(torch.stack([l.mean() for l in real_logits]).mean().detach()),
                "d_fake": float(torch.stack([l.mean() for l in fake_logits]).mean().detach())}
        return LossOutput(loss, logs)

    # ----------------------------------------------------------------- validation
    def reference(self):
        if self._reference is None:
            from training.prior.evaluate import PriorReference

            self._reference = PriorReference(self.corpus_dir, n_windows=self.config.eval_windows,
                                             window_frames=self.config.eval_window_frames, spec=self.spec)
        return self._reference

    def validate(self, generator: nn.Module, device: torch.device) -> Validation:
        from training.prior.evaluate import generate_windows, mel_grid_image

        g = generator.ema if isinstance(generator, EMAGenerator) else generator
        reference = self.reference()
        windows = generate_windows(torch_sample_fn(g, device), g.latent_size, g.latent_frames,
                                   self.config.eval_windows, self.config.eval_window_frames,
                                   np.random.default_rng(1234), spec=self.spec, batch=16)
        metrics = reference.score(windows)
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        images = {"generated_top_real_bottom": mel_grid_image(windows[:4], reference.real_examples[:4], self.spec)}
        audio = {}
        vocoder = self._load_vocoder()
        if vocoder is not None:
            try:
                audio["generated"] = vocoder.offline(np.concatenate(list(windows[:3]), axis=1))
            except Exception as exc:  # audio is a nicety; never stop training for it
                print(f"prior validation: vocoder failed ({exc}); no audio this time")
        return Validation(metrics=metrics, images=images, audio=audio, sample_rate=self.spec.sample_rate)

    def _load_vocoder(self):
        """The shipped vocoder (default bundle) for listening in TensorBoard, if there is one."""
        if self._vocoder is None:
            self._vocoder = False
            try:
                from engine.bundle import default_bundle_path, load_bundle
                from engine.vocoder import load_vocoder

                path = Path(self.vocoder_bundle) if self.vocoder_bundle else default_bundle_path()
                self._vocoder = load_vocoder(load_bundle(path))
            except Exception as exc:  # no bundle yet, or no runtime vocoder module yet
                print(f"prior validation: no vocoder for audio ({type(exc).__name__}: {exc})")
        return self._vocoder or None


def torch_sample_fn(generator: nn.Module, device: torch.device | str):
    """numpy ``(batch, latent, steps) -> (batch, n_mels, frames)`` through a torch generator, no grad."""

    def sample(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return generator(torch.from_numpy(z).to(device)).float().cpu().numpy()

    return sample


def load_generator(path: str | Path, use_ema: bool = True, map_location: str = "cpu") -> tuple[Generator, dict]:
    """A trained ``Generator`` from a run folder (best checkpoint, else latest) or a checkpoint file.

    Returns ``(generator in eval mode, info)`` with ``info`` = task config, step, metric, source file.
    """
    from training.gan import BEST, CHECKPOINT, TrainError, load_checkpoint

    path = Path(path)
    if path.is_dir():
        candidates = [path / BEST, path / CHECKPOINT]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: no {BEST} or {CHECKPOINT} (not a prior run folder?)")
        path = found[0]
    state = load_checkpoint(path, map_location=map_location)
    if state.get("task_name") != TASK_NAME:
        raise TrainError(f"{path}: a {state.get('task_name')!r} checkpoint, not a prior")
    config = PriorConfig.from_dict(state["task"]["prior"])
    module = EMAGenerator(config.generator, config.ema_decay)
    module.load_state_dict(state["generator"])
    generator = module.ema if use_ema else module.net
    generator.eval()
    info = {"source": str(path), "step": int(state.get("step", -1)), "task": state["task"],
            "metric": state.get("metric"), "value": state.get("value")}
    return generator, info
