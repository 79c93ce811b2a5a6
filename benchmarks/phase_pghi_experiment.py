"""Could a better start phase let RTISI-LA run fewer iterations? (prints figures; not a test)

    .venv/bin/python benchmarks/phase_pghi_experiment.py N_CLIPS NAME [NAME ...]

NAME is ``KIND_ITERATIONS_LOOKAHEAD``: KIND ``grad`` is the engine's classical vocoder (phase
gradient start), ``pghi`` the same with a prototype real-time phase-gradient heap integration
start (RTPGHI, Prusa & Sondergaard 2016: the new frame's phase is integrated from the previous
frame's along time, and along frequency from the loudest bins down; causal log-magnitude time
derivative). Scores are ``melsynth eval vocoder``'s: MR-STFT and log-mel L1 against
Griffin-Lim-64, on the first N_CLIPS test clips of ``corpus/default`` (30 s each).

Session 5 (4 clips): grad_6_2 0.979 / 1.076, grad_2_2 1.018 / 1.397, pghi_0_0 1.115 / 2.179,
pghi_2_2 1.008 / 1.265, pghi_1_1 1.080 / 1.880. The engine keeps RTISI-LA at 6 iterations.
"""
import json
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.bundle import load_bundle  # noqa: E402
from engine.evaluate import corpus_clips, evaluate  # noqa: E402
from engine.phase import _HANN_GAMMA, PhaseConfig, StreamingPhase  # noqa: E402
from engine.vocoder import ClassicalVocoder  # noqa: E402

@numba.njit(cache=True)
def pghi_frame(prev_phase, s_prev, tg_prev, s_cur, tg_cur, fg_cur, log_tol, out):
    n = s_cur.shape[0]
    done = np.zeros(n, np.bool_)
    thr = s_cur.max() + log_tol
    thr_prev = s_prev.max() + log_tol
    # heap of (value, index): index < n -> prev frame bin, >= n -> current frame bin
    hv = np.empty(2 * n + 2, np.float64); hi = np.empty(2 * n + 2, np.int64); size = 0
    todo = 0
    for m in range(n):
        if s_cur[m] < thr:
            done[m] = True
            out[m] = prev_phase[m] + 0.5 * (tg_prev[m] + tg_cur[m])
        else:
            todo += 1
    for m in range(n):
        if s_prev[m] >= thr_prev:
            # push
            i = size; size += 1; hv[i] = s_prev[m]; hi[i] = m
            while i > 0:
                p = (i - 1) // 2
                if hv[p] >= hv[i]: break
                hv[p], hv[i] = hv[i], hv[p]; hi[p], hi[i] = hi[i], hi[p]; i = p
    while todo > 0:
        if size == 0:
            best = -1; bv = -1e300
            for m in range(n):
                if not done[m] and s_cur[m] > bv:
                    bv = s_cur[m]; best = m
            out[best] = prev_phase[best] + 0.5 * (tg_prev[best] + tg_cur[best])
            done[best] = True; todo -= 1
            size = 1; hv[0] = s_cur[best]; hi[0] = best + n
            continue
        v = hv[0]; idx = hi[0]
        size -= 1
        hv[0] = hv[size]; hi[0] = hi[size]
        i = 0
        while True:
            l = 2 * i + 1; r = l + 1; b = i
            if l < size and hv[l] > hv[b]: b = l
            if r < size and hv[r] > hv[b]: b = r
            if b == i: break
            hv[b], hv[i] = hv[i], hv[b]; hi[b], hi[i] = hi[i], hi[b]; i = b
        if idx < n:
            m = idx
            if not done[m]:
                out[m] = prev_phase[m] + 0.5 * (tg_prev[m] + tg_cur[m])
                done[m] = True; todo -= 1
                i = size; size += 1; hv[i] = s_cur[m]; hi[i] = m + n
                while i > 0:
                    p = (i - 1) // 2
                    if hv[p] >= hv[i]: break
                    hv[p], hv[i] = hv[i], hv[p]; hi[p], hi[i] = hi[i], hi[p]; i = p
        else:
            m = idx - n
            for d in (-1, 1):
                k = m + d
                if 0 <= k < n and not done[k]:
                    out[k] = out[m] + d * 0.5 * (fg_cur[m] + fg_cur[k])
                    done[k] = True; todo -= 1
                    i = size; size += 1; hv[i] = s_cur[k]; hi[i] = k + n
                    while i > 0:
                        p = (i - 1) // 2
                        if hv[p] >= hv[i]: break
                        hv[p], hv[i] = hv[i], hv[p]; hi[p], hi[i] = hi[i], hi[p]; i = p


class PGHIPhase(StreamingPhase):
    def __init__(self, spec, config, tol=1e-5, causal=True, fscale=1.0, tscale=1.0):
        super().__init__(spec, config)
        self.tol, self.fscale, self.tscale = tol, fscale, tscale
        f = self.n_freqs
        gamma = _HANN_GAMMA * spec.win_length ** 2
        self.tmul = self.hop * self.n_fft / gamma
        self.fmul = -gamma / (self.hop * self.n_fft)
        self.centre = 2 * np.pi * np.arange(f) * self.hop / self.n_fft
        self.pik = np.pi * np.arange(f)
        self.reset_pghi()

    def reset(self):
        super().reset()
        self.reset_pghi()

    def reset_pghi(self):
        f = getattr(self, "n_freqs", None)
        if f is None: return
        self.hist = [np.full(f, np.log(1e-9)), np.full(f, np.log(1e-9))]
        self.tg_prev = self.centre.copy() if hasattr(self, "centre") else None

    def _push_frame(self, mag, phase, out, i):
        if phase is None:
            s = np.log(np.maximum(mag.astype(np.float64), 1e-9))
            tg = np.zeros_like(s)
            tg[1:-1] = 0.5 * (s[2:] - s[:-2])
            tg = self.centre + self.tscale * self.tmul * tg
            s1, s2 = self.hist[-1], self.hist[-2]
            dn = (s2 - 4 * s1 + 3 * s) / 2
            fg = self.fscale * self.fmul * dn
            n_old = self.n_active
            ref = self._spectra[n_old - 1] if n_old else self._last_committed
            prev_phase = np.angle(ref).astype(np.float64) - self.pik  # to centre convention
            ph = np.zeros_like(s)
            pghi_frame(prev_phase, s1, self.tg_prev, s, tg, fg, np.log(self.tol), ph)
            phase = ph + self.pik
            self.hist = [s1, s]
            self.tg_prev = tg
        super()._push_frame(mag, phase, out, i)


class ProtoVocoder(ClassicalVocoder):
    def __init__(self, spec, config, name, **kw):
        super().__init__(spec, config, 3, name)
        self.kw = kw
        self.phase = PGHIPhase(spec, config, **kw)
        self.latency_samples = self.phase.latency_samples
    def _fresh(self):
        return ProtoVocoder(self.spec, self.config, self.name, **self.kw)


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
            vocs[name] = ProtoVocoder(spec, cfg, name)
    rep = evaluate(b, clips, vocoders=vocs, speed=True)
    for k, v in rep["vocoders"].items():
        print(k, json.dumps(v))
