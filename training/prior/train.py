"""Training the prior with the one GAN trainer (``training.gan``): optionally two stages.

The shipped prior came from two runs: the VAE warm start and adversarial stage
below with a frames-only critic (1.05 CPU-hours, fd_ratio 14.4), then its
generator (``--init``) against a new critic that also reads frame differences
and a batch-std feature, the VAE loss kept at 0.5 (1.02 CPU-hours, fd_ratio
8.6). The defaults are that recipe in one run (not yet measured as one run).
Measured alternatives, on 2
cores: a pure GAN (no VAE) reached 14.1 with a frames-only critic and 12.5 with
the frame-difference critic, its output nearly static (per-window std 0.05-0.07
against the corpus's 0.53; the shipped prior's is 0.39); a PCA-output generator
with a PCA-input critic (``training.prior.pca``) let the critic win outright
(fd_ratio 159, 551 with a hard clip). Loss: hinge, spectral norm in the critic
(no double backward on 2 cores), batch-mean feature matching.

The stages, when enabled:

1. VAE warm start (the trainer's ``warmup_steps``, no critic): a training-only
   ``Encoder`` maps each real segment to a posterior over its latent sequence;
   the generator decodes a sample of it; loss = L1 of the normalised mel +
   ``kl_weight`` * KL to N(0, I). A dense signal that shapes the latent space
   like the prior the generator will be sampled from (RAVE's recipe).
2. Adversarial: windows decoded from N(0, I) latents against real windows,
   hinge loss, spectral norm in the critic (``discriminator``, ``losses``),
   feature matching; the VAE loss stays on a fraction of the batch
   (``vae_weight``, ``vae_batch_fraction``) so the generator keeps decoding
   real music while the critic sharpens it.

Each generated window is cut out of a longer sequence of independent latents,
after ``warmup_steps`` latent steps and at a random frame offset::

    latents   | z0 | z1 | z2 | z3 | z4 | ... | z11 | z12 |
    frames    |<- warm-up ->|~|<-------- window -------->|
                             random offset in [0, latent_frames)

so the critic never sees the zero-state start of a stream nor the latent
grid, and the generator learns transitions that can run forever. Real
segments have the same length; the critic sees a random window of each.

The trained module is ``PriorModule``: the generator, its exponential moving
average and the encoder in one ``nn.Module`` (the trainer checkpoints all
three with no special support; the average has no gradient, so the optimiser
skips it). Validation, the best checkpoint and export use the average.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.gan import GANTask, LossOutput, TrainConfig, Validation, unwrap
from melsynth.training.prior.config import PriorConfig
from melsynth.training.prior.discriminator import Discriminator
from melsynth.training.prior.encoder import Encoder, kl_to_standard_normal, reparameterise
from melsynth.training.prior.losses import (critic_hinge_loss, feature_matching_loss, generator_hinge_loss)
from melsynth.training.prior.model import Generator

TASK_NAME = "prior"
PCA_FRAMES = 50_000
PCA_SEED = 0


def default_trainer_config(**overrides: Any) -> TrainConfig:
    """Optimiser settings of the prior: TTUR learning rates, Adam(0.5, 0.9), 1,500 VAE steps first."""
    base = dict(batch_size=16, lr_g=1e-4, lr_d=2e-4, betas=(0.5, 0.9), warmup_steps=1500,
                validate_minutes=20.0, checkpoint_minutes=5.0, log_every=50)
    base.update(overrides)
    return TrainConfig(**base)


class PriorModule(nn.Module):
    """``forward`` = the trained generator ``(batch, latent, S) -> mel``; ``ema`` its moving average;
    ``encoder`` the training-only VAE encoder."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        g = config.generator
        self.net = Generator(g)
        self.ema = copy.deepcopy(self.net).requires_grad_(False)
        self.encoder = Encoder(g.n_mels, g.latent_size, g.latent_frames, config.encoder_channels)
        self.decay = config.ema_decay
        self.ema_updates = 0   # this process's; a resumed run warms up again (harmless: the average ~ the weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)

    def current_decay(self) -> float:
        """``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: a fixed 0.999 still keeps 56 % of the
        random initial weights after 585 steps, which is most of a CPU run; the warm-up forgets them."""
        n = self.ema_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update_ema(self) -> None:
        decay = self.current_decay()
        self.ema_updates += 1
        for avg, p in zip(self.ema.parameters(), self.net.parameters()):
            avg.lerp_(p.detach(), 1.0 - decay)
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
                 vocoder_bundle: str | Path | None = None, reference_cache: str | Path | None = None):
        self.config = config
        self.spec = spec or MelSpec()
        self.corpus_dir = Path(corpus_dir)
        self.vocoder_bundle = vocoder_bundle
        self.reference_cache = Path(reference_cache) if reference_cache else None
        self._train = None
        self._reference = None
        self._vocoder = None
        self._pca = None

    @property
    def segment_steps(self) -> int:
        """Latent steps per training segment: warm-up, the window, one step of crop slack."""
        cfg = self.config
        return cfg.warmup_steps + cfg.window_frames // cfg.generator.latent_frames + 1

    @property
    def segment_frames(self) -> int:
        return self.segment_steps * self.config.generator.latent_frames

    # ----------------------------------------------------------------- networks
    def config_dict(self) -> dict[str, Any]:
        return {"prior": self.config.to_dict(), "mel": self.spec.to_dict()}

    def build_generator(self) -> nn.Module:
        module = PriorModule(self.config)
        if self.config.generator.pca_components:
            pca = self.frame_pca()
            module.net.pca.set(*pca)
            module.ema.pca.set(*pca)
        return module

    def build_discriminator(self) -> nn.Module:
        k = self.config.generator.pca_components
        critic = Discriminator(self.config.generator.n_mels, self.config.discriminator, pca_components=k)
        if critic.pca is not None:
            critic.pca.set(*self.frame_pca())
        return critic

    def frame_pca(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fixed PCA (``training.prior.pca``) of normalised train frames; seeded, so reruns agree.

        A resumed run restores the basis from its checkpoint (buffers), whatever the corpus is now.
        """
        if self._pca is None:
            from melsynth.training.prior.pca import fit_frame_pca

            frames = self.train_split().sample_frames(PCA_FRAMES, np.random.default_rng(PCA_SEED))
            self._pca = fit_frame_pca(self.spec.normalize(frames), self.config.generator.pca_components)
        return self._pca

    # ----------------------------------------------------------------- data
    def train_split(self):
        if self._train is None:
            from melsynth.training.prior.data import load_split

            # Memory-mapped: a full corpus's mel is several GB; the page cache keeps what is hot.
            self._train = load_split(self.corpus_dir, "train", self.spec, min_frames=self.segment_frames)
        return self._train

    def batches(self, rank: int, world_size: int, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Endless ``(batch, n_mels, segment_frames)`` normalised real segments, a fresh draw each step."""
        split = self.train_split()
        rng = np.random.default_rng([seed, rank, world_size])
        while True:
            segments = split.sample_windows(batch_size, self.segment_frames, rng)
            yield torch.from_numpy(self.spec.normalize(segments).astype(np.float32))

    # ----------------------------------------------------------------- losses
    def random_windows(self, mel: torch.Tensor, warmup: bool) -> torch.Tensor:
        """A random ``window_frames`` crop of each segment (after the warm-up steps when ``warmup``)."""
        cfg = self.config
        lf = cfg.generator.latent_frames
        start = cfg.warmup_steps * lf if warmup else 0
        slack = mel.shape[2] - start - cfg.window_frames
        offsets = torch.randint(0, slack + 1, (mel.shape[0],), device=mel.device)
        return crop_windows(mel, cfg.window_frames, start, offsets)

    def generate(self, generator: nn.Module, batch: int, device: torch.device) -> torch.Tensor:
        """``(batch, n_mels, window_frames)`` windows decoded from N(0, I) latents (see the module diagram)."""
        cfg = self.config
        z = torch.randn(batch, cfg.generator.latent_size, self.segment_steps, device=device)
        return self.random_windows(generator(z), warmup=True)

    def vae_loss(self, module: PriorModule, generator: nn.Module, segments: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, float]]:
        """L1 reconstruction of normalised mel + kl_weight * KL; ``generator`` may be the DDP-wrapped one."""
        mean, log_var = module.encoder(segments)
        recon = generator(reparameterise(mean, log_var))
        l1 = (recon - segments).abs().mean()
        kl = kl_to_standard_normal(mean, log_var)
        return l1 + self.config.kl_weight * kl, {"vae_l1": float(l1.detach()), "vae_kl": float(kl.detach())}

    def generator_loss(self, generator, discriminator, batch, adversarial) -> LossOutput:
        module = unwrap(generator)
        module.update_ema()
        cfg = self.config
        if not adversarial:
            loss, logs = self.vae_loss(module, generator, batch)
            return LossOutput(loss, logs, None)
        fake = self.generate(generator, batch.shape[0], batch.device)
        fake_logits, fake_features = discriminator(fake)
        loss_adv = generator_hinge_loss(fake_logits)
        logs = {"g_adv": float(loss_adv.detach())}
        loss = loss_adv
        if cfg.feature_matching > 0:
            with torch.no_grad():
                _, real_features = discriminator(self.random_windows(batch, warmup=True))
            loss_fm = feature_matching_loss(real_features, fake_features)
            loss = loss + cfg.feature_matching * loss_fm
            logs["g_fm"] = float(loss_fm.detach())
        if cfg.vae_weight > 0:
            n = max(1, int(round(batch.shape[0] * cfg.vae_batch_fraction)))
            loss_vae, vae_logs = self.vae_loss(module, generator, batch[:n])
            loss = loss + cfg.vae_weight * loss_vae
            logs.update(vae_logs)
        return LossOutput(loss, logs, fake.detach())

    def discriminator_loss(self, discriminator, batch, fake) -> LossOutput:
        real = self.random_windows(batch, warmup=True)
        # Two passes, not one over the concatenation: the batch-std feature must never
        # see real and generated windows in one group, whatever the batch size.
        real_logits, _ = discriminator(real)
        fake_logits, _ = discriminator(fake)
        loss = critic_hinge_loss(real_logits, fake_logits)
        logs = {"d_real": float(torch.stack([l.mean() for l in real_logits]).mean().detach()),
                "d_fake": float(torch.stack([l.mean() for l in fake_logits]).mean().detach())}
        return LossOutput(loss, logs)

    # ----------------------------------------------------------------- validation
    def reference(self):
        """The validation reference; kept in ``reference_cache`` so a resumed run scores against the same windows."""
        if self._reference is None:
            from melsynth.training.prior.evaluate import PriorReference

            cache = self.reference_cache
            if cache is not None and cache.is_file():
                ref = PriorReference.load(cache)
                if (ref.n_windows, ref.window_frames, ref.spec) == (self.config.eval_windows,
                                                                     self.config.eval_window_frames, self.spec):
                    self._reference = ref
                    return ref
            self._reference = PriorReference(self.corpus_dir, n_windows=self.config.eval_windows,
                                             window_frames=self.config.eval_window_frames, spec=self.spec)
            if cache is not None:
                self._reference.save(cache)
        return self._reference

    def validate(self, generator: nn.Module, device: torch.device) -> Validation:
        from melsynth.training.prior.evaluate import generate_windows, mel_grid_image
        from melsynth.training.prior.latents import held_sample_fn

        g = generator.ema if isinstance(generator, PriorModule) else generator
        reference = self.reference()
        sample = held_sample_fn(torch_sample_fn(g, device), g.config.phrase_size)
        windows = generate_windows(sample, g.latent_size, g.latent_frames,
                                   self.config.eval_windows, self.config.eval_window_frames,
                                   np.random.default_rng(1234), spec=self.spec, batch=16)
        metrics = reference.score(windows)
        try:   # onsets, flatness, contrast and chroma of 2 x 10 s vocoded renders: the curve hears the music
            from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD
            from melsynth.training.prior.evaluate import learning_curve_point, walk_sample_fn

            # renders as melsynth render plays them (seeds 1, 2 at the default walk), not i.i.d.
            # latents: a front can play notes from fresh noise and drone under the walk
            walk = walk_sample_fn(torch_sample_fn(g, device), WALK_SPEED, WALK_SPREAD, phrase_size=g.config.phrase_size)
            point = learning_curve_point(sample, reference, g.latent_size, g.latent_frames,
                                         windows=windows, render_sample=walk)
            metrics.update({k: v for k, v in point.items() if k not in metrics})
            if self.reference_cache is not None:
                reference.save(self.reference_cache)   # keeps the real clips' stats for the next validation
        except Exception as exc:  # a nicety beside FD/NDB; never stop training for it
            print(f"prior validation: no render statistics ({type(exc).__name__}: {exc})")
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
                from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle
                from melsynth.engine.runtime.vocoder import load_vocoder

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
    from melsynth.training.gan import BEST, CHECKPOINT, TrainError, load_checkpoint, run_checkpoint

    found = run_checkpoint(path)
    if found is None:
        raise FileNotFoundError(f"{path}: no {BEST} or {CHECKPOINT} (not a prior run folder?)")
    path = found
    state = load_checkpoint(path, map_location=map_location)
    if state.get("task_name") != TASK_NAME:
        raise TrainError(f"{path}: a {state.get('task_name')!r} checkpoint, not a prior")
    config = PriorConfig.from_dict(state["task"]["prior"])
    if "ema_generator" in state:  # a slim checkpoint (slim_checkpoint): the average alone
        if not use_ema:
            raise TrainError(f"{path}: a slim checkpoint holds only the averaged weights")
        generator = Generator(config.generator)
        generator.load_state_dict(state["ema_generator"])
    else:
        module = PriorModule(config)
        module.load_state_dict(state["generator"])
        generator = module.ema if use_ema else module.net
    generator.eval()
    info = {"source": str(path), "step": int(state.get("step", -1)), "task": state["task"],
            "metric": state.get("metric"), "value": state.get("value")}
    return generator, info


def slim_checkpoint(run_dir: str | Path, out_file: str | Path) -> Path:
    """The best (else latest) checkpoint's averaged generator alone, for shipping a run elsewhere.

    A third of ``best_generator.pt`` (no raw weights) and a tenth of ``checkpoint.pt``
    (no critic, no optimiser state); ``load_generator`` and ``melsynth export prior`` read it.
    """
    from melsynth.training.gan import CHECKPOINT, load_checkpoint, run_checkpoint, save_torch_atomic

    run_dir = Path(run_dir)
    source = run_checkpoint(run_dir) or run_dir / CHECKPOINT
    state = load_checkpoint(source)
    module = PriorModule(PriorConfig.from_dict(state["task"]["prior"]))
    module.load_state_dict(state["generator"])
    save_torch_atomic(out_file, {"task_name": state["task_name"], "task": state["task"], "step": state["step"],
                                 "metric": state.get("metric"), "value": state.get("value", state.get("best_value")),
                                 "source": str(source), "ema_generator": module.ema.state_dict()})
    return Path(out_file)
