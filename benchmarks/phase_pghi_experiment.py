"""Could a better start phase let RTISI-LA run fewer iterations? (prints figures; not a test)

    .venv/bin/python benchmarks/phase_pghi_experiment.py N_CLIPS NAME [NAME ...]

NAME is ``KIND_ITERATIONS_LOOKAHEAD``: KIND ``grad`` is the engine's classical vocoder (phase
gradient start), ``pghi`` the same with a prototype real-time phase-gradient heap integration
start (RTPGHI, Prusa & Sondergaard 2016: the new frame's phase is integrated from the previous
frame's along time, and along frequency from the loudest bins down; causal log-magnitude time
derivative). Scores are ``melsynth eval vocoder``'s: MR-STFT and log-mel L1 against
Griffin-Lim-64, on the first N_CLIPS test clips of ``corpus/default`` (30 s each).

On 4 clips: grad_6_2 0.979 / 1.076, grad_2_2 1.018 / 1.397, pghi_0_0 1.115 / 2.179,
pghi_2_2 1.008 / 1.265, pghi_1_1 1.080 / 1.880: no start phase lets fewer iterations match
grad_6_2, so the engine runs RTISI-LA at 6 iterations.
"""
import json
import sys

import numba
import numpy as np

from melsynth.engine.dsp.phase import _HANN_GAMMA, PhaseConfig, StreamingPhase  # noqa: E402
from melsynth.engine.offline.evaluate import corpus_clips, evaluate  # noqa: E402
from melsynth.engine.runtime.bundle import load_bundle  # noqa: E402
from melsynth.engine.runtime.vocoder import ClassicalVocoder  # noqa: E402

@numba.njit(cache=True)
def _push(values, labels, size, value, label):
    """Max-heap push; returns the new size."""
    i = size
    values[i], labels[i] = value, label
    while i > 0:
        parent = (i - 1) // 2
        if values[parent] >= values[i]:
            break
        values[parent], values[i] = values[i], values[parent]
        labels[parent], labels[i] = labels[i], labels[parent]
        i = parent
    return size + 1


@numba.njit(cache=True)
def _pop(values, labels, size):
    """Max-heap pop: ``(label, new size)``."""
    top = labels[0]
    size -= 1
    values[0], labels[0] = values[size], labels[size]
    i = 0
    while True:
        left, right, best = 2 * i + 1, 2 * i + 2, i
        if left < size and values[left] > values[best]:
            best = left
        if right < size and values[right] > values[best]:
            best = right
        if best == i:
            return top, size
        values[best], values[i] = values[i], values[best]
        labels[best], labels[i] = labels[i], labels[best]
        i = best


@numba.njit(cache=True)
def pghi_frame(prev_phase, s_prev, tg_prev, s_cur, tg_cur, fg_cur, log_tol, out):
    """Phase of the new frame ``out`` by heap integration from the previous frame's phase.

    Bins of either frame go through one max-heap by log magnitude (label ``m`` for the previous
    frame's bin ``m``, ``n + m`` for the new frame's): a previous-frame bin passes its phase on
    in time (trapezoid of the two frames' time derivatives ``tg``), a new-frame bin to its
    neighbours in frequency (trapezoid of ``fg``). Bins below the new frame's peak + ``log_tol``
    just advance in time.
    """
    n = s_cur.shape[0]
    done = np.zeros(n, np.bool_)
    values = np.empty(2 * n + 2)
    labels = np.empty(2 * n + 2, np.int64)
    size, todo = 0, 0
    floor_cur, floor_prev = s_cur.max() + log_tol, s_prev.max() + log_tol
    for m in range(n):
        if s_cur[m] < floor_cur:
            done[m] = True
            out[m] = prev_phase[m] + 0.5 * (tg_prev[m] + tg_cur[m])
        else:
            todo += 1
        if s_prev[m] >= floor_prev:
            size = _push(values, labels, size, s_prev[m], m)
    while todo > 0:
        if size == 0:  # nothing left to pass a phase on: restart from the loudest bin still open
            best, loudest = -1, -np.inf
            for m in range(n):
                if not done[m] and s_cur[m] > loudest:
                    best, loudest = m, s_cur[m]
            out[best] = prev_phase[best] + 0.5 * (tg_prev[best] + tg_cur[best])
            done[best] = True
            todo -= 1
            size = _push(values, labels, size, s_cur[best], best + n)
            continue
        label, size = _pop(values, labels, size)
        if label < n:  # previous frame: on in time
            m = label
            if not done[m]:
                out[m] = prev_phase[m] + 0.5 * (tg_prev[m] + tg_cur[m])
                done[m] = True
                todo -= 1
                size = _push(values, labels, size, s_cur[m], m + n)
        else:  # new frame: on in frequency
            m = label - n
            for step in (-1, 1):
                k = m + step
                if 0 <= k < n and not done[k]:
                    out[k] = out[m] + step * 0.5 * (fg_cur[m] + fg_cur[k])
                    done[k] = True
                    todo -= 1
                    size = _push(values, labels, size, s_cur[k], k + n)


