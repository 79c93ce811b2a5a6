"""Vocoder training configuration: frozen dataclasses, saved with each run and bundle.

``VocoderConfig`` describes the task (network, data, losses, validation);
``training.gan.TrainConfig`` the optimisation. ``default_configs(arch)``
returns both for an architecture; a JSON file given to ``--config`` overrides
any field: ``{"task": {"ap": {"dim": 256}}, "trainer": {"batch_size": 32}}``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.gan import TrainConfig, TrainError
from melsynth.training.nn.ap import APConfig
from melsynth.training.nn.discriminators import DiscriminatorConfig
from melsynth.training.nn.melgan import MelGANConfig

ARCHS = ("ap", "melgan")
KIND_OF_ARCH = {"ap": "amplitude_phase", "melgan": "melgan"}


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator's loss terms (terms that do not apply to an arch are skipped)."""

    mrstft: float = 2.0            # waveform: multi-resolution log10-STFT L1 (the eval metric)
    spectral_convergence: float = 1.0
    mel: float = 1.0               # waveform: log10 mel L1
    log_amplitude: float = 1.0     # ap: natural-log amplitude L1 on the STFT frames
    instantaneous_frequency: float = 1.0   # ap: anti-wrapping, amplitude-weighted
    group_delay: float = 1.0               # ap: anti-wrapping, amplitude-weighted
    phase_weight_power: float = 1.0        # ap: phase-loss weight of a bin = (A / max A) ** power
    consistency: float = 0.5       # ap: |S - STFT(iSTFT(S))| / |S|
    adversarial: float = 1.0
    feature_matching: float = 10.0  # MelGAN's weight


@dataclass(frozen=True)
class VocoderConfig:
    arch: str = "ap"
    mel: MelSpec = field(default_factory=MelSpec)
    ap: APConfig = field(default_factory=APConfig)
    melgan: MelGANConfig = field(default_factory=lambda: MelGANConfig(channels=256))
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    gan_loss: str = "hinge"                 # hinge | lsgan
    segment_frames: int = 32                # training crop (frames; 32 = 0.74 s)
    edge_frames: int = 2                    # STFT-domain losses skip this many frames at each crop edge
    gain_db: tuple[float, float] = (-12.0, 3.0)   # random-amplitude augmentation (audio and mel together)
    min_rms: float = 1e-4                   # crops quieter than this are redrawn (up to 4 times)
    val_clips: int = 4
    val_seconds: float = 6.0
    val_gl_refine_iterations: int = 4       # ap: also score its output refined by N Griffin-Lim iterations

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise TrainError(f"arch {self.arch!r}: choose one of {', '.join(ARCHS)}")
        if self.gan_loss not in ("hinge", "lsgan"):
            raise TrainError(f"gan_loss {self.gan_loss!r}: choose hinge or lsgan")
        if self.segment_frames <= 2 * self.edge_frames + 1:
            raise TrainError(f"segment_frames={self.segment_frames} too short for edge_frames={self.edge_frames}")
        if self.gain_db[0] > self.gain_db[1]:
            raise TrainError(f"gain_db={self.gain_db}: low must not exceed high")

    @property
    def kind(self) -> str:
        return KIND_OF_ARCH[self.arch]

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def from_dict(cls, data: Any, where: str = "config"):
    """Build a (nested) frozen dataclass from a JSON dict; unknown fields are errors naming the path."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(cls)
    if not isinstance(data, dict):
        raise TrainError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TrainError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{where}.{name}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            kwargs[name] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TrainError:
        raise
    except Exception as exc:
        raise TrainError(f"{where}: {exc}") from exc


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict update (override wins)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def default_configs(arch: str) -> tuple[VocoderConfig, TrainConfig]:
    if arch == "ap":
        return VocoderConfig(arch="ap"), TrainConfig(batch_size=16, lr_g=5e-4, lr_d=2e-4, betas=(0.8, 0.99),
                                                     warmup_steps=20000, grad_clip=10.0,
                                                     lr_half_life_steps=100000)
    if arch == "melgan":
        return VocoderConfig(arch="melgan"), TrainConfig(batch_size=16, lr_g=1e-4, lr_d=1e-4, betas=(0.5, 0.9),
                                                         warmup_steps=20000, grad_clip=10.0)
    raise TrainError(f"arch {arch!r}: choose one of {', '.join(ARCHS)}")


def load_configs(arch: str, config_file: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None) -> tuple[VocoderConfig, TrainConfig]:
    """Defaults for ``arch``, then ``config_file`` (JSON ``{"task": {...}, "trainer": {...}}``), then ``overrides``."""
    task, trainer = default_configs(arch)
    task_d, trainer_d = task.to_dict(), json.loads(json.dumps(trainer.to_dict()))
    layers = []
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise TrainError(f"{path}: config file missing")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TrainError(f"{path}: invalid JSON: {exc}") from exc
        if not isinstance(data, dict) or set(data) - {"task", "trainer"}:
            raise TrainError(f"{path}: expected an object with 'task' and/or 'trainer'")
        layers.append(data)
    if overrides:
        layers.append(overrides)
    for layer in layers:
        task_d = merge(task_d, layer.get("task", {}))
        trainer_d = merge(trainer_d, layer.get("trainer", {}))
    task_d["arch"] = task_d.get("arch", arch)
    return from_dict(VocoderConfig, task_d, "task"), TrainConfig.from_dict(trainer_d)
