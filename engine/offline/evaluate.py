"""``melsynth eval vocoder``: every vocoder of a bundle against Griffin-Lim on real audio.

For each clip: its log-mel goes through each vocoder (offline) and through
Griffin-Lim (librosa, 64 iterations, the same mel; see ``engine.offline.metrics``);
both outputs are scored against the original with the multi-resolution
log-STFT L1 and the log-mel L1, and each vocoder's score is divided by
Griffin-Lim's (``< 1`` beats it). Speed is x real time on one thread
(onnxruntime sessions have one intra-op thread), offline on the whole mel and
streaming one frame per push, the way the synth drives it. Spectrogram PNGs
show original / Griffin-Lim / each vocoder.

The figures of a run can be written into the bundle's ``bundle.json``
(``--write-figures``), which is how ``models/default`` carries its numbers.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from melsynth.engine.argtypes import finite_float, int_range
from melsynth.engine.dsp.features import MelSpec, log_mel, stft
from melsynth.engine.offline.metrics import GRIFFIN_LIM_ITERATIONS, griffin_lim, log_mel_l1, mr_stft_l1

DEFAULT_CLIP_SECONDS = 30.0
SPEED_SECONDS = 10.0


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # (samples,) float32 at the bundle's rate


@dataclass
class ClipScores:
    name: str
    seconds: float
    griffin_lim: dict[str, float]
    vocoders: dict[str, dict[str, float]] = field(default_factory=dict)


# --------------------------------------------------------------------------- clips
def audio_clips(paths: Sequence[str | os.PathLike], spec: MelSpec, seconds: float | None) -> list[Clip]:
    """Clips from audio files (any format, rate, channels), cut to ``seconds``."""
    from melsynth.engine.offline.audiofile import read_audio

    clips = []
    for p in paths:
        audio = read_audio(p, spec.sample_rate)
        if seconds:
            audio = audio[:int(seconds * spec.sample_rate)]
        clips.append(Clip(Path(p).name, audio))
    return clips


def corpus_clips(corpus: str | os.PathLike, split: str, spec: MelSpec, max_clips: int | None,
                 seconds: float | None) -> list[Clip]:
    """The ``split`` files of a built corpus (its ``manifest.json``), in manifest order."""
    corpus = Path(corpus)
    manifest = corpus / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no corpus manifest (build one with `melsynth corpus build`)")
    try:
        files = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{manifest}: not a corpus manifest ({exc})") from exc
    chosen = [f for f in files if f.get("split") == split]
    if not chosen:
        splits = sorted({str(f.get("split")) for f in files})
        raise ValueError(f"{manifest}: no files in split {split!r} (splits present: {', '.join(splits)})")
    chosen = chosen[:max_clips] if max_clips else chosen
    return audio_clips([corpus / f["path"] for f in chosen], spec, seconds)


# --------------------------------------------------------------------------- speed
def measure_speed(vocoder, log_mel_frames: np.ndarray) -> dict[str, float]:
    """x real time: offline on the whole mel, and streaming one frame per push.

    Headline figures use the process's CPU time (one thread does the work: numpy,
    and onnxruntime sessions with one intra-op thread), which other processes on
    a shared machine do not inflate; ``*_wall`` are wall-clock.
    """
    spec = vocoder.spec
    seconds = log_mel_frames.shape[1] * spec.hop_length / spec.sample_rate

    def timed(fn):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        return max(time.process_time() - c0, 1e-9), max(time.perf_counter() - w0, 1e-9)

    def stream():
        vocoder.reset()
        for i in range(log_mel_frames.shape[1]):
            vocoder.push(log_mel_frames[:, i:i + 1])
        vocoder.flush()

    vocoder.offline(log_mel_frames[:, :8])  # warm-up: sessions, caches
    off_cpu, off_wall = timed(lambda: vocoder.offline(log_mel_frames))
    st_cpu, st_wall = timed(stream)
    return {"x_realtime_offline": round(seconds / off_cpu, 1),
            "x_realtime_streaming_1_frame": round(seconds / st_cpu, 1),
            "x_realtime_offline_wall": round(seconds / off_wall, 1),
            "x_realtime_streaming_1_frame_wall": round(seconds / st_wall, 1),
            "latency_ms": round(1e3 * vocoder.latency_samples / spec.sample_rate, 1)}


# --------------------------------------------------------------------------- plots
def plot_spectrograms(path: str | os.PathLike, spec: MelSpec, rows: dict[str, np.ndarray], title: str) -> Path:
    """One PNG: a log-magnitude spectrogram per row (original first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 2.2 * len(rows)), sharex=True, squeeze=False)
    extent = None
    for ax, (label, audio) in zip(axes[:, 0], rows.items()):
        db = 20 * np.log10(np.maximum(np.abs(stft(spec, audio)), 1e-5))
        extent = [0, audio.size / spec.sample_rate, 0, spec.sample_rate / 2]
        ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=db.max() - 90, vmax=db.max(),
                  cmap="magma", interpolation="nearest")
        ax.set_ylabel("Hz")
        ax.set_title(label, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- evaluation
def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def evaluate(bundle, clips: Sequence[Clip], vocoder_names: Sequence[str] | None = None,
             plots_dir: str | os.PathLike | None = None, gl_iterations: int = GRIFFIN_LIM_ITERATIONS,
             speed: bool = True, progress=None, vocoders: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score ``vocoder_names`` (default: all) of ``bundle`` on ``clips``; a JSON-able report.

    ``vocoders`` (name -> object with the Vocoder interface) replaces loading from the bundle.
    """
    from melsynth.engine.runtime.vocoder import load_vocoder

    spec = bundle.mel
    if vocoders is None:
        vocoders = {n: load_vocoder(bundle, n) for n in (vocoder_names or bundle.vocoders)}
    per_clip: list[ClipScores] = []
    for i, clip in enumerate(clips):
        audio = np.asarray(clip.audio, dtype=np.float32)
        mel = log_mel(spec, audio)
        reference = griffin_lim(spec, mel, audio.size, iterations=gl_iterations)
        gl = {"mr_stft_l1": mr_stft_l1(audio, reference), "log_mel_l1": log_mel_l1(spec, audio, reference)}
        scores = ClipScores(clip.name, audio.size / spec.sample_rate, gl)
        rows = {"original": audio, f"Griffin-Lim {gl_iterations}": reference}
        for name, voc in vocoders.items():
            out = voc.offline(mel)[:audio.size]
            mr, lm = mr_stft_l1(audio, out), log_mel_l1(spec, audio, out)
            scores.vocoders[name] = {"mr_stft_l1": mr, "log_mel_l1": lm,
                                     "mr_stft_ratio": mr / max(gl["mr_stft_l1"], 1e-12),
                                     "log_mel_ratio": lm / max(gl["log_mel_l1"], 1e-12)}
            rows[f"{name} ({voc.kind})"] = out
        if plots_dir is not None:
            plot_spectrograms(Path(plots_dir) / f"{i:02d}_{_safe_name(clip.name)}.png", spec, rows, clip.name)
        per_clip.append(scores)
        if progress:
            progress(scores)
    summary: dict[str, Any] = {}
    speed_mel = None
    if speed and clips:
        longest = max(clips, key=lambda c: c.audio.size).audio
        speed_mel = log_mel(spec, longest[:int(SPEED_SECONDS * spec.sample_rate)])
    for name, voc in vocoders.items():
        s = [c.vocoders[name] for c in per_clip]
        entry = {"kind": voc.kind,
                 "mr_stft_ratio": round(float(np.mean([x["mr_stft_ratio"] for x in s])), 4),
                 "log_mel_ratio": round(float(np.mean([x["log_mel_ratio"] for x in s])), 4),
                 "mr_stft_l1": round(float(np.mean([x["mr_stft_l1"] for x in s])), 5),
                 "log_mel_l1": round(float(np.mean([x["log_mel_l1"] for x in s])), 5)}
        if speed_mel is not None:
            entry.update(measure_speed(voc, speed_mel))
        summary[name] = entry
    gl_summary = {"iterations": gl_iterations,
                  "mr_stft_l1": round(float(np.mean([c.griffin_lim["mr_stft_l1"] for c in per_clip])), 5),
                  "log_mel_l1": round(float(np.mean([c.griffin_lim["log_mel_l1"] for c in per_clip])), 5)}
    return {"bundle": str(bundle.root), "clips": len(per_clip),
            "seconds": round(sum(c.seconds for c in per_clip), 1),
            "griffin_lim": gl_summary, "vocoders": summary,
            "per_clip": [{"name": c.name, "seconds": round(c.seconds, 2), "griffin_lim": c.griffin_lim,
                          "vocoders": c.vocoders} for c in per_clip]}


def figures_from_report(report: dict[str, Any], name: str, source: dict[str, Any]) -> dict[str, Any]:
    """The ``figures`` entry of one vocoder for ``bundle.json``."""
    entry = dict(report["vocoders"][name])
    entry.pop("kind", None)
    entry.update({"griffin_lim_iterations": report["griffin_lim"]["iterations"],
                  "griffin_lim_mr_stft_l1": report["griffin_lim"]["mr_stft_l1"],
                  "griffin_lim_log_mel_l1": report["griffin_lim"]["log_mel_l1"],
                  "clips": report["clips"], "seconds": report["seconds"],
                  "measured": _dt.date.today().isoformat(),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores, 1 thread",
                  "command": "melsynth eval vocoder", **source})
    return entry


def write_figures(bundle_root: str | os.PathLike, report: dict[str, Any], source: dict[str, Any]) -> Path:
    """Merge each evaluated vocoder's figures into ``bundle.json`` (other entries untouched)."""
    from melsynth.engine.runtime.bundle import BUNDLE_FILE, write_bundle_json

    path = Path(bundle_root) / BUNDLE_FILE
    data = json.loads(path.read_text())
    for name in report["vocoders"]:
        if name in data.get("vocoders", {}):
            data["vocoders"][name]["figures"] = figures_from_report(report, name, source)
    return write_bundle_json(bundle_root, data)


# --------------------------------------------------------------------------- CLI
def format_table(report: dict[str, Any]) -> str:
    head = (f"{'vocoder':<22}{'kind':<17}{'MR-STFT/GL':>11}{'log-mel/GL':>11}"
            f"{'x RT off':>10}{'x RT 1fr':>10}{'latency':>9}")
    gl = report["griffin_lim"]
    lines = [f"{report['clips']} clips, {report['seconds']} s; Griffin-Lim {gl['iterations']} "
             f"(= 1.0): MR-STFT L1 {gl['mr_stft_l1']:.4f}, log-mel L1 {gl['log_mel_l1']:.4f}", head]
    for name, v in report["vocoders"].items():
        lines.append(f"{name:<22}{v['kind']:<17}{v['mr_stft_ratio']:>11.3f}{v['log_mel_ratio']:>11.3f}"
                     f"{v.get('x_realtime_offline', float('nan')):>10.1f}"
                     f"{v.get('x_realtime_streaming_1_frame', float('nan')):>10.1f}"
                     f"{v.get('latency_ms', float('nan')):>7.1f}ms")
    return "\n".join(lines)


def phase_points(bundle, points: Sequence[str]) -> dict[str, Any]:
    """The bundle's classical vocoder at each ``ITERATIONS/LOOKAHEAD`` point, named by it
    (``"classical 12/3"``): the phase quality curve's vocoders."""
    import dataclasses

    from melsynth.engine.dsp.quality import parse_phase_point
    from melsynth.engine.errors import MelsynthError
    from melsynth.engine.runtime.vocoder import ClassicalVocoder, load_vocoder

    base = next((n for n, v in bundle.vocoders.items() if v.kind == "classical"), None)
    if base is None:
        raise MelsynthError(f"{bundle.root}: --phase needs a classical vocoder, and the bundle has none")
    voc = load_vocoder(bundle, base)
    out = {}
    for text in points:
        try:
            iterations, lookahead = parse_phase_point(text)
        except ValueError as exc:
            raise MelsynthError(f"--phase: {exc}") from exc
        config = dataclasses.replace(voc.config, iterations=iterations, lookahead=lookahead)
        name = f"{base} {iterations}/{lookahead}"
        out[name] = ClassicalVocoder(bundle.mel, config, voc.magnitude_iterations, name=name)
    return out


def run_eval_vocoder(args: argparse.Namespace) -> int:
    from melsynth.engine.errors import MelsynthError
    from melsynth.engine.runtime.bundle import default_bundle_path, load_bundle

    bundle = load_bundle(args.bundle or default_bundle_path())
    seconds = args.seconds if args.seconds and args.seconds > 0 else None
    if bool(args.audio) == bool(args.corpus):
        raise MelsynthError("give either --audio PATH... or --corpus DIR (with --split)")
    if args.audio:
        clips = audio_clips(args.audio, bundle.mel, seconds)
        if args.max_clips:
            clips = clips[:args.max_clips]
        source = {"audio": [str(p) for p in args.audio]}
    else:
        try:
            clips = corpus_clips(args.corpus, args.split, bundle.mel, args.max_clips, seconds)
        except ValueError as exc:
            raise MelsynthError(str(exc)) from exc
        source = {"corpus": str(args.corpus), "split": args.split}
    source["clip_seconds_max"] = seconds
    for name in args.vocoder or ():
        bundle.vocoder(name)  # unknown name -> BundleError listing the available ones
    vocoders = phase_points(bundle, args.phase) if args.phase else None

    def progress(c: ClipScores) -> None:
        parts = ", ".join(f"{n} {v['mr_stft_ratio']:.3f}" for n, v in c.vocoders.items())
        print(f"  {c.name} ({c.seconds:.1f} s): MR-STFT / GL: {parts}", flush=True)

    report = evaluate(bundle, clips, args.vocoder, args.plots, args.gl_iterations, speed=not args.no_speed,
                      progress=progress, vocoders=vocoders)
    report["source"] = source
    print(format_table(report))
    if args.json:
        from melsynth.engine.atomic import atomic_write_json

        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    if args.write_figures:
        print(f"wrote figures into {write_figures(bundle.root, report, source)}")
    return 0


def register_eval(group_sub) -> None:
    p = group_sub.add_parser(
        "vocoder", help="score every vocoder of a bundle against Griffin-Lim (MR-STFT, log-mel, speed)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--bundle", default=None, help="bundle folder; when absent, $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--audio", nargs="+", metavar="PATH", default=None,
                   help="audio files to score (any format, rate, channels)")
    p.add_argument("--corpus", default=None, help="a built corpus folder (manifest.json) instead of --audio")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"),
                   help="corpus split to score")
    p.add_argument("--max-clips", type=int_range(1, 100_000), default=None, help="score at most this many clips")
    p.add_argument("--seconds", type=finite_float(0, 86400), default=DEFAULT_CLIP_SECONDS,
                   help="score at most this many seconds of each clip (0: whole clips)")
    p.add_argument("--vocoder", nargs="+", default=None, metavar="NAME",
                   help="vocoders to score by their bundle.json name; when absent, all")
    p.add_argument("--phase", nargs="+", default=None, metavar="ITER/LOOKAHEAD",
                   help="instead of the bundle's vocoders, score its classical vocoder at these phase "
                        "settings, e.g. 6/2 12/3 16/3 (the phase quality curve of docs/quality.md)")
    p.add_argument("--gl-iterations", type=int_range(1, 10_000), default=GRIFFIN_LIM_ITERATIONS,
                   help="Griffin-Lim iterations of the reference (the ratios' denominator)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the full report (per clip too) here")
    p.add_argument("--plots", default=None, metavar="DIR", help="write spectrogram PNGs here")
    p.add_argument("--no-speed", action="store_true", help="skip the throughput measurement")
    p.add_argument("--write-figures", action="store_true",
                   help="write each scored vocoder's figures into the bundle's bundle.json")
    p.set_defaults(func=run_eval_vocoder)