class PGHIPhase(StreamingPhase):
    """RTISI-LA started by ``pghi_frame`` from the newest active (or last committed) frame."""

    def __init__(self, spec, config, tol=1e-5):
        f = spec.n_fft // 2 + 1
        gamma = _HANN_GAMMA * spec.win_length ** 2
        self.log_tol = np.log(tol)
        # phase derivatives from log-magnitude differences (Gaussian-window theory, Hann's gamma)
        self.time_gain = spec.hop_length * spec.n_fft / gamma
        self.freq_gain = -gamma / (spec.hop_length * spec.n_fft)
        self.centre = 2 * np.pi * np.arange(f) * spec.hop_length / spec.n_fft
        # the STFT's phase is relative to the frame start, PGHI's to the window centre
        self.to_start = np.pi * np.arange(f)
        super().__init__(spec, config)

    def reset(self):
        super().reset()
        silent = np.full(self.centre.size, np.log(1e-9))
        self.log_mags = [silent, silent.copy()]  # two frames back, one frame back
        self.time_prev = self.centre.copy()

    def _push_frame(self, mag, phase, out, i):
        if phase is None:
            s = np.log(np.maximum(mag.astype(np.float64), 1e-9))
            slope = np.zeros_like(s)
            slope[1:-1] = 0.5 * (s[2:] - s[:-2])
            time_step = self.centre + self.time_gain * slope
            two_back, one_back = self.log_mags
            freq_step = self.freq_gain * (two_back - 4 * one_back + 3 * s) / 2  # causal d/dt
            ref = self._spectra[self.n_active - 1] if self.n_active else self._last_committed
            new = np.zeros_like(s)
            pghi_frame(np.angle(ref).astype(np.float64) - self.to_start, one_back, self.time_prev, s,
                       time_step, freq_step, self.log_tol, new)
            phase = new + self.to_start
            self.log_mags = [one_back, s]
            self.time_prev = time_step
        super()._push_frame(mag, phase, out, i)


class PGHIVocoder(ClassicalVocoder):
    def __init__(self, spec, config, name):
        super().__init__(spec, config, 3, name)
        self.phase = PGHIPhase(spec, config)
        self.latency_samples = self.phase.latency_samples

    def _fresh(self):
        return PGHIVocoder(self.spec, self.config, self.name)


if __name__ == "__main__":
    b = load_bundle("models/default")
    spec = b.mel
    nclips = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    clips = corpus_clips("corpus/default", "test", spec, nclips, 30.0)
    vocs = {}
    for name in sys.argv[2:]:
        kind, it, la = name.split("_")
        cfg = PhaseConfig(iterations=int(it), lookahead=int(la), init="gradient")
        if kind == "grad":
            vocs[name] = ClassicalVocoder(spec, cfg, 3, name)
        else:
            vocs[name] = PGHIVocoder(spec, cfg, name)
    rep = evaluate(b, clips, vocoders=vocs, speed=True)
    for k, v in rep["vocoders"].items():
        print(k, json.dumps(v))
