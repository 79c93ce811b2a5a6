"""Quality/CPU table of the classical vocoder's settings (prints figures; not a test).

    .venv/bin/python benchmarks/bench_classical_vocoder.py [--corpus corpus/default] [--split validation]
                                                           [--clips 4] [--seconds 10]

For each setting: MR-STFT and log-mel L1 as ratios to Griffin-Lim-64 on the
same clips, x real time (process CPU time, one thread) offline and streaming
one frame per push, and the latency. Without a corpus it uses synthetic notes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


from melsynth.engine.dsp.features import MelSpec, log_mel  # noqa: E402
from melsynth.engine.dsp.phase import PhaseConfig  # noqa: E402
from melsynth.engine.offline.evaluate import Clip, corpus_clips  # noqa: E402
from melsynth.engine.offline.metrics import griffin_lim, log_mel_l1, mr_stft_l1  # noqa: E402
from melsynth.engine.runtime.vocoder import ClassicalVocoder  # noqa: E402

SETTINGS = [  # (label, PhaseConfig, magnitude_iterations)
    ("pinv, 4 it, look-ahead 2", PhaseConfig(iterations=4), 0),
    ("nnls3, 2 it, look-ahead 2", PhaseConfig(iterations=2), 3),
    ("nnls3, 4 it, look-ahead 1", PhaseConfig(iterations=4, lookahead=1), 3),
    ("nnls3, 4 it, look-ahead 2", PhaseConfig(iterations=4), 3),
    ("nnls3, 6 it, look-ahead 2 (default)", PhaseConfig(), 3),
    ("nnls3, 8 it, look-ahead 2", PhaseConfig(iterations=8), 3),
]


def synthetic_clips(spec: MelSpec, n: int, seconds: float) -> list[Clip]:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * spec.sample_rate)) / spec.sample_rate
    clips = []
    for i in range(n):
        x = np.zeros_like(t)
        for start in np.arange(0, seconds, 0.3):
            f0 = rng.uniform(80, 800)
            env = np.where(t >= start, np.exp(-(t - start) * rng.uniform(1, 8)), 0)
            x += sum(env * np.sin(2 * np.pi * f0 * h * t) / h ** 1.5 for h in range(1, 8))
        clips.append(Clip(f"synthetic{i}", (0.3 * x / np.abs(x).max()).astype(np.float32)))
    return clips


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default="corpus/default", help="built corpus (synthetic notes if absent)")
    p.add_argument("--split", default="validation", help="corpus split")
    p.add_argument("--clips", type=int, default=4, help="number of clips")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per clip")
    args = p.parse_args()
    spec = MelSpec()
    if (Path(args.corpus) / "manifest.json").is_file():
        clips = corpus_clips(args.corpus, args.split, spec, args.clips, args.seconds)
        print(f"{len(clips)} clips of {args.corpus} ({args.split}), <= {args.seconds} s each")
    else:
        clips = synthetic_clips(spec, args.clips, args.seconds)
        print(f"no corpus at {args.corpus}: {len(clips)} synthetic clips")
    mels = [log_mel(spec, c.audio) for c in clips]
    refs = []
    for c, m in zip(clips, mels):
        g = griffin_lim(spec, m, c.audio.size)
        refs.append((mr_stft_l1(c.audio, g), log_mel_l1(spec, c.audio, g)))
    seconds = sum(c.audio.size for c in clips) / spec.sample_rate
    print(f"{'setting':<38}{'MR-STFT/GL':>11}{'log-mel/GL':>11}{'x RT off':>10}{'x RT 1fr':>10}{'latency':>9}")
    for label, config, mag_it in SETTINGS:
        voc = ClassicalVocoder(spec, config, mag_it)
        r1, r2, cpu_off, cpu_st = [], [], 0.0, 0.0
        for c, m, (g1, g2) in zip(clips, mels, refs):
            t0 = time.process_time()
            y = voc.offline(m)[:c.audio.size]
            cpu_off += time.process_time() - t0
            t0 = time.process_time()
            voc.reset()
            for i in range(m.shape[1]):
                voc.push(m[:, i:i + 1])
            voc.flush()
            cpu_st += time.process_time() - t0
            r1.append(mr_stft_l1(c.audio, y) / g1)
            r2.append(log_mel_l1(spec, c.audio, y) / g2)
        print(f"{label:<38}{np.mean(r1):>11.3f}{np.mean(r2):>11.3f}{seconds / cpu_off:>10.1f}"
              f"{seconds / cpu_st:>10.1f}{1e3 * voc.latency_samples / spec.sample_rate:>7.1f}ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
