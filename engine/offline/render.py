"""Offline rendering to files: music from noise, and a spectrogram picture of it.

``render_walk`` is ``engine.stream.pipeline.render_offline`` with a seeded latent walk: the
same pipeline the live synth runs, so what a render sounds like is what ``play``
sounds like for the same seed.
"""
from __future__ import annotations

import functools
import io
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from melsynth.engine.atomic import atomic_write, atomic_write_bytes
from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD, Controls
from melsynth.engine.stream.chain import load_models
from melsynth.engine.stream.pipeline import Pipeline, as_bundle, render_offline

AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def walk_controls(seed: int, walk_speed: float = WALK_SPEED, walk_spread: float = WALK_SPREAD) -> Controls:
    """Latent point from ``seed`` wandering by a walk seeded from it too."""
    return Controls(seed=seed, walk_seed=seed, walk_speed=walk_speed, walk_spread=walk_spread)


def render_walk(bundle, seconds: float, seed: int, walk_speed: float = WALK_SPEED, walk_spread: float = WALK_SPREAD,
                vocoder: str | None = None, sample_rate: int | None = None,
                config: SynthConfig = SynthConfig(), quality: str | None = None) -> np.ndarray:
    """``-> (samples,)`` float32 in [-1, 1] at ``sample_rate`` (None = the model rate).

    ``quality``: the classical vocoder's phase quality (``engine.dsp.quality``; None = the bundle's)."""
    if not (seconds > 0):
        raise ValueError(f"seconds must be positive, got {seconds}")
    return render_offline(bundle, seconds, walk_controls(seed, walk_speed, walk_spread), vocoder=vocoder,
                          config=config, sample_rate=sample_rate, loader=functools.partial(load_models, quality=quality))


def walk_chunks(bundle, seconds: float, seed: int, walk_speed: float = WALK_SPEED, walk_spread: float = WALK_SPREAD,
                vocoder: str | None = None, config: SynthConfig = SynthConfig(),
                quality: str | None = None) -> Iterator[np.ndarray]:
    """``render_walk`` (at the model rate) one pipeline step at a time, so a render of any length
    needs the memory of one step: the chunks put together are ``render_walk``'s samples."""
    if not (0 < seconds < float("inf")):
        raise ValueError(f"seconds must be positive and finite, got {seconds}")
    pipe = Pipeline(as_bundle(bundle), vocoder, config, walk_controls(seed, walk_speed, walk_spread),
                    loader=functools.partial(load_models, quality=quality))
    left = int(round(float(seconds) * pipe.out_rate))
    while left > 0:
        out = pipe.step()[:left]
        left -= out.size
        yield out.astype(np.float32, copy=False)


def audio_format(path: str | os.PathLike) -> tuple[str, str]:
    """``(format, subtype)`` for soundfile from the suffix: WAV (32-bit float) or FLAC (16-bit)."""
    path = Path(path)
    fmt = AUDIO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: write .wav or .flac, not {path.suffix or 'no extension'!r}")
    return fmt, ("FLOAT" if fmt == "WAV" else "PCM_16")


def write_audio_stream(path: str | os.PathLike, chunks: Iterable[np.ndarray], sample_rate: int) -> tuple[Path, int, float]:
    """Mono ``chunks`` written as they come into a WAV or FLAC (by suffix), atomically (the
    file appears complete or not at all) -> ``(path, samples, peak)``."""
    import soundfile as sf

    fmt, subtype = audio_format(path)
    written = {"samples": 0, "peak": 0.0}

    def write(f) -> None:
        with sf.SoundFile(f, mode="w", samplerate=sample_rate, channels=1, format=fmt, subtype=subtype) as snd:
            for chunk in chunks:
                if chunk.size:
                    snd.write(chunk)
                    written["samples"] += chunk.size
                    written["peak"] = max(written["peak"], float(np.abs(chunk).max()))

    return atomic_write(path, write), written["samples"], written["peak"]


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """WAV (float) or FLAC (16-bit), chosen by suffix, written atomically."""
    import soundfile as sf

    fmt, subtype = audio_format(path)
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
