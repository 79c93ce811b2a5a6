"""Render statistics of a bundle's prior at several latent-walk settings (speed, spread).

Prints, per setting, onsets/s, spectral flatness, spectral contrast (dB) and chroma
movement (/s), averaged over ``--seeds`` renders of ``--seconds`` each, rendered as
``melsynth render`` does. The defaults of ``engine.stream.controls`` are chosen from it.

    python benchmarks/walk_settings.py --bundle models/default --seeds 4 --seconds 20
"""
from __future__ import annotations

import argparse
import json

from melsynth.engine.runtime.bundle import load_bundle
from melsynth.training.prior.render_eval import model_renders, parse_seeds
from melsynth.training.prior.render_stats import mean_render_stats

SETTINGS = ((0.5, 0.9), (0.8, 0.9), (1.0, 0.9), (0.8, 0.95), (1.0, 0.95), (0.8, 1.0), (1.0, 1.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default="models/default")
    p.add_argument("--seeds", default="4", help="a count (4 = seeds 1-4), a range (11-14) or a list (1,5,9)")
    p.add_argument("--seconds", type=float, default=20.0)
    args = p.parse_args()
    bundle = load_bundle(args.bundle)
    for speed, spread in SETTINGS:
        clips = model_renders(bundle, parse_seeds(args.seeds), args.seconds, speed, spread)
        stats = mean_render_stats(clips, bundle.mel.sample_rate)
        print(json.dumps({"walk_speed": speed, "walk_spread": spread, **{k: round(v, 4) for k, v in stats.items()}}),
              flush=True)


if __name__ == "__main__":
    main()
