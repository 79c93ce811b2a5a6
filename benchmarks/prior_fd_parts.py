"""Where a prior's FD-mel comes from: the distance split by feature group, and the variety between windows.

FD-mel (``training.prior.evaluate``) describes a 3 s window by four groups of 256 numbers: each
band's mean, spread, mean change and spread of change. This prints the FD of each group alone
(against test-split windows), for train windows (the floor), real 16-frame chunks put end to end,
and each bundle's prior fed i.i.d. latents and the engine's walk at its defaults; and the spread of
the window means from window to window (trace of their covariance), which real music keeps high.

    python benchmarks/prior_fd_parts.py CORPUS models/default [--windows 1000]
"""
from __future__ import annotations

import argparse

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import load_bundle
from melsynth.engine.runtime.prior import Prior
from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD
from melsynth.training.prior.data import load_split
from melsynth.training.prior.latents import held_sample_fn
from melsynth.training.prior.evaluate import (DEFAULT_CHUNK_FRAMES, DEFAULT_WINDOW_FRAMES, GaussianStats,
                                              frechet_distance, generate_windows, prior_sample_fn,
                                              real_chunk_windows, walk_sample_fn, window_features)

GROUPS = {"band mean": slice(0, 256), "band spread": slice(256, 512), "change mean": slice(512, 768),
          "change spread": slice(768, 1024)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus")
    p.add_argument("bundles", nargs="+")
    p.add_argument("--windows", type=int, default=1000)
    args = p.parse_args()
    spec, wf, n = MelSpec(), DEFAULT_WINDOW_FRAMES, args.windows
    rng = np.random.default_rng(0)
    train = load_split(args.corpus, "train", spec, min_frames=wf)
    test = load_split(args.corpus, "test", spec, min_frames=wf)
    reference = window_features(test.sample_windows(n, wf, rng))
    sets = {"train split (floor)": train.sample_windows(n, wf, rng),
            "real chunks": real_chunk_windows(train, n, wf, DEFAULT_CHUNK_FRAMES, rng)}
    for path in args.bundles:
        prior = Prior(load_bundle(path))
        sample = prior_sample_fn(prior)
        sets[f"{path}, i.i.d."] = generate_windows(held_sample_fn(sample, prior.phrase_size), prior.latent_size,
                                                   prior.latent_frames, n, wf,
                                                   np.random.default_rng(1), spec=spec)
        sets[f"{path}, walk {WALK_SPEED:g}/{WALK_SPREAD:g}"] = generate_windows(
            walk_sample_fn(sample, WALK_SPEED, WALK_SPREAD, phrase_size=prior.phrase_size), prior.latent_size,
            prior.latent_frames, n, wf,
            np.random.default_rng(2), spec=spec, batch=1, windows_per_sequence=1)
    spread = float(np.trace(np.cov(reference[:, GROUPS["band mean"]], rowvar=False)))
    print(f"| windows | FD | {' | '.join(GROUPS)} | spread of band means (test split {spread:.0f}) |")
    print("| --- " * (len(GROUPS) + 3) + "|")
    for name, windows in sets.items():
        f = window_features(windows)
        parts = [frechet_distance(GaussianStats.of(reference[:, g]), GaussianStats.of(f[:, g]))
                 for g in GROUPS.values()]
        total = frechet_distance(GaussianStats.of(reference), GaussianStats.of(f))
        print(f"| {name} | {total:.1f} | " + " | ".join(f"{x:.1f}" for x in parts)
              + f" | {np.trace(np.cov(f[:, GROUPS['band mean']], rowvar=False)):.0f} |")


if __name__ == "__main__":
    main()
