"""``melsynth bundle info``: validate a model bundle and print what it holds."""
from __future__ import annotations

import argparse
import json

from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle


def bundle_summary(bundle) -> dict:
    out = {
        "bundle": str(bundle.root),
        "name": bundle.name,
        "mel": bundle.mel.to_dict(),
        "default_vocoder": bundle.default_vocoder,
        "vocoders": {n: {"kind": v.kind, "figures": v.figures} for n, v in bundle.vocoders.items()},
    }
    if bundle.prior is not None:
        out["prior"] = {
            "latent_size": bundle.prior.latent_size,
            "latent_frames": bundle.prior.latent_frames,
            "directions": [f"{d.name} ({d.kind}, sigma {d.sigma:.3g})" for d in bundle.prior.directions],
            "figures": bundle.prior.figures,
        }
    return out


def run_info(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.bundle or default_bundle_path())
    print(json.dumps(bundle_summary(bundle), indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="validate a model bundle and print its contract and figures")
    p.add_argument("--bundle", default=None,
                   help="bundle folder (default: $MELSYNTH_BUNDLE or models/default)")
    p.set_defaults(func=run_info)
