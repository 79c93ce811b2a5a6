"""Frozen configurations of the prior: network shapes and training settings.

Both are saved with every run (``config.json``) and the generator's goes into
the bundle, so a checkpoint can always be rebuilt with the shapes it was
trained with.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the frozen dataclasses hold."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


class ConfigError(ValueError):
    """A configuration file or value the prior cannot use."""


def _from_dict(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**{k: _tuples(v) for k, v in data.items()})


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of the generator (see ``training.prior.model``).

    ``channels[0]`` is the width at the latent rate; ``channels[i + 1]`` the width
    after the ``i``-th upsampler. ``dilations[i]`` lists the residual blocks of
    stage ``i`` (one block per dilation). ``prod(upsample) == latent_frames``.
    """

    latent_size: int = 64
    n_mels: int = 256
    upsample: tuple[int, ...] = (4, 4)
    channels: tuple[int, ...] = (256, 256, 192)
    dilations: tuple[tuple[int, ...], ...] = ((1, 2), (1, 3, 9), (1, 3, 9, 27))
    kernel_size: int = 3
    latent_kernel: int = 2  # the first layer also sees the previous latent: smooth transitions
    pca_components: int = 0  # > 0: output whitened coefficients of a fixed mel PCA (training.prior.pca)
    # Two-level prior (training.prior.twolevel): a causal "front" at the latent rate maps the noise
    # latent to a ``code_size`` autoencoder code, which the rest of the network decodes. 0: no front.
    code_size: int = 0
    front_channels: int = 256
    front_dilations: tuple[int, ...] = (1, 2, 4, 8)
    # The front's slow path (``model.SlowLatent``): ``front_slow_channels`` running averages of the
    # noise over the last ``front_slow_steps`` steps, so loudness and timbre can persist for seconds
    # even from i.i.d. noise. 0: none.
    front_slow_channels: int = 0
    front_slow_steps: int = 24
    # The phrase latent (``model.PhraseLatent``): the last ``phrase_size`` of the ``latent_size``
    # inputs are drawn once per phrase and held (the engine walks them slowly), so a loudness,
    # register or instrument can last as long as real music holds one. 0: every input is per step.
    phrase_size: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.latent_size <= 0 or self.n_mels <= 0:
            problems.append(f"latent_size={self.latent_size} and n_mels={self.n_mels} must be positive")
        if len(self.channels) != len(self.upsample) + 1:
            problems.append(f"channels has {len(self.channels)} entries, need len(upsample) + 1 = "
                            f"{len(self.upsample) + 1}")
        if len(self.dilations) != len(self.upsample) + 1:
            problems.append(f"dilations has {len(self.dilations)} stages, need {len(self.upsample) + 1}")
        if any(u < 1 for u in self.upsample):
            problems.append(f"upsample factors {self.upsample} must be >= 1")
        if not 0 <= self.pca_components <= self.n_mels:
            problems.append(f"pca_components={self.pca_components} must be in [0, n_mels={self.n_mels}]")
        if self.code_size < 0 or (self.code_size and (self.front_channels < 1 or not self.front_dilations)):
            problems.append(f"code_size={self.code_size} must be >= 0, and a front needs front_channels >= 1 "
                            f"and at least one dilation (got {self.front_channels}, {self.front_dilations})")
        if self.front_slow_channels < 0 or (self.front_slow_channels and self.front_slow_steps < 2):
            problems.append(f"front_slow_channels={self.front_slow_channels} must be >= 0, with "
                            f"front_slow_steps >= 2 (got {self.front_slow_steps})")
        if self.front_slow_channels and not self.code_size:
            problems.append("front_slow_channels needs a front (code_size > 0)")
        if not 0 <= self.phrase_size < self.latent_size or (self.phrase_size and not self.code_size):
            problems.append(f"phrase_size={self.phrase_size} must be in [0, latent_size={self.latent_size}) "
                            f"and needs a front (code_size > 0)")
        if self.kernel_size < 1 or self.latent_kernel < 1:
            problems.append("kernel sizes must be >= 1")
        if problems:
            raise ConfigError("invalid GeneratorConfig: " + "; ".join(problems))

    @property
    def decoder_input_size(self) -> int:
        """What the decoder reads per step: the front's code, or the latent itself without a front."""
        return self.code_size or self.latent_size

    def decoder_config(self) -> "GeneratorConfig":
        """The decoder alone (no front) as a generator of its own: the two-level prior's autoencoder."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)
                    if f.name.startswith("front_") or f.name == "phrase_size"}
        return dataclasses.replace(self, latent_size=self.decoder_input_size, code_size=0, **defaults)

    @property
    def latent_frames(self) -> int:
        n = 1
        for u in self.upsample:
            n *= u
        return n

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        return _from_dict(cls, data, "generator config")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Shape of the discriminator (see ``training.prior.discriminator``)."""

    channels: tuple[int, ...] = (256, 256, 384, 512)
    kernel_size: int = 5
    freq_channels: tuple[int, ...] = ()  # the 2-D (time x mel) branch, e.g. (16, 32, 64); off: +50% step time on CPU
    pca_input: bool = False   # the 1-D branch reads the generator's PCA coefficients, not the 256 bins
    minibatch_std: bool = True   # ProGAN's batch-std feature before the head: a cheap cue against mode collapse
    delta_input: bool = True     # the 1-D branch also reads frame-to-frame differences (onsets, motion)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiscriminatorConfig":
        return _from_dict(cls, data, "discriminator config")


