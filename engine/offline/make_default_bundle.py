"""Create or update the shipped bundle's classical vocoder and measure its figures.

    melsynth bundle add-classical [--bundle models/default] [--corpus corpus/default]
                                  [--split test] [--max-clips N] [--seconds S] [--no-measure]

Writes the ``classical`` entry (kind, params: ``magnitude_iterations`` and the
``PhaseConfig`` fields, see ``engine.runtime.vocoder``) into
``bundle.json``, creating the file with the default ``MelSpec`` when absent,
and leaves every other entry (neural vocoders, the prior, a default that names
another vocoder) as it is; then scores it on the corpus split with
``engine.offline.evaluate`` and writes its figures. Re-running is safe.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from melsynth.engine.argtypes import finite_float, int_range
from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import BUNDLE_FILE, SCHEMA_VERSION, repo_root, write_bundle_json

CLASSICAL_NAME = "classical"


def classical_entry(params: dict | None = None) -> dict:
    # imported here: the vocoder module loads numba, which every melsynth command (the app's
    # start among them) would otherwise pay for while its parser is built
    from melsynth.engine.runtime.vocoder import classical_params

    return {"kind": "classical", "params": params or classical_params(),
            "training": {"trained": False,
                         "method": "magnitude: mel pseudo-inverse + non-negative least-squares updates; "
                                   "phase: RTISI-LA (Griffin-Lim over a sliding window with look-ahead) "
                                   "started by phase-gradient integration; numpy, no network"},
            "figures": {}}


def ensure_classical(root: Path, params: dict | None = None) -> dict:
    """Add or refresh the classical vocoder in ``root/bundle.json``; returns the new JSON."""
    path = root / BUNDLE_FILE
    if path.is_file():
        data = json.loads(path.read_text())
    else:
        data = {"schema_version": SCHEMA_VERSION, "name": root.name, "mel": MelSpec().to_dict(),
                "default_vocoder": CLASSICAL_NAME, "vocoders": {}}
    vocoders = data.setdefault("vocoders", {})
    old = vocoders.get(CLASSICAL_NAME, {})
    entry = classical_entry(params)
    if old.get("params") == entry["params"]:
        entry["figures"] = old.get("figures", {})  # still valid: same algorithm and settings
    vocoders[CLASSICAL_NAME] = entry
    if data.get("default_vocoder") not in vocoders:
        data["default_vocoder"] = CLASSICAL_NAME
    write_bundle_json(root, data)
    return data


def register(sub) -> None:
    """``melsynth bundle add-classical``: its arguments; ``run_add_classical`` handles it."""
    p = sub.add_parser("add-classical", help="write the classical vocoder into a bundle (created if absent) and "
                                             "measure its figures on a corpus split")
    p.add_argument("--bundle", type=Path, default=repo_root() / "models" / "default", help="bundle folder")
    p.add_argument("--corpus", type=Path, default=repo_root() / "corpus" / "default",
                   help="built corpus whose split is measured")
    p.add_argument("--split", default="test", help="corpus split to measure on")
    p.add_argument("--max-clips", type=int_range(1, 100_000), default=None, help="measure at most this many clips")
    p.add_argument("--seconds", type=finite_float(0, 86400), default=30.0, help="at most this many seconds per clip (0: all)")
    p.add_argument("--no-measure", action="store_true", help="write the entry only")
    p.set_defaults(func=run_add_classical)


def run_add_classical(args: argparse.Namespace) -> int:
    ensure_classical(args.bundle)
    print(f"classical vocoder written into {args.bundle / BUNDLE_FILE}")
    if args.no_measure:
        return 0
    from melsynth.engine.offline.evaluate import corpus_clips, evaluate, format_table, write_figures
    from melsynth.engine.runtime.bundle import load_bundle

    bundle = load_bundle(args.bundle, check_graphs=False)
    clips = corpus_clips(args.corpus, args.split, bundle.mel, args.max_clips, args.seconds or None)
    report = evaluate(bundle, clips, [CLASSICAL_NAME],
                      progress=lambda c: print(f"  {c.name}: {c.vocoders[CLASSICAL_NAME]['mr_stft_ratio']:.3f}",
                                               flush=True))
    print(format_table(report))
    corpus = args.corpus.resolve()
    corpus = corpus.relative_to(repo_root()) if corpus.is_relative_to(repo_root()) else corpus
    source = {"corpus": str(corpus), "split": args.split, "clip_seconds_max": args.seconds or None,
              "command": "melsynth bundle add-classical"}
    write_figures(args.bundle, report, source)
    print(f"figures written into {args.bundle / BUNDLE_FILE}")
    return 0
