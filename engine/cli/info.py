"""``melsynth bundle info``: validate a model bundle and print what it holds."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

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
            "phrase_size": bundle.prior.phrase_size,
            "directions": [f"{d.name} ({d.kind}, sigma {d.sigma:.3g})" for d in bundle.prior.directions],
            "figures": bundle.prior.figures,
        }
    return out


def _size(root) -> str:
    total = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    return f"{total / 1e6:.1f} MB" if total >= 1e5 else f"{total / 1e3:.0f} kB"


def _vocoder_line(name: str, kind: str, figures: dict, default: bool) -> str:
    mark = "*" if default else " "
    if not figures or "mr_stft_ratio" not in figures:
        return f"  {mark}{name:<24}{kind:<17}no figures (measure them: melsynth eval vocoder --write-figures)"
    speed = figures.get("x_realtime_streaming_1_frame") or figures.get("x_realtime_offline")
    parts = [f"MR-STFT {figures['mr_stft_ratio']:.3f}", f"log-mel {figures.get('log_mel_ratio', float('nan')):.3f}"]
    if speed:
        parts.append(f"{speed:.0f}x real time")
    if "latency_ms" in figures:
        parts.append(f"latency {figures['latency_ms']:.0f} ms")
    return f"  {mark}{name:<24}{kind:<17}" + "  ".join(parts)


def summary_lines(bundle) -> list[str]:
    """A short human summary: name, size, mel, prior, vocoders with their figures, directions."""
    mel = bundle.mel
    lines = [f"bundle {bundle.name!r} at {bundle.root} ({_size(bundle.root)})",
             f"mel: {mel.n_mels} bins, {mel.sample_rate} Hz, hop {mel.hop_length} "
             f"({1e3 * mel.hop_length / mel.sample_rate:.1f} ms), n_fft {mel.n_fft}"]
    prior = bundle.prior
    if prior is None:
        lines.append("prior: none (resynth and eval only; no music from noise)")
    else:
        phrase = f" (the last {prior.phrase_size} held per phrase)" if prior.phrase_size else ""
        lines.append(f"prior: latent {prior.latent_size}{phrase} x {prior.latent_frames} frames, "
                     f"{len(prior.directions)} directions")
    lines.append("vocoders (* default; MR-STFT and log-mel error as ratios to Griffin-Lim-64, < 1 is better):")
    for name, v in bundle.vocoders.items():
        lines.append(_vocoder_line(name, v.kind, v.figures or {}, name == bundle.default_vocoder))
    if prior is not None and prior.directions:
        by_kind: dict[str, list[str]] = {}
        for d in prior.directions:
            by_kind.setdefault(d.kind, []).append(d.name)
        lines.append("directions: " + "; ".join(f"{', '.join(names)} ({kind})" for kind, names in by_kind.items()))
    lines.append("(--json prints everything, the figures' sources too)")
    return lines


def run_info(args: argparse.Namespace) -> int:
    bundle = load_bundle(args.bundle or default_bundle_path())
    if args.json:
        print(json.dumps(bundle_summary(bundle), indent=2))
    else:
        print("\n".join(summary_lines(bundle)))
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="validate a model bundle and print a summary of it (--json: all of it)")
    p.add_argument("--bundle", default=None,
                   help="bundle folder (default: $MELSYNTH_BUNDLE or models/default)")
    p.add_argument("--json", action="store_true", help="print the contract and every figure as JSON")
    p.set_defaults(func=run_info)
