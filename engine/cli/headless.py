"""``melsynth render``, ``melsynth play`` and ``melsynth bench``: the engine without a window.

Each ``register_*`` defines its command's arguments; ``run_*`` is its handler.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD

BUNDLE_HELP = "bundle folder (default: $MELSYNTH_BUNDLE or models/default)"
VOCODER_HELP = "vocoder of the bundle (default: the bundle's default)"
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
def run_render(args: argparse.Namespace) -> int:
    from melsynth.engine.offline.render import render_walk, spectrogram_png, write_audio

    if not args.seconds > 0:
        raise _error(f"--seconds must be positive, got {args.seconds}")
    bundle = _bundle(args)
    t0 = time.perf_counter()
    audio = render_walk(bundle, args.seconds, args.seed, args.walk_speed, args.walk_spread, args.vocoder)
    wall = time.perf_counter() - t0
    write_audio(args.out, audio, bundle.mel.sample_rate)
    print(f"wrote {args.out}: {args.seconds:g} s at {bundle.mel.sample_rate} Hz, seed {args.seed}, "
          f"peak {float(abs(audio).max()):.3f}, rendered in {wall:.1f} s ({args.seconds / wall:.0f}x real time)")
    if args.png:
        spectrogram_png(args.png, audio, bundle.mel,
                        title=f"melsynth render: bundle {bundle.name}, seed {args.seed}")
        print(f"wrote {args.png}")
    return 0


# --------------------------------------------------------------------------- play
def add_lead_argument(parser: argparse.ArgumentParser) -> None:
    """``--lead-ms`` (``melsynth play`` and ``melsynth app``): ``SynthConfig.target_ms``."""
    parser.add_argument("--lead-ms", type=float, default=0.0,
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
    p.add_argument("--seconds", type=float, default=10.0, help="length of the render in seconds")
    p.add_argument("--seed", type=int, default=0, help="seed of the latent point and of its walk")
    p.add_argument("--out", required=True, help="output audio file (.wav or .flac)")
    p.add_argument("--png", default=None, help="also write a log-mel spectrogram PNG here")
    p.add_argument("--bundle", default=None, help=BUNDLE_HELP)
    p.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    p.add_argument("--walk-speed", type=float, default=WALK_SPEED,
                   help="how fast the latent point wanders (0 = still, 1 = a new point every latent step)")
    p.add_argument("--walk-spread", type=float, default=WALK_SPREAD, help=WALK_SPREAD_HELP)
    p.set_defaults(func=run_render)


def register_play(sub) -> None:
    p = sub.add_parser("play", help="headless performance of a latent walk through the audio device")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--device", default=None, help="output device name (substring) or index (default: system default)")
    p.add_argument("--hostapi", default=None, help="restrict the device search to a host API, e.g. JACK")
    p.add_argument("--blocksize", type=int, default=0, help="device block size (0: the device's own)")
    add_lead_argument(p)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--bundle", default=None, help=BUNDLE_HELP)
    p.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    p.add_argument("--seed", type=int, default=0, help="seed of the latent point and of its walk")
    p.add_argument("--walk-speed", type=float, default=WALK_SPEED, help="latent walk speed (0..1)")
    p.add_argument("--walk-spread", type=float, default=WALK_SPREAD, help=WALK_SPREAD_HELP)
    p.set_defaults(func=run_play)


def register_bench(sub) -> None:
    p = sub.add_parser("bench", help="engine throughput, knob-to-sound latency, CPU use and soak underruns")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--soak", type=float, default=0.0, help="also play this many seconds and count underruns")
    p.add_argument("--hog", action="store_true", help="run a busy process on the other core during the soak")
    p.add_argument("--gil-load", action="store_true",
                   help="during the soak, hold Python's GIL for 10 ms of every 40 ms (as a busy GUI thread does)")
    p.add_argument("--python-callback", action="store_true",
                   help="soak a real device with the Python callback instead of the native one (for comparison)")
    p.add_argument("--device", default=None,
                   help="soak on this output device (name or index); default: a real-time fake 48 kHz device")
    p.add_argument("--hostapi", default=None, help="soak on this host API's device, e.g. JACK")
    p.add_argument("--moves", type=int, default=200, help="random knob moves for the latency figure")
    p.add_argument("--stage-seconds", type=float, default=10.0, help="audio seconds per throughput figure")
    p.add_argument("--frames-per-step", type=int, default=1,
                   help="mel frames per producer step: more is faster, and every frame adds ~23 ms of latency")
    p.add_argument("--bundle", default=None, help=BUNDLE_HELP)
    p.add_argument("--vocoder", default=None, help=VOCODER_HELP)
    p.set_defaults(func=run_bench)
