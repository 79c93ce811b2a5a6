"""The two-level prior (after Musika and RAVE): a mel autoencoder, then a GAN over its code sequences.

A GAN over 256-bin mel frames learns slowly on 2 CPU cores: every step decodes
and judges 4,096 numbers per latent step. Split in two, each level learns fast:

1. **Autoencoder** (``AutoencoderTask``): the training-only ``Encoder`` maps 16
   real frames to a ``code_size`` code (a VAE posterior with a small KL); the
   decoder, a causal prior ``Generator`` without a front, decodes it back.
   Dense reconstruction losses: L1 of the normalised mel and of its
   frame-to-frame differences (onsets), plus ``kl_weight`` * KL. L1 alone
   blurs (a reconstruction loses the spread of loudness and the sharpness of
   onsets that FD-mel measures), so a second run fine-tunes the decoder with a
   mel critic on its reconstructions (``adversarial``), the encoder frozen:
   a paired game, as stable as a vocoder's, and the codes keep their meaning.
2. **Latent GAN** (``LatentGANTask``): the train split is encoded once
   (``encode_split``, cached in the run folder). A causal ``Front`` (noise ->
   codes, at the latent rate) plays against ``LatentCritic`` on windows of
   ``window_steps`` codes; the decoder is frozen. A step of this game costs a
   few hundred thousand multiply-adds instead of tens of millions.

The trained prior is one ``Generator``: the front, then the decoder::

    z (B, latent, S) N(0, I) --Front--> code (B, code_size, S) --decoder--> mel (B, n_mels, 16 S)
    |<------------ level 2 (GAN) ---------->|<---- level 1 (autoencoder) ---->|

so it streams, exports (``training.prior.export``), rebuilds from a bundle
(``training.prior.from_bundle``) and takes knobs exactly as a one-level prior.
The latent GAN's checkpoints are ordinary prior checkpoints (task ``prior``):
``melsynth export prior RUN`` exports them as they are.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.gan import GANTask, LossOutput, TrainError, Validation, unwrap
from melsynth.training.prior.config import ConfigError, PriorConfig, _from_dict
from melsynth.training.prior.encoder import kl_to_standard_normal, reparameterise
from melsynth.training.prior.latents import hold_phrase
from melsynth.training.prior.moments import code_axes, mel_axes
from melsynth.training.prior.losses import (critic_hinge_loss, feature_matching_loss, generator_hinge_loss,
                                            window_moment_loss)
from melsynth.training.prior.train import PriorModule, PriorTask

CODES_FILE = "train_codes.npz"   # the train split's code sequences, in the latent-GAN run folder
ENCODER_KEY = "encoder"          # ... and the fingerprint of the encoder that made them
ENCODE_CHUNK_STEPS = 256         # latent steps encoded per call (the encoder is not causal: chunks overlap)
ENCODE_OVERLAP_STEPS = 4
MOMENT_AXES = ("code", "mel")
MOMENT_AXES_STEPS = 40_000       # paired (code, step spectrum) samples that fit the "mel" axes' map


@dataclass(frozen=True)
class TwoLevelConfig:
    """Settings of both levels that are not network shapes (those are the ``PriorConfig``'s)."""

    delta_weight: float = 1.0       # autoencoder: L1 of frame differences, against the L1 of frames
    window_mean_weight: float = 0.0  # autoencoder: L1 of each band's mean over the segment (the window's spectrum)
    window_std_weight: float = 0.0   # autoencoder: L1 of each band's spread over the segment (its movement)
    adversarial: float = 0.0        # autoencoder: weight of a mel critic on reconstructions (0: none)
    freeze_encoder: bool = False    # autoencoder: fine-tune the decoder alone, so the codes stay valid
    autoencoder: str = ""           # latent GAN: the autoencoder run (folder or checkpoint) it decodes with
    window_steps: int = 24          # latent GAN: codes per critic window (24 steps = 8.9 s)
    warmup_steps: int = 4           # latent GAN: front steps generated and cropped before each window
    critic_channels: int = 256
    critic_dilations: tuple[int, ...] = (1, 2, 4, 8)
    feature_matching: float = 1.0
    walk_fraction: float = 0.5      # share of noise sequences drawn as the engine's latent walk (``walk_noise``)
    walk_per_batch: bool = False    # latent GAN: draw that share per batch (all walks or all i.i.d.), not per sequence
    moment_weight: float = 0.0      # latent GAN: weight of ``losses.window_moment_loss`` on standardised codes
    moment_steps: int = 8           # latent GAN: its window (8 steps = 128 frames = FD-mel's window)
    moment_components: int = 16     # latent GAN: principal axes of real window means whose spread it matches
    moment_axes: str = "code"       # latent GAN: those axes' space: "code", or "mel" (``moments.mel_axes``)
    mel_moment_weight: float = 0.0  # latent GAN: the same loss on the decoded mel's window means (``mel_window_moments``)

    def __post_init__(self) -> None:
        if self.mel_moment_weight < 0:
            raise ConfigError(f"mel_moment_weight must be >= 0, got {self.mel_moment_weight}")
        windowed = self.moment_weight > 0 or self.mel_moment_weight > 0
        if self.moment_weight < 0 or (windowed and not (1 <= self.moment_steps <= self.window_steps
                                                        and self.moment_components >= 1)):
            raise ConfigError(f"need moment_weight >= 0, 1 <= moment_steps <= window_steps and moment_components "
                              f">= 1 (got {self.moment_weight}, {self.moment_steps}, window_steps {self.window_steps}, "
                              f"{self.moment_components})")
        if self.moment_axes not in MOMENT_AXES:
            raise ConfigError(f"moment_axes must be one of {', '.join(MOMENT_AXES)}, got {self.moment_axes!r}")
        if self.window_mean_weight < 0 or self.window_std_weight < 0:
            raise ConfigError(f"window_mean_weight and window_std_weight must be >= 0, got "
                              f"{self.window_mean_weight}, {self.window_std_weight}")
        if self.window_steps < 2 or self.warmup_steps < 0 or self.critic_channels < 1:
            raise ConfigError(f"need window_steps >= 2, warmup_steps >= 0, critic_channels >= 1 (got "
                              f"{self.window_steps}, {self.warmup_steps}, {self.critic_channels})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TwoLevelConfig":
        return _from_dict(cls, data, "twolevel config")


# =========================================================================== level 1: the autoencoder
class AutoencoderTask(PriorTask):
    """The decoder and the encoder, trained on reconstruction alone (no critic).

    ``config.generator`` is the decoder's shape (no front; ``latent_size`` is the code size).
    """

    name = "prior_autoencoder"
    best_metric = "recon_train_fd_ratio"   # the ceiling of a prior on these codes (``validate``)

    def __init__(self, config: PriorConfig, twolevel: TwoLevelConfig, corpus_dir, spec: MelSpec | None = None,
                 reference_cache=None):
        if config.generator.code_size:
            raise ConfigError("the autoencoder's generator has no front (code_size 0); its latent_size is the code")
        super().__init__(config, corpus_dir, spec, reference_cache=reference_cache)
        self.twolevel = twolevel

    def config_dict(self) -> dict[str, Any]:
        return {**super().config_dict(), "twolevel": self.twolevel.to_dict()}

    def build_generator(self) -> nn.Module:
        module = super().build_generator()
        if self.twolevel.freeze_encoder:
            module.encoder.requires_grad_(False)
        return module

    def build_discriminator(self) -> nn.Module | None:
        return super().build_discriminator() if self.twolevel.adversarial > 0 else None

    def generator_loss(self, generator, discriminator, batch, adversarial) -> LossOutput:
        module = unwrap(generator)
        module.update_ema()
        mean, log_var = module.encoder(batch)
        # a frozen encoder hands the decoder its means, as the latent GAN's front will
        code = mean if self.twolevel.freeze_encoder else reparameterise(mean, log_var)
        recon = generator(code)
        l1 = (recon - batch).abs().mean()
        delta = (recon.diff(dim=2) - batch.diff(dim=2)).abs().mean()
        loss = l1 + self.twolevel.delta_weight * delta
        logs = {"l1": float(l1.detach()), "delta_l1": float(delta.detach())}
        # Frame L1 leaves a window's statistics loose: errors of either sign cost the same in
        # every frame, while FD-mel compares each window's average spectrum and spread. Both
        # after the first step, which the decoder starts from zero state.
        lf = self.config.generator.latent_frames
        if self.twolevel.window_mean_weight > 0:
            mean_l1 = (recon[:, :, lf:].mean(dim=2) - batch[:, :, lf:].mean(dim=2)).abs().mean()
            loss = loss + self.twolevel.window_mean_weight * mean_l1
            logs["mean_l1"] = float(mean_l1.detach())
        if self.twolevel.window_std_weight > 0:
            std_l1 = (recon[:, :, lf:].std(dim=2) - batch[:, :, lf:].std(dim=2)).abs().mean()
            loss = loss + self.twolevel.window_std_weight * std_l1
            logs["std_l1"] = float(std_l1.detach())
        if not self.twolevel.freeze_encoder:
            kl = kl_to_standard_normal(mean, log_var)
            loss = loss + self.config.kl_weight * kl
            logs["kl"] = float(kl.detach())
        if not (adversarial and discriminator is not None):
            return LossOutput(loss, logs, None)
        # the same crop of the reconstruction and of its real segment: the critic's real side
        from melsynth.training.prior.train import crop_windows

        lf, wf = self.config.generator.latent_frames, self.config.window_frames
        offsets = torch.randint(0, recon.shape[2] - lf - wf + 1, (recon.shape[0],), device=recon.device)
        fake = crop_windows(recon, wf, lf, offsets)   # after the first step, decoded from zero state
        fake_logits, fake_features = discriminator(fake)
        loss_adv = generator_hinge_loss(fake_logits)
        with torch.no_grad():
            _, real_features = discriminator(crop_windows(batch, wf, lf, offsets))
        loss_fm = feature_matching_loss(real_features, fake_features)
        loss = loss + self.twolevel.adversarial * (loss_adv + self.config.feature_matching * loss_fm)
        logs.update(g_adv=float(loss_adv.detach()), g_fm=float(loss_fm.detach()))
        return LossOutput(loss, logs, fake.detach())

    def validate(self, generator: nn.Module, device: torch.device) -> Validation:
        """FD-mel and NDB of reconstructed windows, both scored against the test split.

        * ``recon_*``: test windows reconstructed. The same works as the reference, so
          this measures the autoencoder's distortion alone.
        * ``recon_train_*``: train windows reconstructed, the codes a latent GAN learns
          from. A prior that generates exactly those codes scores this, so it is the
          ceiling of any prior on this autoencoder. It is not ``recon_fd_ratio``: the
          distortion adds to the train/test difference that the floor already holds.
        """
        from melsynth.training.prior.data import load_split
        from melsynth.training.prior.evaluate import mel_grid_image

        module = unwrap(generator)
        reference = self.reference()
        n = min(self.config.eval_windows, 1000)
        metrics: dict[str, float] = {}
        for split, prefix in (("test", "recon"), ("train", "recon_train")):
            data = load_split(self.corpus_dir, split, self.spec, min_frames=self.segment_frames)
            windows, l1 = self._reconstruct(module, data, n, np.random.default_rng(4321), device)
            scores = reference.score(windows)
            metrics.update({f"{prefix}_fd_ratio": scores["fd_ratio"], f"{prefix}_ndb": scores["ndb"],
                            f"{prefix}_l1": l1})
            if split == "test":
                images = {"reconstructed_top_real_bottom": mel_grid_image(windows[:4], reference.real_examples[:4],
                                                                          self.spec)}
        return Validation(metrics=metrics, images=images, sample_rate=self.spec.sample_rate)

    def _reconstruct(self, module: PriorModule, data, n: int, rng: np.random.Generator, device: torch.device
                     ) -> tuple[np.ndarray, float]:
        """``n`` windows of ``data`` encoded and decoded: ``((n, n_mels, eval_window_frames)`` log10 mel,
        mean L1 in normalised units)``. One latent step more is decoded first, from zero state, and cut."""
        lf = self.config.generator.latent_frames
        window = self.config.eval_window_frames
        recon, l1 = [], []
        for start in range(0, n, 16):
            real = self.spec.normalize(data.sample_windows(min(16, n - start), window + lf, rng))
            x = torch.from_numpy(real.astype(np.float32)).to(device)
            with torch.no_grad():
                mean, _ = module.encoder(x)
                y = module.ema(mean)
            recon.append(y[:, :, lf:].float().cpu().numpy())
            l1.append(float((y - x)[:, :, lf:].abs().mean()))
        return self.spec.denormalize(np.concatenate(recon)).astype(np.float32), float(np.mean(l1))


def load_autoencoder(path: str | Path) -> tuple[PriorModule, dict[str, Any]]:
    """The autoencoder run's module (best checkpoint, else latest) and its task config."""
    from melsynth.training.gan import BEST, CHECKPOINT, load_checkpoint, run_checkpoint

    found = run_checkpoint(path)
    if found is None:
        raise TrainError(f"{path}: no {BEST} or {CHECKPOINT} (not an autoencoder run folder?)")
    path = found
    state = load_checkpoint(path)
    if state.get("task_name") != AutoencoderTask.name:
        raise TrainError(f"{path}: a {state.get('task_name')!r} checkpoint, not a {AutoencoderTask.name!r} one")
    module = PriorModule(PriorConfig.from_dict(state["task"]["prior"]))
    module.load_state_dict(state["generator"])
    return module.eval().requires_grad_(False), state["task"]


@torch.no_grad()
def encode_mel(encoder: nn.Module, norm_mel: np.ndarray, latent_frames: int) -> np.ndarray:
    """``(n_mels, frames)`` normalised mel -> ``(code, frames // latent_frames)`` posterior means.

    The encoder is not causal, so a long file is encoded in overlapping chunks and
    each chunk's edge steps are dropped::

        chunk k   [ov | kept ........ | ov]
        chunk k+1                [ov | kept ........ | ov]
    """
    steps = norm_mel.shape[1] // latent_frames
    out = []
    t = 0
    while t < steps:
        lo = max(0, t - ENCODE_OVERLAP_STEPS)
        hi = min(steps, t + ENCODE_CHUNK_STEPS + ENCODE_OVERLAP_STEPS)
        x = torch.from_numpy(np.ascontiguousarray(norm_mel[:, lo * latent_frames:hi * latent_frames],
                                                  dtype=np.float32))[None]
        mean, _ = encoder(x)
        keep = min(ENCODE_CHUNK_STEPS, steps - t)
        out.append(mean[0, :, t - lo:t - lo + keep].numpy())
        t += keep
    return np.concatenate(out, axis=1)


def encoder_fingerprint(encoder: nn.Module) -> str:
    """SHA-1 of the encoder's weights: which encoder a cache of codes belongs to."""
    import hashlib

    h = hashlib.sha1()
    for name, tensor in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def encode_split(encoder: nn.Module, split, spec: MelSpec, latent_frames: int, progress: bool = True
                 ) -> list[np.ndarray]:
    """Every file of a ``training.prior.data.SplitMels`` as ``(code, steps)`` float32 code sequences."""
    codes = []
    for i, mel in enumerate(split.mels):
        if mel.shape[1] >= latent_frames:
            codes.append(encode_mel(encoder, spec.normalize(np.asarray(mel)), latent_frames).astype(np.float32))
        if progress and (i + 1) % 100 == 0:
            print(f"encoded {i + 1}/{len(split.mels)} files", flush=True)
    return codes


def uniform_positions(counts: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """``n`` (file, start) pairs drawn uniformly over all starts, file ``f`` having ``counts[f]`` of them."""
    files = rng.choice(len(counts), size=n, p=counts / counts.sum())
    return [(f, int(rng.integers(0, counts[f]))) for f in files]


# =========================================================================== level 2: the latent GAN
class LatentCritic(nn.Module):
    """``(batch, code, steps) -> ([logits], [features])``: two patch critics over standardised codes.

    * per step (1x1 convolutions): is each code one the encoder makes (texture, timbre, chords);
    * in time (dilated convolutions over codes and their step differences, a receptive field of
      ``1 + 2 * sum(dilations)`` steps, about 11 s with the defaults, and ProGAN's batch-std
      feature against mode collapse): do codes follow each other as in music (onsets, phrases).

    Spectral norm on every layer, for the hinge loss without a double backward.
    """

    def __init__(self, code_size: int, channels: int, dilations: tuple[int, ...]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, code_size, 1))
        self.register_buffer("std", torch.ones(1, code_size, 1))
        sn = spectral_norm
        self.step = nn.ModuleList([sn(nn.Conv1d(code_size, channels, 1)), sn(nn.Conv1d(channels, channels, 1))])
        self.step_head = sn(nn.Conv1d(channels, 1, 1))
        self.time = nn.ModuleList([sn(nn.Conv1d(2 * code_size, channels, 3, padding=1))] +
                                  [sn(nn.Conv1d(channels, channels, 3, dilation=d, padding=d)) for d in dilations])
        self.time_head = sn(nn.Conv1d(channels + 1, 1, 3, padding=1))

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(self.mean.shape))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(self.std.shape).clamp_min(1e-3))

    def forward(self, codes: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        from melsynth.training.prior.discriminator import minibatch_std

        x = (codes - self.mean) / self.std
        features = []
        h = x
        for conv in self.step:
            h = F.leaky_relu(conv(h), 0.2)
            features.append(h)
        step_logits = self.step_head(h)
        h = torch.cat([x, F.pad(x.diff(dim=2), (1, 0))], dim=1)
        for conv in self.time:
            h = F.leaky_relu(conv(h), 0.2)
            features.append(h)
        time_logits = self.time_head(minibatch_std(h))
        return [step_logits, time_logits], features


def walk_noise(batch: int, latent_size: int, steps: int, walk_fraction: float, device,
               phrase_size: int = 0, per_batch: bool = False) -> torch.Tensor:
    """``(batch, latent_size, steps)`` N(0, I) per step; ``walk_fraction`` of the sequences correlated in time.

    The engine rarely plays i.i.d. latents: its walk (``engine.controls``) is
    ``sqrt(1 - s^2) point + s walk`` with an Ornstein-Uhlenbeck ``walk`` of speed ``v``,
    N(0, I) at every step but correlated from step to step. Training the front on
    such sequences too (``v`` in [0.2, 1], ``s`` in [0.6, 1]) makes it play music at
    the app's walk settings, not only at the i.i.d. extreme.

    The last ``phrase_size`` inputs (``model.PhraseLatent``) are one N(0, I) draw per
    sequence, held: a training window is shorter than the engine's slow phrase walk.

    ``per_batch``: the whole batch is walks with probability ``walk_fraction``, else i.i.d.
    A critic judges a batch by its statistics (the batch-std feature, feature matching, the
    window moments). In a mixed batch a front can pass with i.i.d. sequences that vary too
    little from window to window and walks that vary too much, which is what it learns;
    a batch of one kind holds each kind to the real spread.
    """
    z = torch.randn(batch, latent_size, steps, device=device)
    if per_batch:
        n_walk = batch if float(torch.rand(())) < walk_fraction else 0
    else:
        n_walk = int(round(batch * walk_fraction))
    if n_walk == 0:
        return hold_phrase(z, phrase_size)
    speed = torch.empty(n_walk, 1, device=device).uniform_(0.2, 1.0)
    spread = torch.empty(n_walk, 1, device=device).uniform_(0.6, 1.0)
    keep = 1.0 - speed
    eps = torch.randn(n_walk, latent_size, steps, device=device)
    walk = [eps[:, :, 0]]
    for k in range(1, steps):
        walk.append(keep * walk[-1] + torch.sqrt(1.0 - keep * keep) * eps[:, :, k])
    walk = torch.stack(walk, dim=2)
    point = torch.randn(n_walk, latent_size, 1, device=device)
    s = spread[:, :, None]
    z[:n_walk] = torch.sqrt(1.0 - s * s) * point + s * walk
    return hold_phrase(z, phrase_size)


class LatentGANTask(GANTask):
    """The front against ``LatentCritic``; the decoder (from the autoencoder run) is frozen.

    ``config.generator`` is the whole prior: its decoder shape must be the autoencoder's
    (``decoder_config()``), ``code_size`` its code. Validation decodes and scores mel windows
    exactly as a one-level prior's (``PriorTask.validate``), so the curves compare.
    """

    name = "prior"                # its checkpoints are ordinary prior checkpoints (export, load_generator)
    best_metric = "fd_ratio"
    branch_files = (CODES_FILE, "prior_reference.npz")   # the same codes, and the curve's reference

    def keep_built_on_branch(self, key: str) -> bool:
        """A branch takes the front (and its critic) from the old run, the frozen decoder from
        ``twolevel.autoencoder``: a decoder fine-tuned since (encoder frozen) joins the game."""
        return not key.startswith(("net.front.", "ema.front."))

    def __init__(self, config: PriorConfig, twolevel: TwoLevelConfig, corpus_dir, spec: MelSpec | None = None,
                 reference_cache=None, codes_cache=None, vocoder_bundle=None):
        if not config.generator.code_size:
            raise ConfigError("the latent GAN's generator needs a front (generator.code_size > 0)")
        if not twolevel.autoencoder:
            raise ConfigError("the latent GAN needs twolevel.autoencoder: the autoencoder run it decodes with")
        self.config = config
        self.twolevel = twolevel
        self.spec = spec or MelSpec()
        self.corpus_dir = Path(corpus_dir)
        self.codes_cache = Path(codes_cache) if codes_cache else None
        self.scorer = PriorTask(config, corpus_dir, self.spec, vocoder_bundle=vocoder_bundle,
                                reference_cache=reference_cache)
        self._codes = None
        self._autoencoder = None
        self._moments = None
        self._mel_moments = None
        self._code_statistics = None

    def config_dict(self) -> dict[str, Any]:
        return {"prior": self.config.to_dict(), "mel": self.spec.to_dict(), "twolevel": self.twolevel.to_dict()}

    def autoencoder(self) -> PriorModule:
        if self._autoencoder is None:
            module, task = load_autoencoder(self.twolevel.autoencoder)
            want = self.config.generator.decoder_config()
            have = PriorConfig.from_dict(task["prior"]).generator
            if have != want:
                raise TrainError(f"{self.twolevel.autoencoder}: the autoencoder's decoder {have} differs from "
                                 f"this prior's decoder {want}")
            self._autoencoder = module
        return self._autoencoder

    # ----------------------------------------------------------------- data
    def codes(self) -> list[np.ndarray]:
        """The train split's code sequences: encoded once, then read from ``codes_cache``.

        The cache names the encoder that made it (``encoder_fingerprint``). A cache of
        another encoder (a branch onto a retrained autoencoder copies the old run's) is
        encoded afresh, never read as this encoder's codes.
        """
        if self._codes is None:
            cache = self.codes_cache
            encoder = self.autoencoder().encoder
            fingerprint = encoder_fingerprint(encoder)
            if cache is not None and cache.is_file():
                with np.load(cache) as z:
                    if ENCODER_KEY in z.files and bytes(z[ENCODER_KEY]).decode() == fingerprint:
                        self._codes = [z[k] for k in sorted((k for k in z.files if k != ENCODER_KEY),
                                                            key=lambda k: int(k[1:]))]
                if self._codes is None:
                    print(f"{cache}: codes of another encoder (or unnamed): encoding the train split afresh")
            if self._codes is None:
                from melsynth.training.prior.data import load_split

                split = load_split(self.corpus_dir, "train", self.spec)
                self._codes = encode_split(encoder, split, self.spec, self.config.generator.latent_frames)
                if cache is not None:
                    from melsynth.engine.atomic import atomic_write

                    arrays = {f"f{i}": c for i, c in enumerate(self._codes)}
                    arrays[ENCODER_KEY] = np.frombuffer(fingerprint.encode(), dtype=np.uint8)
                    atomic_write(cache, lambda f: np.savez(f, **arrays))
        return self._codes

    def code_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and std ``(code,)`` of every train code (computed once: the critic, a
        branch and the window moments all ask)."""
        if self._code_statistics is None:
            allc = np.concatenate(self.codes(), axis=1)
            self._code_statistics = (allc.mean(axis=1), allc.std(axis=1))
        return self._code_statistics

    def window_moments(self, windows: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """The target of ``window_moment_loss``: the mean ``(code,)`` of real ``moment_steps``-step code means,
        ``moment_components`` axes ``(code, k)`` (``moment_axes``: ``moments.code_axes`` or ``moments.mel_axes``)
        and the real variance along each ``(k,)``; standardised as the critic sees codes, drawn once,
        uniformly over the split."""
        if self._moments is None:
            w = self.twolevel.moment_steps
            codes = [c for c in self.codes() if c.shape[1] >= w]
            mean, std = self.code_statistics()
            counts = np.array([c.shape[1] - w + 1 for c in codes], dtype=np.float64)
            picks = uniform_positions(counts, windows, np.random.default_rng(seed))
            scale = np.maximum(std, 1e-3)
            m = (np.stack([codes[f][:, s:s + w].mean(axis=1) for f, s in picks]) - mean) / scale
            k = self.twolevel.moment_components
            if self.twolevel.moment_axes == "mel":
                step_codes, step_spectra = self.step_spectra(MOMENT_AXES_STEPS, seed=seed + 1)
                basis, variance = mel_axes(m, (step_codes - mean) / scale, step_spectra, k)
            else:
                basis, variance = code_axes(m, k)
            self._moments = tuple(torch.as_tensor(a, dtype=torch.float32) for a in (m.mean(axis=0), basis, variance))
        return self._moments

    def mel_window_moments(self, windows: int = 20_000, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """The target of the decoded-mel moment loss: over ``windows`` train windows of ``moment_steps``
        latent steps of normalised mel, drawn uniformly, the mean of their band means ``(n_mels,)``,
        the top ``moment_components`` principal axes of those ``(n_mels, k)`` and the variance along
        each ``(k,)``: the band-mean spread ``melsynth eval prior`` reports as ``spread_ratio``."""
        if self._mel_moments is None:
            from melsynth.training.prior.data import load_split

            frames = self.twolevel.moment_steps * self.config.generator.latent_frames
            split = load_split(self.corpus_dir, "train", self.spec, min_frames=frames)
            rng = np.random.default_rng(seed)
            means = np.concatenate([self.spec.normalize(split.sample_windows(min(1000, windows - i), frames, rng))
                                    .mean(axis=2, dtype=np.float64) for i in range(0, windows, 1000)])
            basis, variance = code_axes(means, self.twolevel.moment_components)
            self._mel_moments = tuple(torch.as_tensor(a, dtype=torch.float32)
                                      for a in (means.mean(axis=0), basis, variance))
        return self._mel_moments

    def step_spectra(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` train steps drawn uniformly: their codes ``(n, code)`` and the mean normalised spectrum of
        each step's ``latent_frames`` frames ``(n, n_mels)``."""
        from melsynth.training.prior.data import load_split

        frames = self.config.generator.latent_frames
        mels = [m for m in load_split(self.corpus_dir, "train", self.spec).mels if m.shape[1] >= frames]
        codes = self.codes()
        if len(mels) != len(codes) or any(c.shape[1] != m.shape[1] // frames for c, m in zip(codes, mels)):
            raise TrainError(f"{self.codes_cache or 'the train codes'}: they do not line up with "
                             f"{self.corpus_dir}'s train split")
        picks = uniform_positions(np.array([c.shape[1] for c in codes], dtype=np.float64), n,
                                  np.random.default_rng(seed))
        step_codes = np.stack([codes[f][:, s] for f, s in picks]).astype(np.float64)
        spectra = np.stack([self.spec.normalize(np.asarray(mels[f][:, s * frames:(s + 1) * frames])).mean(axis=1)
                            for f, s in picks]).astype(np.float64)
        return step_codes, spectra

    def batches(self, rank: int, world_size: int, seed: int, batch_size: int) -> Iterator[torch.Tensor]:
        """Endless ``(batch, code, window_steps)`` real code windows, uniformly over the split's steps."""
        codes = [c for c in self.codes() if c.shape[1] >= self.twolevel.window_steps]
        if not codes:
            raise TrainError(f"{self.corpus_dir}: no train file of {self.twolevel.window_steps} latent steps")
        w = self.twolevel.window_steps
        counts = np.array([c.shape[1] - w + 1 for c in codes], dtype=np.float64)
        rng = np.random.default_rng([seed, rank, world_size])
        while True:
            picks = uniform_positions(counts, batch_size, rng)
            yield torch.from_numpy(np.stack([codes[f][:, s:s + w] for f, s in picks]))

    # ----------------------------------------------------------------- networks
    def build_generator(self) -> nn.Module:
        module = PriorModule(self.config)
        decoder = self.autoencoder().ema.state_dict()
        for net in (module.net, module.ema):
            missing, unexpected = net.load_state_dict(decoder, strict=False)
            if unexpected or any(not k.startswith("front.") for k in missing):
                raise TrainError(f"{self.twolevel.autoencoder}: decoder weights do not fit: missing "
                                 f"{[k for k in missing if not k.startswith('front.')][:3]}, unexpected {unexpected[:3]}")
        for name, p in module.net.named_parameters():
            p.requires_grad_(name.startswith("front."))
        module.encoder.requires_grad_(False)
        return module

    def after_branch(self, generator: nn.Module, discriminator: nn.Module | None) -> None:
        """The old run's critic standardised its codes; these codes may come from another encoder."""
        if discriminator is not None:
            unwrap(discriminator).set_statistics(*self.code_statistics())

    def build_discriminator(self) -> nn.Module:
        critic = LatentCritic(self.config.generator.code_size, self.twolevel.critic_channels,
                              self.twolevel.critic_dilations)
        critic.set_statistics(*self.code_statistics())
        return critic

    # ----------------------------------------------------------------- losses
    def generate(self, generator: nn.Module, batch: int, device: torch.device) -> torch.Tensor:
        """``(batch, code, window_steps)`` codes from N(0, I) noise, after ``warmup_steps`` cropped steps."""
        return self.front_codes(generator, batch, device)[:, :, self.twolevel.warmup_steps:]

    def front_codes(self, generator: nn.Module, batch: int, device: torch.device) -> torch.Tensor:
        """``(batch, code, warmup_steps + window_steps)``: the front's codes, warm-up included."""
        net = unwrap(generator).net
        t = self.twolevel
        g = self.config.generator
        z = walk_noise(batch, g.latent_size, t.warmup_steps + t.window_steps, t.walk_fraction, device, g.phrase_size,
                       per_batch=t.walk_per_batch)
        return net.front(z)

    def generator_loss(self, generator, discriminator, batch, adversarial) -> LossOutput:
        module = unwrap(generator)
        module.update_ema()
        codes = self.front_codes(generator, batch.shape[0], batch.device)
        fake = codes[:, :, self.twolevel.warmup_steps:]
        fake_logits, fake_features = discriminator(fake)
        loss_adv = generator_hinge_loss(fake_logits)
        loss, logs = loss_adv, {"g_adv": float(loss_adv.detach())}
        if self.twolevel.feature_matching > 0:
            with torch.no_grad():
                _, real_features = discriminator(batch)
            loss_fm = feature_matching_loss(real_features, fake_features)
            loss = loss + self.twolevel.feature_matching * loss_fm
            logs["g_fm"] = float(loss_fm.detach())
        if self.twolevel.moment_weight > 0:
            mean, basis, var = (t.to(fake.device) for t in self.window_moments())
            critic = unwrap(discriminator)
            loss_m = window_moment_loss((fake - critic.mean) / critic.std, self.twolevel.moment_steps, mean, basis, var)
            loss = loss + self.twolevel.moment_weight * loss_m
            logs["g_moments"] = float(loss_m.detach())
        if self.twolevel.mel_moment_weight > 0:
            # decoded from the warm-up on, as eval prior's windows are, then cropped
            lf = self.config.generator.latent_frames
            mel = unwrap(generator).net.decode(codes)[:, :, self.twolevel.warmup_steps * lf:]
            mean, basis, var = (t.to(mel.device) for t in self.mel_window_moments())
            loss_mm = window_moment_loss(mel, self.twolevel.moment_steps * lf, mean, basis, var)
            loss = loss + self.twolevel.mel_moment_weight * loss_mm
            logs["g_mel_moments"] = float(loss_mm.detach())
        return LossOutput(loss, logs, fake.detach())

    def discriminator_loss(self, discriminator, batch, fake) -> LossOutput:
        real_logits, _ = discriminator(batch)
        fake_logits, _ = discriminator(fake)
        loss = critic_hinge_loss(real_logits, fake_logits)
        return LossOutput(loss, {"d_real": float(torch.stack([r.mean() for r in real_logits]).mean().detach()),
                                 "d_fake": float(torch.stack([f.mean() for f in fake_logits]).mean().detach())})

    def validate(self, generator: nn.Module, device: torch.device) -> Validation:
        return self.scorer.validate(unwrap(generator), device)


def with_decoder(generator: nn.Module, autoencoder_run: str | Path) -> nn.Module:
    """``generator`` (a two-level prior) with its decoder replaced by the autoencoder run's averaged one.

    The latent GAN trains against the decoder it started with; a decoder fine-tuned
    later with the encoder frozen (``TwoLevelConfig.freeze_encoder``) reads the same
    codes, so the front and the sharper decoder combine.
    """
    if getattr(generator, "front", None) is None:
        raise TrainError("--decoder needs a two-level prior (a generator with a front)")
    module, task = load_autoencoder(autoencoder_run)
    have = PriorConfig.from_dict(task["prior"]).generator
    if have != generator.config.decoder_config():
        raise TrainError(f"{autoencoder_run}: its decoder {have} differs from the prior's "
                         f"{generator.config.decoder_config()}")
    if not TwoLevelConfig.from_dict(task.get("twolevel", {})).freeze_encoder:
        print(f"warning: {autoencoder_run} also trained its encoder: its codes may differ from the front's")
    missing, unexpected = generator.load_state_dict(module.ema.state_dict(), strict=False)
    if unexpected or any(not k.startswith("front.") for k in missing):
        raise TrainError(f"{autoencoder_run}: decoder weights do not fit the prior")
    return generator.eval()


def latent_prior_config(autoencoder_prior: dict[str, Any], latent_size: int = 64, front_channels: int = 256,
                        front_dilations: tuple[int, ...] = (1, 2, 4, 8)) -> PriorConfig:
    """The whole prior's config from the autoencoder run's ``PriorConfig`` dict: its decoder plus a front."""
    base = PriorConfig.from_dict(autoencoder_prior)
    g = dataclasses.replace(base.generator, latent_size=latent_size, code_size=base.generator.latent_size,
                            front_channels=front_channels, front_dilations=tuple(front_dilations))
    return dataclasses.replace(base, generator=g)
