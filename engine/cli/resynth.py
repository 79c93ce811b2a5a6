"""``melsynth resynth IN --out OUT``: any audio file -> mel -> a bundle's vocoder -> WAV.

The input is read at any rate and channel count (mono mix, soxr resampling to
the bundle's rate), turned into the models' log-mel, vocoded offline and
trimmed to the input's length: sample ``n`` of the output lies under sample
``n`` of the (resampled) input, so the two can be compared or mixed directly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def resynthesize(bundle, audio: np.ndarray, vocoder: str | None = None) -> np.ndarray:
    """``(samples,)`` at the bundle's rate -> ``(samples,)`` through ``vocoder``'s offline path."""
    from melsynth.engine.dsp.features import log_mel
    from melsynth.engine.runtime.vocoder import load_vocoder

    voc = load_vocoder(bundle, vocoder)
    out = voc.offline(log_mel(bundle.mel, audio))
    return out[:audio.size]


def run_resynth(args: argparse.Namespace) -> int:
    from melsynth.engine.offline.audiofile import read_audio, write_wav
    from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle

    bundle = load_bundle(args.bundle or default_bundle_path())
    name = args.vocoder or bundle.default_vocoder
    bundle.vocoder(name)  # unknown name -> BundleError listing the available ones
    audio = read_audio(args.input, bundle.mel.sample_rate)
    out = resynthesize(bundle, audio, name)
    path = write_wav(args.out, out, bundle.mel.sample_rate)
    print(f"{args.input} -> {path}: {out.size / bundle.mel.sample_rate:.2f} s at {bundle.mel.sample_rate} Hz, "
          f"vocoder {name!r} ({bundle.vocoders[name].kind})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("resynth", help="audio file -> mel -> vocoder -> WAV (time-aligned, same length)")
    p.add_argument("input", metavar="IN", type=Path, help="audio file (any format, sample rate, channels)")
    p.add_argument("--out", required=True, type=Path, help="output WAV (mono, the bundle's sample rate)")
    p.add_argument("--bundle", default=None, help="bundle folder; when absent, $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--vocoder", default=None, metavar="NAME",
                   help="vocoder by its bundle.json name; when absent, the bundle's default")
    p.set_defaults(func=run_resynth)
