"""Verification rates of a bundle's named prior directions, through the runtime (prints figures; not a test).

    .venv/bin/python benchmarks/bench_prior_directions.py [--bundle models/default] [--n 1000]

For each named direction: from ``n`` random starting sequences of N(0, I)
latents (4 steps of context, 4 measured), move every step by +2 sigma along
the direction and count how often the direction's property rises (required:
>= 90 %). Runs the bundle's ONNX prior through ``engine.runtime.prior`` (numpy +
onnxruntime, no torch), i.e. exactly what the synth plays, and prints the
standardised change of every property (how entangled each knob is).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle  # noqa: E402
from melsynth.engine.runtime.prior import load_prior  # noqa: E402
from melsynth.training.prior.directions import (NamedDirection, Protocol, format_directions,  # noqa: E402
                                                verify_directions)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bundle", default=None, help="bundle folder; unset: $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--n", type=int, default=1000, help="random starting points per direction")
    p.add_argument("--seed", type=int, default=11, help="seed of the starting points")
    a = p.parse_args(argv)
    bundle = load_bundle(a.bundle or default_bundle_path())
    prior = load_prior(bundle)
    named = [NamedDirection(d.name, np.asarray(d.vector), d.sigma, float("nan"))
             for d in prior.directions if d.kind == "named"]
    if not named:
        print(f"{bundle.json_path}: no named directions")
        return 1

    def sample(z: np.ndarray) -> np.ndarray:          # (batch, latent, steps) -> (batch, n_mels, frames)
        return np.stack([prior.offline(zb.T) for zb in z])

    protocol = Protocol(prior.latent_size, prior.latent_frames, phrase_size=prior.phrase_size)
    t0 = time.process_time()
    verify_directions(sample, protocol, named, bundle.mel, n=a.n, rng=np.random.default_rng(a.seed))
    print(f"bundle {bundle.root}: {a.n} starting points, {time.process_time() - t0:.0f} s CPU")
    print(format_directions(named).replace("   nan", "  n/a "))
    return 0 if all(d.verified for d in named) else 1


if __name__ == "__main__":
    raise SystemExit(main())
