"""Sources of log-mel frames: a latent point through the prior, a painted canvas, an audio file.

Every source answers ``next_frames(k) -> (n_mels, k)`` float32 log10 mel, finite and
inside ``[spec.log_min, LOG_MEL_MAX]`` whatever was put in, and is driven by one
thread (the producer). Anything arriving from other threads goes through the
synth's command queue, except ``LoopSource.edit``/``set_frames``, which are also
safe to call directly (a short lock around a copy).

Latent source timing (one prior step = ``latent_frames`` frames; here 8 for the drawing)::

    prior step k         [f0 f1 f2 f3 f4 f5 f6 f7]     computed from state_before_k and z_k
    emitted so far        f0 f1 f2 ^pos
    knob move at pos 3:  re-run step k from state_before_k with the new z_k'
                         [g0 g1 g2 g3 g4 g5 g6 g7]
    emitted               f0 f1 f2 (f3~g3) (f4~g4) g5 g6 g7    ~ : linear crossfade, new weight rising

So a knob move is heard at the next frame, not at the next latent step, and the
crossfade keeps it from clicking. This needs the prior's streaming state
(``Prior.get_state/set_state``); a prior without them hears the move at its next step.

``prepare()`` does that re-run, or the next latent step, before the frames are asked for
(the producer calls it while the ring is full). The frames are the same either way.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from melsynth.engine.dsp.features import FeatureError, MelSpec, log_mel
from melsynth.engine.stream.controls import Controls, RandomWalk, latent_point

LOG_MEL_MAX = 2.5  # log10 mel magnitude ceiling for painted/loaded frames (norm_high is 2.0)


def clean_log_mel(spec: MelSpec, frames: np.ndarray) -> np.ndarray:
    """Any array -> finite float32 log10 mel in ``[log_min, LOG_MEL_MAX]`` (NaN -> silence)."""
    lo = spec.log_min
    with np.errstate(all="ignore"):
        out = np.nan_to_num(np.asarray(frames, dtype=np.float32), nan=lo, posinf=LOG_MEL_MAX, neginf=lo)
    return np.clip(out, lo, LOG_MEL_MAX)


def silence(spec: MelSpec, k: int) -> np.ndarray:
    return np.full((spec.n_mels, k), spec.log_min, dtype=np.float32)


class MelSource(Protocol):
    name: str

    def next_frames(self, k: int) -> np.ndarray:
        """``(n_mels, k)`` float32 log10 mel."""


# --------------------------------------------------------------------------- latent
class LatentSource:
    """The prior driven by a latent point (controls) and an optional seeded random walk."""

    name = "latent"

    def __init__(self, prior, spec: MelSpec, controls: Controls | None = None, crossfade_frames: int = 3):
        self.prior = prior
        self.spec = spec
        self.latent_frames = int(prior.latent_frames)
        self.crossfade_frames = max(1, int(crossfade_frames))
        self._controls = controls or Controls()
        self._walk = RandomWalk(prior.latent_size, self._controls.walk_seed, int(getattr(prior, "phrase_size", 0)))
        self._walk_offset = np.zeros(prior.latent_size)
        self._frames: np.ndarray | None = None  # (n_mels, L) log10 mel, current version of step k
        self._fade_from: np.ndarray | None = None  # (n_mels, L) what was playing before a re-run
        self._fade_start = self._fade_end = 0
        self._pos = self.latent_frames
        self._state_before = None
        self._walk_before = None  # the walk before this step's advance (a recompute redoes it)
        self._undo = None  # (pos, frames, fade...) before a re-run no frame has been emitted since
        self._dirty = False
        self._can_rerun = hasattr(prior, "get_state") and hasattr(prior, "set_state")
        self.steps = 0  # prior steps run for new latent steps
        self.reruns = 0  # prior steps re-run for knob moves
        self.prepared = 0  # prepare() calls that did prior work ahead of the frames

    @property
    def controls(self) -> Controls:
        return self._controls

    def set_controls(self, controls: Controls) -> None:
        """Takes effect at the next frame (re-running the current step) when the latent point changed."""
        if not controls.latent_equal(self._controls):
            self._dirty = True
        if controls.walk_seed != self._controls.walk_seed:
            self._walk.reseed(controls.walk_seed)
        self._controls = controls

    def current_z(self) -> np.ndarray:
        return latent_point(self._controls, self.prior.directions, self.prior.latent_size, self._walk_offset)

    def _run_prior(self) -> np.ndarray:
        out = np.asarray(self.prior.step(self.current_z()), dtype=np.float32)
        if out.shape != (self.spec.n_mels, self.latent_frames):
            raise ValueError(f"prior.step returned shape {out.shape}, expected "
                             f"({self.spec.n_mels}, {self.latent_frames})")
        with np.errstate(all="ignore"):
            out = np.nan_to_num(out, nan=-1.0, posinf=1.0, neginf=-1.0)
        # kept as log10 mel: crossfades are linear, so blending before or after this affine map is the same
        return self.spec.denormalize(np.clip(out, -1.0, 1.0)).astype(np.float32)

    def _new_step(self) -> None:
        if self._can_rerun:
            self._state_before = self.prior.get_state()
            self._walk_before = self._walk.snapshot()
        self._walk_offset = self._walk.advance(self._controls.safe_walk_speed).copy()
        self._frames = self._run_prior()
        self._fade_from = None
        self._undo = None
        self._pos = 0
        self.steps += 1

    def _recompute_step(self) -> None:
        """Nothing of this step heard yet: compute it again as if the new controls had come first."""
        self._walk.restore(self._walk_before)
        self._walk_offset = self._walk.advance(self._controls.safe_walk_speed).copy()
        self.prior.set_state(self._state_before)
        self._frames = self._run_prior()
        self._fade_from = None

    def _emitted_version(self) -> np.ndarray:
        """The step's frames as they would be emitted from now on (an unfinished fade applied)."""
        if self._fade_from is None:
            return self._frames
        out = self._frames.copy()
        for p in range(self._fade_start, self._fade_end):
            w = self._fade_weight(p)
            out[:, p] = (1.0 - w) * self._fade_from[:, p] + w * self._frames[:, p]
        return out

    def _fade_weight(self, p: int) -> float:
        return (p - self._fade_start + 1) / (self._fade_end - self._fade_start + 1)

    def _rerun(self) -> None:
        if self._undo is not None and self._undo[0] == self._pos:
            # re-run again before a frame was emitted (prepare() ran, then another move came):
            # fade from what was playing before the first re-run, as one re-run would
            _, self._frames, self._fade_from, self._fade_start, self._fade_end = self._undo
        self._undo = (self._pos, self._frames, self._fade_from, self._fade_start, self._fade_end)
        old = self._emitted_version()
        self.prior.set_state(self._state_before)
        self._frames = self._run_prior()
        self._fade_from = old
        self._fade_start = self._pos
        self._fade_end = min(self.latent_frames, self._pos + self.crossfade_frames)
        self.reruns += 1

    def _settle(self) -> None:
        """Apply a pending move of the latent point: re-run (or recompute) the current step."""
        if self._dirty:
            self._dirty = False
            if self._can_rerun and self._frames is not None and 0 < self._pos < self.latent_frames:
                self._rerun()
            elif self._can_rerun and self._frames is not None and self._pos == 0:
                self._recompute_step()

    def prior_due(self, k: int) -> bool:
        """Whether ``next_frames(k)`` would run the prior (a pending move, a new latent step)."""
        return self._dirty or self._frames is None or self._pos + k > self.latent_frames

    def prepare(self) -> bool:
        """Do now the prior work the next ``next_frames`` would do; True if there was any.

        The producer calls this while the ring is full, so a knob's re-run or the next
        latent step does not lengthen the step that must deliver audio in time (the ring
        target covers the slowest step). What comes out is the same as without it: a
        second move before the next frame re-runs from the same starting point
        (``_rerun``), and a step computed ahead is recomputed, walk included, if the
        controls change before its first frame (``_recompute_step``).
        """
        work = self._dirty
        self._settle()
        if self._pos >= self.latent_frames:
            self._new_step()
            work = True
        self.prepared += work
        return work

    def next_frames(self, k: int) -> np.ndarray:
        p = self._pos
        if (not self._dirty and self._frames is not None and p + k <= self.latent_frames
                and (self._fade_from is None or p >= self._fade_end)):
            self._pos = p + k  # common case: inside a step, no move, no fade
            return self._frames[:, p:p + k].copy()
        out = np.empty((self.spec.n_mels, k), dtype=np.float32)
        for i in range(k):
            self._settle()
            if self._pos >= self.latent_frames:
                self._new_step()
            p = self._pos
            if self._fade_from is not None and self._fade_start <= p < self._fade_end:
                w = self._fade_weight(p)
                out[:, i] = (1.0 - w) * self._fade_from[:, p] + w * self._frames[:, p]
            else:
                out[:, i] = self._frames[:, p]
            self._pos += 1
        return out


