"""``melsynth render``, ``melsynth play`` and ``melsynth bench``: the engine without a window.

Each ``register_*`` defines its command's arguments; ``run_*`` is its handler.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from melsynth.engine.argtypes import finite_float, int_range, seed
from melsynth.engine.cli.args import (MAX_PLAY_SECONDS, MAX_RENDER_SECONDS, add_quality_argument, output_file,
                                     vocoder_help)
from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD, Z_LIMIT

BUNDLE_HELP = "bundle folder (default: $MELSYNTH_BUNDLE or models/default)"
WALK_SPREAD_HELP = "share of the latent that walks (0 = held point, 1 = all of it; > 1 wilder)"


def _error(message: str):
    from melsynth.engine.errors import MelsynthError

    return MelsynthError(message)


def _bundle(args):
    from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle

    bundle = load_bundle(args.bundle or default_bundle_path())
    if bundle.prior is None:
        raise _error(f"{bundle.root}: the bundle has no prior, so there is no music from noise to "
                     "render or play (add one with 'melsynth export prior')")
    return bundle


# --------------------------------------------------------------------------- render
# --png draws the whole render in one picture: longer renders would need all their audio in memory
MAX_PNG_SECONDS = 600.0


def run_render(args: argparse.Namespace) -> int:
    from melsynth.engine.cli.progress import with_progress
    from melsynth.engine.offline.render import spectrogram_png, walk_chunks, write_audio_stream

    out = output_file(args.out)
    if args.png:
        output_file(args.png, "--png", suffixes=(".png",))
        if args.seconds > MAX_PNG_SECONDS:
            raise _error(f"--png draws renders of at most {MAX_PNG_SECONDS:g} s, not {args.seconds:g} s "
                         "(leave out --png, or render shorter)")
    bundle = _bundle(args)
    name = args.vocoder or bundle.default_vocoder
    bundle.vocoder(name)  # unknown name -> one line listing the bundle's vocoders
    rate = bundle.mel.sample_rate
    kept: list = []  # the audio, only for --png (at most MAX_PNG_SECONDS)

    def keep(chunks):
        for chunk in chunks:
            if args.png:
                kept.append(chunk)
            yield chunk

    t0 = time.perf_counter()
    chunks = walk_chunks(bundle, args.seconds, args.seed, args.walk_speed, args.walk_spread, name,
                         quality=args.quality)
    total = int(round(args.seconds * rate))
    path, samples, peak = write_audio_stream(
        out, keep(with_progress(chunks, total, rate, f"render {out.name}", not args.no_progress)), rate)
    wall = time.perf_counter() - t0
    print(f"wrote {path}: {samples / rate:g} s at {rate} Hz, seed {args.seed}, vocoder {name!r} "
          f"(quality {args.quality}), peak {peak:.3f}, rendered in {wall:.1f} s "
          f"({args.seconds / wall:.0f}x real time)")
    if args.png:
        import numpy as np

        spectrogram_png(args.png, np.concatenate(kept), bundle.mel,
                        title=f"melsynth render: bundle {bundle.name}, seed {args.seed}")
        print(f"wrote {args.png}")
    return 0


# --------------------------------------------------------------------------- play
# below the ring's length (SynthConfig.ring_seconds, 0.5 s)
MAX_LEAD_MS = 400.0


def blocksize_type():
    """``--blocksize``: 0 (the device's own) up to 8192 frames."""
    return int_range(0, 8192)


def add_lead_argument(parser: argparse.ArgumentParser) -> None:
    """``--lead-ms`` (``melsynth play`` and ``melsynth app``): ``SynthConfig.target_ms``."""
    parser.add_argument("--lead-ms", type=finite_float(0, MAX_LEAD_MS), default=0.0,
                        help="deliver sound at least this long before the device would run short (0: as "
                             "late as this machine has lately allowed); more costs as much knob latency "
                             "and spares a machine that stalls for milliseconds its clicks")


def lead_config(lead_ms: float):
    """The ``SynthConfig`` for ``--lead-ms``, or the CLI's error naming the option."""
    from melsynth.engine.stream.config import SynthConfig

    try:
        return SynthConfig(target_ms=lead_ms)
    except ValueError as exc:
        raise _error(f"--lead-ms: {exc}") from exc


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a performance like Ctrl-C: with a summary


def run_play(args: argparse.Namespace) -> int:
    from melsynth.engine.offline.render import walk_controls
    from melsynth.engine.stream.synth import Synth

    config = lead_config(args.lead_ms)
    bundle = _bundle(args)
    synth = Synth(bundle, args.vocoder, config,
                  controls=walk_controls(args.seed, args.walk_speed, args.walk_spread))
    device = args.device
    if device is not None and device.strip().lstrip("-").isdigit():
        device = int(device)
    ok = synth.play(device, args.blocksize or None, hostapi=args.hostapi)
    started = time.perf_counter()  # seconds of sound: opening the device is not counted
    interrupted = False
    if ok:
        previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while args.seconds is None or time.perf_counter() - started < args.seconds:
                time.sleep(0.05)
                if not synth.playing:
                    break
        except KeyboardInterrupt:
            interrupted = True
        finally:
            signal.signal(signal.SIGTERM, previous)
    played = time.perf_counter() - started
    st = synth.status()
    out = synth.output
    flags = out.status_flags if out is not None else 0
    callbacks = out.callbacks if out is not None else 0
    native = bool(getattr(out, "native", False))  # the callback runs without the GIL
    underrun_s = {f"{k}_underrun_s": (round(v, 3) if v is not None else None)
                  for k, v in synth.ring.underrun_seconds(st.sample_rate).items()}
    synth.stop()
    summary = {
        "seconds": round(played, 3) if ok else 0.0, "device": st.device, "sample_rate": st.sample_rate,
        "blocksize": st.blocksize, "callbacks": callbacks, "underruns": st.underruns, **underrun_s,
        "host_status_flags": flags, "native_callback": native, "latency_ms": round(st.latency_ms, 2),
        "lead_ms": round(st.lead_ms, 2), "cpu_load": round(st.cpu_load, 4),
        "bundle": st.bundle, "vocoder": st.vocoder, "seed": args.seed, "interrupted": interrupted,
        "error": st.error,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        if st.error:
            print(f"melsynth play: {st.error}", file=sys.stderr)
        if ok:
            print(f"played {summary['seconds']:.1f} s on {st.device} at {st.sample_rate} Hz, block {st.blocksize}: "
                  f"{st.underruns} underruns, latency {st.latency_ms:.1f} ms, producer CPU {100 * st.cpu_load:.1f}%")
    return 0 if ok and not (st.error and not interrupted) else 1


# --------------------------------------------------------------------------- bench
def run_bench(args: argparse.Namespace) -> int:
    from melsynth.engine.offline.bench import run_bench as bench

    if args.python_callback and args.device is None and not args.hostapi:
        raise _error("--python-callback compares callbacks on a real device: add --device or --hostapi "
                     "(the default soak device is the fake one, which has no PortAudio callback)")
    bundle = _bundle(args)
    device = args.device
    if device is not None and device.strip().lstrip("-").isdigit():
        device = int(device)
    from melsynth.engine.stream.config import SynthConfig

    try:
        config = SynthConfig(frames_per_step=args.frames_per_step)
    except ValueError as exc:
        raise _error(f"--frames-per-step: {exc}") from exc
    res = bench(bundle, args.vocoder, seconds=args.stage_seconds, moves=args.moves, soak=args.soak, hog=args.hog,
                device=device, hostapi=args.hostapi, config=config, gil_load=args.gil_load,
                python_callback=args.python_callback)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            if k != "config":
                print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
    return 0


# --------------------------------------------------------------------------- arguments
def register_render(sub) -> None:
    p = sub.add_parser("render", help="music from noise: a seeded latent walk through prior and vocoder to a file")
    p.add_argument("--seconds", type=finite_float(0, MAX_RENDER_SECONDS, lo_open=True), default=10.0,
                   help=f"length of the render in seconds (at most {MAX_RENDER_SECONDS:g}: 6 hours; "
                        "memory stays flat at any length)")
    p.add_argument("--seed", type=seed(), default=0, help="seed of the latent point and of its walk")
    p.add_argument("--out", required=True, help="output audio file: .wav (32-bit float) or .flac (16-bit)")
    p.add_argument("--png", default=None,
                   help=f"also write a log-mel spectrogram PNG here (renders of at most {MAX_PNG_SECONDS:g} s)")
    p.add_argument("--bundle", default=None, help=BUNDLE_HELP)
    p.add_argument("--vocoder", default=None, help=vocoder_help())
    p.add_argument("--walk-speed", type=finite_float(0, 1), default=WALK_SPEED,
                   help="how fast the latent point wanders (0 = still, 1 = new notes every latent step)")
    p.add_argument("--walk-spread", type=finite_float(0, Z_LIMIT), default=WALK_SPREAD, help=WALK_SPREAD_HELP)
    add_quality_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none off a terminal)")
    p.set_defaults(func=run_render)


def register_play(sub) -> None:
    p = sub.add_parser("play", help="headless performance of a latent walk through the audio device")
    p.add_argument("--seconds", type=finite_float(0, MAX_PLAY_SECONDS, lo_open=True), default=None,
                   help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--device", default=None, help="output device name (substring) or index (default: system default)")
    p.add_argument("--hostapi", default=None, help="restrict the device search to a host API, e.g. JACK")
    p.add_argument("--blocksize", type=blocksize_type(), default=0, help="device block size (0: the device's own)")
    add_lead_argument(p)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--bundle", default=None, help=BUNDLE_HELP)
    p.add_argument("--vocoder", default=None, help=vocoder_help())
    p.add_argument("--seed", type=seed(), default=0, help="seed of the latent point and of its walk")
    p.add_argument("--walk-speed", type=finite_float(0, 1), default=WALK_SPEED, help="latent walk speed (0..1)")
    p.add_argument("--walk-spread", type=finite_float(0, Z_LIMIT), default=WALK_SPREAD, help=WALK_SPREAD_HELP)
    p.set_defaults(func=run_play)


def register_bench(sub) -> None:
    p = sub.add_parser("bench", help="engine throughput, knob-to-sound latency, CPU use and soak underruns")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--soak", type=finite_float(0, MAX_PLAY_SECONDS), default=0.0,
                   help="also play this many seconds and count underruns")
    p.add_argument("--hog", action="store_true", help="run a busy process on the other core during the soak")
    p.add_argument("--gil-load", action="store_true",
                   help="during the soak, hold Python's GIL for 10 ms of every 40 ms (as a busy GUI thread does)")
    p.add_argument("--python-callback", action="store_true",
                   help="soak a real device with the Python callback instead of the native one (for comparison)")
    p.add_argument("--device", default=None,
                   help="soak on this output device (name or index); default: a real-time fake 48 kHz device")
    p.add_argument("--hostapi", default=None, help="soak on this host API's device, e.g. JACK")
    p.add_argument("--moves", type=int_range(1, 100_000), default=200, help="random knob moves for the latency figure")
    p.add_argument("--stage-seconds", type=finite_float(0, 3600, lo_open=True), default=10.0,
                   help="audio seconds per throughput figure")
    p.add_argument("--frames-per-step", type=int_range(1, 64), default=1,
                   help="mel frames per producer step: more is faster, and every frame adds ~23 ms of latency")
    p.add_argument("--bundle", default=None, help=BUNDLE_HELP)
    p.add_argument("--vocoder", default=None, help=vocoder_help())
    p.set_defaults(func=run_bench)