@dataclass(frozen=True)
class PriorConfig:
    """The prior's model and adversarial-game settings (optimiser settings: ``training.gan.TrainConfig``)."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    window_frames: int = 128       # what the discriminator sees (~3 s)
    warmup_steps: int = 3          # latent steps generated before each window and cropped: no zero-state edge
    feature_matching: float = 1.0  # weight of the batch-mean feature-matching term in G's loss
    ema_decay: float = 0.999       # the exported generator is this moving average of the trained one
    # VAE warm start (training.prior.encoder); its length is the trainer's warmup_steps.
    encoder_channels: int = 256
    kl_weight: float = 0.05        # on the KL per latent dimension (nats), against the mean L1 of normalised mel
    vae_weight: float = 0.5        # weight of the VAE loss kept during the adversarial stage (0: pure GAN)
    vae_batch_fraction: float = 0.25  # share of the batch reconstructed during the adversarial stage
    eval_windows: int = 2000       # windows per set in the learning-curve FD-mel
    eval_window_frames: int = 128

    def __post_init__(self) -> None:
        lf = self.generator.latent_frames
        if self.window_frames <= 0 or self.window_frames % lf:
            raise ConfigError(f"window_frames={self.window_frames} must be a positive multiple of "
                              f"latent_frames={lf}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps={self.warmup_steps} must be >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay={self.ema_decay} must be in [0, 1)")
        if self.kl_weight < 0 or self.vae_weight < 0 or not 0.0 < self.vae_batch_fraction <= 1.0:
            raise ConfigError(f"need kl_weight >= 0, vae_weight >= 0, 0 < vae_batch_fraction <= 1 "
                              f"(got {self.kl_weight}, {self.vae_weight}, {self.vae_batch_fraction})")
        if self.eval_windows < 2:
            raise ConfigError(f"eval_windows={self.eval_windows} must be >= 2")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PriorConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"prior config: expected an object, got {type(data).__name__}")
        data = dict(data)
        if "generator" in data:
            data["generator"] = GeneratorConfig.from_dict(data["generator"])
        if "discriminator" in data:
            data["discriminator"] = DiscriminatorConfig.from_dict(data["discriminator"])
        return _from_dict(cls, data, "prior config")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A ``--config`` JSON file: ``{"prior": {...PriorConfig}, "trainer": {...training.gan.TrainConfig}}``,
    optionally ``"distill": {...training.prior.distill.DistillConfig}`` (learn from a teacher prior) or
    ``"twolevel": {...training.prior.twolevel.TwoLevelConfig}`` (the two-level prior's autoencoder, or with
    ``generator.code_size`` > 0 its latent GAN)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"prior", "trainer", "distill", "twolevel"}:
        raise ConfigError(f"{path}: expected an object with keys 'prior', 'trainer', 'distill' and/or 'twolevel'")
    return data