class SilentSource:
    """Stands in for the latent source when a bundle has no prior."""

    name = "latent"

    def __init__(self, spec: MelSpec):
        self.spec = spec

    def set_controls(self, controls: Controls) -> None:
        pass

    def prepare(self) -> bool:
        return False  # no prior, no work to do ahead

    def prior_due(self, k: int) -> bool:
        return False

    def next_frames(self, k: int) -> np.ndarray:
        return silence(self.spec, k)


# --------------------------------------------------------------------------- looping arrays
class LoopSource:
    """A ``(n_mels, N)`` log10 mel array read by a looping playhead."""

    name = "loop"

    def __init__(self, spec: MelSpec, frames: np.ndarray | None = None, default_frames: int = 172):
        self.spec = spec
        self._lock = threading.Lock()  # held only around copies, never around inference
        self._frames = silence(spec, default_frames) if frames is None else self._validated(frames)
        self._playhead = 0

    def _validated(self, frames: np.ndarray) -> np.ndarray:
        arr = np.asarray(frames)
        if arr.ndim != 2 or arr.shape[0] != self.spec.n_mels or arr.shape[1] < 1:
            raise FeatureError(f"{self.name}: frames must be ({self.spec.n_mels}, N>=1), got shape {arr.shape}")
        return clean_log_mel(self.spec, arr)

    @property
    def n_frames(self) -> int:
        return self._frames.shape[1]

    @property
    def playhead(self) -> int:
        return self._playhead

    def set_frames(self, frames: np.ndarray, keep_playhead: bool = True) -> None:
        """Replace the whole array (a snapshot); the playhead wraps into the new length."""
        new = self._validated(frames)
        with self._lock:
            self._frames = new
            self._playhead = self._playhead % new.shape[1] if keep_playhead else 0

    def frames(self) -> np.ndarray:
        with self._lock:
            return self._frames.copy()

    def edit(self, start_frame: int, values: np.ndarray, bin_start: int = 0) -> None:
        """Write ``values`` (bins, k) at frames ``start_frame..`` (wrapping) and bins ``bin_start..``.

        Anything outside the canvas is cut off; values of any size or finiteness are cleaned.
        """
        vals = np.asarray(values)
        if vals.ndim == 1:
            vals = vals[:, None]
        if vals.ndim != 2:
            raise FeatureError(f"{self.name} edit: values must be (bins, frames), got shape {vals.shape}")
        n_mels = self.spec.n_mels
        b0 = int(bin_start)
        if b0 < 0:  # cut rows above the top
            vals, b0 = vals[-b0:], 0
        vals = vals[: max(0, n_mels - b0)]
        if vals.size == 0:
            return
        vals = clean_log_mel(self.spec, vals)
        with self._lock:
            n = self._frames.shape[1]
            k = min(vals.shape[1], n)
            cols = (int(start_frame) + np.arange(k)) % n
            self._frames[b0:b0 + vals.shape[0], cols] = vals[:, :k]

    def next_frames(self, k: int) -> np.ndarray:
        with self._lock:
            n = self._frames.shape[1]
            cols = (self._playhead + np.arange(k)) % n
            out = self._frames[:, cols]  # fancy indexing copies
            self._playhead = (self._playhead + k) % n
        return out


