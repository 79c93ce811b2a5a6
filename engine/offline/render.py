"""Offline rendering to files: music from noise, and a spectrogram picture of it.

``render_walk`` is ``engine.stream.pipeline.render_offline`` with a seeded latent walk: the
same pipeline the live synth runs, so what a render sounds like is what ``play``
sounds like for the same seed.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from melsynth.engine.atomic import atomic_write, atomic_write_bytes
from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD, Controls
from melsynth.engine.stream.pipeline import render_offline

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def walk_controls(seed: int, walk_speed: float = WALK_SPEED, walk_spread: float = WALK_SPREAD) -> Controls:
    """Latent point from ``seed`` wandering by a walk seeded from it too."""
    return Controls(seed=seed, walk_seed=seed, walk_speed=walk_speed, walk_spread=walk_spread)


def render_walk(bundle, seconds: float, seed: int, walk_speed: float = WALK_SPEED, walk_spread: float = WALK_SPREAD,
                vocoder: str | None = None, sample_rate: int | None = None,
                config: SynthConfig = SynthConfig()) -> np.ndarray:
    """``-> (samples,)`` float32 in [-1, 1] at ``sample_rate`` (None = the model rate)."""
    if not (seconds > 0):
        raise ValueError(f"seconds must be positive, got {seconds}")
    return render_offline(bundle, seconds, walk_controls(seed, walk_speed, walk_spread), vocoder=vocoder,
                          config=config, sample_rate=sample_rate)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """WAV (float) or FLAC (16-bit), chosen by suffix, written atomically."""
    import soundfile as sf

    path = Path(path)
    fmt = AUDIO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: write .wav or .flac, not {path.suffix or 'no extension'!r}")
    subtype = "FLOAT" if fmt == "WAV" else "PCM_16"
    return atomic_write(path, lambda f: sf.write(f, np.asarray(audio, np.float32), sample_rate, format=fmt,
                                                 subtype=subtype))


def spectrogram_png(path: str | os.PathLike, audio: np.ndarray, spec: MelSpec, title: str = "") -> Path:
    """A log-mel spectrogram of ``audio`` (at the model rate) as a PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    mel = log_mel(spec, np.asarray(audio, dtype=np.float32))
    seconds = len(audio) / spec.sample_rate
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    im = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, spec.n_mels),
                   vmin=max(spec.log_min, float(mel.max()) - 5.0), vmax=float(mel.max()))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel bin")
    ax.set_title(title or f"log-mel, {spec.n_mels} bins, {spec.sample_rate} Hz")
    fig.colorbar(im, ax=ax, label="log10 magnitude")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
