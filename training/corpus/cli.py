"""``melsynth corpus build|add|info|cache``: each ``register_*`` defines a command's arguments.

Registration imports neither torch nor music21 (handlers import what they need).
"""
from __future__ import annotations

import argparse
import json

from melsynth.engine.argtypes import finite_float, int_range, seed


def _stop_cleanly_on_sigterm() -> None:
    """``kill PID`` of a background build: save the manifest and stop workers (like Ctrl-C)."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_build(args: argparse.Namespace) -> int:
    from melsynth.training.corpus.build import BuildConfig, build_corpus, print_report

    _stop_cleanly_on_sigterm()

    cfg = BuildConfig(out=args.out, max_works=args.max_works, jobs=args.jobs, seed=args.seed,
                      per_score=args.per_score, timeout_s=args.timeout,
                      collections=tuple(args.collections) if args.collections else None,
                      score_root=args.scores,
                      retry_failed=args.retry_failed, progress=not args.no_progress)
    report = build_corpus(cfg)
    print_report(report, args.out)
    return 0


def run_add(args: argparse.Namespace) -> int:
    from melsynth.training.corpus.ingest import AddConfig, add_audio, print_add_report

    _stop_cleanly_on_sigterm()

    report = add_audio(AddConfig(src=args.src, out=args.out, jobs=args.jobs, timeout_s=args.timeout,
                                 progress=not args.no_progress))
    print_add_report(report, args.out)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from melsynth.training.corpus.cache import describe
    from melsynth.training.corpus.manifest import read_manifest

    manifest = read_manifest(args.dir)
    print(json.dumps({"summary": manifest.summary(), "info": manifest.info,
                      "mel_caches": describe(args.dir),
                      "failures": manifest.failures}, indent=2))
    return 0


def run_cache(args: argparse.Namespace) -> int:
    from melsynth.engine.dsp.features import MelSpec
    from melsynth.training.corpus.cache import ensure_cache
    from melsynth.training.corpus.manifest import read_manifest

    from melsynth.training.corpus.cache import ensure_audio_cache

    spec = MelSpec()
    files = read_manifest(args.dir).files
    n = ensure_cache(args.dir, spec, files, progress=not args.no_progress)
    print(f"mel cache {spec.key()}: {n} entries computed, {len(files) - n} present")
    if not args.no_audio:
        n = ensure_audio_cache(args.dir, files, progress=not args.no_progress)
        print(f"audio cache: {n} entries written, {len(files) - n} present")
    return 0


def register_build(sub) -> None:
    b = sub.add_parser("build", help="render music21's bundled classical scores with FluidSynth into a corpus")
    b.add_argument("--out", required=True, help="corpus folder (created; an existing one is resumed)")
    b.add_argument("--max-works", type=int_range(1, 100_000), default=None,
                   help="render only this many works (seeded choice); default: all (~600 works, >20 h)")
    b.add_argument("--jobs", type=int_range(1, 256), default=2, help="worker processes")
    b.add_argument("--seed", type=seed(), default=0,
                   help="seed of work order, instrumentations, tempo and velocity variation")
    b.add_argument("--per-score", type=int_range(1, 64), default=2,
                   help="instrumentations rendered per score")
    b.add_argument("--timeout", type=finite_float(0, 86400, lo_open=True), default=900.0,
                   help="CPU seconds one score may take (parse + renders) before it is listed as failed "
                        "(a score blocked without using CPU is stopped after 4x this wall time)")
    b.add_argument("--collections", nargs="+", default=None, metavar="NAME",
                   help="music21 corpus folders to use (e.g. bach beethoven palestrina); "
                        "default: all concert-music folders, Palestrina and folk-tune books excluded")
    b.add_argument("--scores", default=None, metavar="DIR",
                   help="folder of scores (MusicXML/.mxl/kern/ABC) laid out composer/[work/]piece; "
                        "default: music21's bundled corpus")
    b.add_argument("--retry-failed", action="store_true",
                   help="retry scores that failed in an earlier run (skipped by default)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=run_build)


def register_add(sub) -> None:
    a = sub.add_parser("add", help="ingest a folder of audio (wav/flac/ogg/mp3, MusicNet layout too) into a corpus")
    a.add_argument("src", help="folder (searched recursively) or single audio file")
    a.add_argument("--out", required=True, help="corpus folder (created or extended)")
    a.add_argument("--jobs", type=int_range(1, 256), default=2, help="worker processes")
    a.add_argument("--timeout", type=finite_float(0, 86400, lo_open=True), default=600.0, help="CPU seconds one file may take")
    a.add_argument("--no-progress", action="store_true", help="no progress bar")
    a.set_defaults(func=run_add)


def register_info(sub) -> None:
    i = sub.add_parser("info", help="print a corpus's hours per split and failures")
    i.add_argument("dir", help="corpus folder")
    i.set_defaults(func=run_info)


def register_cache(sub) -> None:
    c = sub.add_parser("cache", help="compute missing mel-cache entries for the current MelSpec (and the "
                                     "int16 audio cache the vocoder sampler reads); the samplers also do it on "
                                     "first use")
    c.add_argument("dir", help="corpus folder")
    c.add_argument("--no-audio", action="store_true", help="only the mel cache")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.set_defaults(func=run_cache)