class CanvasSource(LoopSource):
    """What the GUI paints: edits ahead of the playhead are heard on this pass."""

    name = "canvas"


class FileSource(LoopSource):
    """An audio file's mel, looped (resynthesis through the vocoder)."""

    name = "file"

    def __init__(self, spec: MelSpec, frames: np.ndarray | None = None, path: str | None = None):
        super().__init__(spec, frames)
        self.path = path


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Any audio file -> mono float32 at ``sample_rate``. Clear errors naming the file."""
    import soundfile as sf
    import soxr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such audio file")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile cannot read it: try librosa's fallback decoders (ffmpeg)
        try:
            import librosa

            audio, rate = librosa.load(str(path), sr=None, mono=False)
            audio = np.atleast_2d(audio).T.astype(np.float32)
        except Exception:
            raise FeatureError(f"{path}: cannot decode audio ({exc})") from exc
    if audio.size == 0:
        raise FeatureError(f"{path}: audio file is empty")
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    mono = np.nan_to_num(mono, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(mono, -1.0, 1.0)


def file_log_mel(path: str | Path, spec: MelSpec, max_seconds: float | None = 600.0) -> np.ndarray:
    """``path -> (n_mels, frames)`` log10 mel of the file (first ``max_seconds``)."""
    audio = load_audio(path, spec.sample_rate)
    if max_seconds is not None:
        audio = audio[: int(max_seconds * spec.sample_rate)]
    return log_mel(spec, audio)
