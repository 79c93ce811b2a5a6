"""``melsynth resynth IN --out OUT``: any audio file -> mel -> a bundle's vocoder -> WAV or FLAC.

The input is read at any rate and channel count (mono mix, soxr resampling to
the bundle's rate), turned into the models' log-mel, vocoded offline and
trimmed to the input's length: sample ``n`` of the output lies under sample
``n`` of the (resampled) input, so the two can be compared or mixed directly.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from melsynth.engine.cli.args import add_quality_argument, output_file, vocoder_help


# mel frames per push of a classical vocoder's stream: the progress bar's step
CHUNK_FRAMES = 256


def resynthesize(bundle, audio: np.ndarray, vocoder: str | None = None, quality: str | None = None,
                 progress=None) -> np.ndarray:
    """``(samples,)`` at the bundle's rate -> ``(samples,)`` through ``vocoder``'s offline path.

    ``quality``: a classical vocoder's phase quality (``engine.dsp.quality``; None = the bundle's).
    ``progress(chunks) -> chunks`` wraps a classical vocoder's output as it streams (its stream
    equals its offline path exactly); other kinds run in one offline call."""
    from melsynth.engine.dsp.features import log_mel
    from melsynth.engine.runtime.vocoder import load_vocoder

    voc = load_vocoder(bundle, vocoder, quality)
    mel = log_mel(bundle.mel, audio)
    if voc.kind != "classical" or progress is None:
        return voc.offline(mel)[:audio.size]

    def chunks():
        for i in range(0, mel.shape[1], CHUNK_FRAMES):
            yield voc.push(mel[:, i:i + CHUNK_FRAMES])
        yield voc.flush()

    out = np.concatenate(list(progress(chunks())))
    return out[voc.latency_samples:voc.latency_samples + audio.size]


def run_resynth(args: argparse.Namespace) -> int:
    from melsynth.engine.cli.progress import with_progress
    from melsynth.engine.offline.audiofile import read_audio
    from melsynth.engine.offline.render import write_audio
    from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle

    out_path = output_file(args.out, inputs=(args.input,))
    bundle = load_bundle(args.bundle or default_bundle_path())
    name = args.vocoder or bundle.default_vocoder
    bundle.vocoder(name)  # unknown name -> BundleError listing the available ones
    rate = bundle.mel.sample_rate
    audio = read_audio(args.input, rate)
    out = resynthesize(bundle, audio, name, args.quality,
                       progress=lambda chunks: with_progress(chunks, audio.size, rate, f"resynth {out_path.name}",
                                                             not args.no_progress))
    path = write_audio(out_path, out, rate)
    print(f"{args.input} -> {path}: {out.size / rate:.2f} s at {rate} Hz, "
          f"vocoder {name!r} ({bundle.vocoders[name].kind}, quality {args.quality})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("resynth", help="audio file -> mel -> vocoder -> WAV or FLAC (time-aligned, same length)")
    p.add_argument("input", metavar="IN", type=Path, help="audio file (any format, sample rate, channels)")
    p.add_argument("--out", required=True, type=Path,
                   help="output file, mono at the bundle's rate: .wav (32-bit float) or .flac (16-bit); "
                        "never the input")
    p.add_argument("--bundle", default=None, help="bundle folder (default: $MELSYNTH_BUNDLE or models/default)")
    p.add_argument("--vocoder", default=None, metavar="NAME", help=vocoder_help())
    add_quality_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none off a terminal)")
    p.set_defaults(func=run_resynth)
