"""Notes -> audio with FluidSynth, then 11025 Hz mono at a common level.

Rendering runs at 22050 Hz and soxr resamples to 11025 Hz: FluidSynth rendering
directly at 11025 Hz aliases (its sample interpolation has no anti-alias filter
for samples pitched up). The soundfont is loaded once per ``FluidRenderer``
(once per worker process); each render resets the synth.

Events are fed between ``fluid_synth_write_float`` calls, so the render time is
bounded by the score's length (no MIDI player that can loop or hang).
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melsynth.training.corpus.scores import Instrumentation, ScoreNotes

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RENDER_RATE = 22050
CORPUS_RATE = 11025
TAIL_SECONDS = 1.5          # let releases and reverb ring out
DRUM_CHANNEL = 9            # GM channel 10 is percussion: never give it a melodic part


class RenderError(RuntimeError):
    """A render that cannot be done (missing soundfont, score too long, silent output)."""


def soundfont_path() -> Path:
    path = Path(os.environ.get("MELSYNTH_SOUNDFONT", DEFAULT_SOUNDFONT))
    if not path.is_file():
        raise RenderError(f"soundfont {path} not found (install Debian's fluid-soundfont-gm "
                          "or set MELSYNTH_SOUNDFONT)")
    return path


@dataclass(frozen=True)
class Performance:
    """Seeded variation applied to a score before rendering."""

    tempo_scale: float = 1.0        # > 1 plays faster
    velocity_scale: float = 1.0
    velocity_jitter: float = 0.0    # std of per-note velocity noise, MIDI units

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Performance":
        return cls(tempo_scale=float(rng.uniform(0.85, 1.2)),
                   velocity_scale=float(rng.uniform(0.7, 1.15)),
                   velocity_jitter=float(rng.uniform(2.0, 8.0)))


class FluidRenderer:
    """One FluidSynth instance with the soundfont loaded: ``render(notes, instrumentation)``."""

    def __init__(self, soundfont: str | os.PathLike | None = None, sample_rate: int = RENDER_RATE):
        import fluidsynth  # needs Debian's libfluidsynth3

        self.sample_rate = sample_rate
        self._fs = fluidsynth.Synth(gain=0.2, samplerate=float(sample_rate))
        sf = str(soundfont or soundfont_path())
        self._sfid = self._fs.sfload(sf)
        if self._sfid < 0:
            raise RenderError(f"FluidSynth cannot load soundfont {sf}")
        # Float output: no int16 clipping before our own level normalisation.
        self._write_float = fluidsynth.cfunc(
            "fluid_synth_write_float", ctypes.c_int,
            ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
            ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
            ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1))
        if self._write_float is None:
            raise RenderError("libfluidsynth has no fluid_synth_write_float")

    def close(self) -> None:
        if self._fs is not None:
            self._fs.delete()
            self._fs = None

    def _write(self, out: np.ndarray, start: int, stop: int) -> None:
        """Synthesize samples ``[start, stop)`` into ``out`` (2, n) float32 (left, right rows)."""
        block = 8192
        while start < stop:
            n = min(block, stop - start)
            left = out[0, start:start + n]
            right = out[1, start:start + n]
            self._write_float(self._fs.synth, n, left.ctypes.data, 0, 1, right.ctypes.data, 0, 1)
            start += n

    def render(self, notes: ScoreNotes, instrumentation: Instrumentation,
               max_seconds: float = 1800.0) -> np.ndarray:
        """``ScoreNotes`` -> ``(samples,)`` float32 mono at ``self.sample_rate`` (not normalised)."""
        duration = notes.duration + TAIL_SECONDS
        if duration > max_seconds:
            raise RenderError(f"score lasts {duration:.0f} s, over the {max_seconds:.0f} s limit")
        fs = self._fs
        fs.system_reset()
        n_parts = len(notes.parts)
        channels = [c for c in range(16) if c != DRUM_CHANNEL]
        events = []     # (sample, order, channel, pitch, velocity); note-offs sort first
        for part_idx, part in enumerate(notes.parts):
            chan = channels[part_idx % len(channels)]
            fs.program_select(chan, self._sfid, 0, instrumentation.program_for_part(part_idx, n_parts))
            on = np.round(part[:, 0] * self.sample_rate).astype(np.int64)
            off = np.round(part[:, 1] * self.sample_rate).astype(np.int64)
            for s, e, p, v in zip(on, off, part[:, 2].astype(int), part[:, 3].astype(int)):
                events.append((int(s), 1, chan, p, v))
                events.append((int(max(e, s + 1)), 0, chan, p, 0))
        events.sort()
        total = int(np.ceil(duration * self.sample_rate))
        out = np.zeros((2, total), dtype=np.float32)
        pos = 0
        for sample, is_on, chan, pitch, vel in events:
            sample = min(sample, total)
            if sample > pos:
                self._write(out, pos, sample)
                pos = sample
            if is_on:
                fs.noteon(chan, pitch, vel)
            else:
                fs.noteoff(chan, pitch)
        self._write(out, pos, total)
        for chan in channels[:n_parts]:
            fs.cc(chan, 123, 0)     # all notes off: the next render starts silent
        return out.mean(axis=0)


def resample(audio: np.ndarray, from_rate: int, to_rate: int = CORPUS_RATE) -> np.ndarray:
    """soxr high-quality resampling, ``(samples,)`` float32 -> float32."""
    import soxr

    if from_rate == to_rate:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), from_rate, to_rate, quality="HQ").astype(np.float32)


def normalise_level(audio: np.ndarray, target_dbfs: float = -20.0, peak_limit: float = 0.9,
                    block: int = 2048) -> np.ndarray:
    """Scale so the loudness of the *active* part is ``target_dbfs`` RMS, peak <= ``peak_limit``.

    Silence (blocks 40 dB below the loudest block) does not count, so a piece with
    long rests is not boosted. Raises ``RenderError`` for silent audio.
    """
    x = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if not np.isfinite(peak):
        raise RenderError("audio contains NaN or infinite samples")
    if peak < 1e-6:
        raise RenderError("audio is silent")
    n_blocks = max(1, x.size // block)
    power = np.mean(x[: n_blocks * block].reshape(n_blocks, -1).astype(np.float64) ** 2, axis=1) \
        if x.size >= block else np.array([np.mean(x.astype(np.float64) ** 2)])
    active = power[power >= power.max() * 1e-4]
    rms = float(np.sqrt(np.mean(active)))
    gain = min(10 ** (target_dbfs / 20) / max(rms, 1e-12), peak_limit / peak)
    return (x * gain).astype(np.float32)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16 (the FLAC's samples; the mel cache is computed from these)."""
    return np.clip(np.round(np.asarray(audio) * 32768.0), -32768, 32767).astype(np.int16)


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 -> float32 exactly as ``soundfile.read(dtype='float32')`` returns it."""
    return (np.asarray(pcm, dtype=np.float32) / 32768.0).astype(np.float32)
