"""Inverse STFT by weighted overlap-add, offline and streaming, in numpy.

The exact inverse of ``engine.dsp.features.stft`` (centred frames, the MelSpec's
periodic Hann window, least-squares ``sum w^2`` normalisation), so a vocoder
that predicts STFT frames gets audio aligned sample for sample with the mel::

    frame t spans samples [t*hop - n_fft/2, t*hop + n_fft/2)   (n_fft 1024, hop 256)

    block b = samples [b*hop, (b+1)*hop)
              frame b-1  |----------|
              frame b      |----------|
              frame b+1       |----------|
              frame b+2          |----------|     <- last frame touching block b
                              ^^^ block b

Block ``b`` is final once frame ``b + D`` has arrived, ``D = ceil(n_fft/2 / hop)``
(2 frames for melsynth's features), so the streaming inverse lags the offline
one by ``D * hop`` samples: after frames ``0..m`` it emits block ``m - D``
(zeros while ``m < D``), and ``flush`` emits the last ``D`` blocks. Output
sample ``n`` is ``sum_t w[n - t*hop + n_fft/2] * frame_t[...] / sum_t w^2[...]``
over the frames that exist (``0 <= t < F``), so the first and last blocks are
normalised by the windows that really cover them.

Both paths accumulate frames in increasing ``t`` with the same float64
operations, so streaming output equals offline output bit for bit.
"""
from __future__ import annotations

import numpy as np

from melsynth.engine.dsp.features import MelSpec, analysis_window

# Below this window envelope a sample counts as uncovered (0), not divided by ~0.
_ENVELOPE_FLOOR = 1e-10


def latency_frames(spec: MelSpec) -> int:
    """``D``: frames that must arrive after frame ``b`` before block ``b`` is final."""
    return -(-(spec.n_fft // 2) // spec.hop_length)


def synthesis_frames(spec: MelSpec, frames: np.ndarray) -> np.ndarray:
    """``(n_freqs, F)`` complex -> ``(F, n_fft)`` float64 windowed time frames ``w * irfft``."""
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[0] != spec.n_freqs:
        raise ValueError(f"STFT frames must have shape ({spec.n_freqs}, frames), got {frames.shape}")
    return np.fft.irfft(frames.T, n=spec.n_fft, axis=1) * analysis_window(spec)


def istft(spec: MelSpec, frames: np.ndarray) -> np.ndarray:
    """``(n_freqs, F)`` complex STFT frames -> ``(F * hop,)`` float32 audio (offline)."""
    stream = StreamingISTFT(spec)
    head = stream.push(frames)
    return np.concatenate([head, stream.flush()])[stream.latency_samples:]


class OverlapAdd:
    """Weighted overlap-add of windowed time frames with its tail as state.

    Holds the numerator ``sum w * frame`` and the envelope ``sum w^2`` from the
    first sample not yet emitted onwards; ``add`` appends frame ``frames_in``,
    ``pop_block`` returns block ``blocks_out`` (the caller pops a block only
    once no later frame can touch it).
    """

    def __init__(self, spec: MelSpec):
        self.spec = spec
        self.hop = spec.hop_length
        self.n_fft = spec.n_fft
        self.delay = latency_frames(spec)
        window = analysis_window(spec)
        self.window_sq = window * window
        # buffer[0] is sample blocks_out * hop; the newest frame ends before
        # delay * hop + n_fft / 2 (frames never start before an emitted sample).
        self.length = self.delay * self.hop + self.n_fft // 2 + self.hop
        self.reset()

    def reset(self) -> None:
        self.num = np.zeros(self.length)
        self.env = np.zeros(self.length)
        self.frames_in = 0      # frames added so far
        self.blocks_out = 0     # blocks popped so far

    def add(self, frame_td: np.ndarray) -> None:
        """Add frame ``frames_in``: ``(n_fft,)`` time samples already multiplied by ``w``."""
        o = (self.frames_in - self.blocks_out) * self.hop - self.n_fft // 2
        lo = max(0, -o)  # frame 0 starts n_fft/2 before sample 0: that half is cut off
        self.num[o + lo:o + self.n_fft] += frame_td[lo:]
        self.env[o + lo:o + self.n_fft] += self.window_sq[lo:]
        self.frames_in += 1

    def pop_block(self) -> np.ndarray:
        """Block ``blocks_out`` of audio, float64; shifts the buffer by one hop."""
        hop = self.hop
        num = self.num[:hop]
        env = self.env[:hop]
        covered = env > _ENVELOPE_FLOOR
        block = np.where(covered, num / np.where(covered, env, 1.0), 0.0)
        self.num[:-hop] = self.num[hop:]
        self.num[-hop:] = 0.0
        self.env[:-hop] = self.env[hop:]
        self.env[-hop:] = 0.0
        self.blocks_out += 1
        return block


class StreamingISTFT:
    """Streaming inverse STFT: ``push((n_freqs, k)) -> (k*hop,)``, ``flush() -> (D*hop,)``.

    ``concat(push(...), ..., flush())[latency_samples:]`` equals ``istft`` of all
    frames. Accepts complex frames, or windowed time frames via ``push_time``.
    """

    def __init__(self, spec: MelSpec):
        self.spec = spec
        self.ola = OverlapAdd(spec)
        self.delay = self.ola.delay
        self.latency_samples = self.delay * spec.hop_length
        self.reset()

    def reset(self) -> None:
        self.ola.reset()
        self.positions_out = 0  # blocks emitted, the leading zero blocks included

    def _emit_block(self, out: np.ndarray, i: int) -> None:
        """Fill ``out``'s ``i``-th block with the next position of the delayed stream."""
        hop = self.spec.hop_length
        if self.positions_out >= self.delay:  # position p carries block p - delay
            out[i * hop:(i + 1) * hop] = self.ola.pop_block()
        self.positions_out += 1

    def push_time(self, frames_td: np.ndarray) -> np.ndarray:
        """``(k, n_fft)`` windowed time frames -> ``(k*hop,)`` float32."""
        k = frames_td.shape[0]
        out = np.zeros(k * self.spec.hop_length, dtype=np.float32)
        for i in range(k):
            self.ola.add(frames_td[i])
            self._emit_block(out, i)
        return out

    def push(self, frames: np.ndarray) -> np.ndarray:
        """``(n_freqs, k)`` complex STFT frames -> ``(k*hop,)`` float32."""
        return self.push_time(synthesis_frames(self.spec, frames))

    def flush(self) -> np.ndarray:
        """The last ``latency_samples`` samples of the frames pushed; then reset."""
        out = np.zeros(self.latency_samples, dtype=np.float32)
        for i in range(self.delay):
            self._emit_block(out, i)  # past the last frame every block is final
        self.reset()
        return out
