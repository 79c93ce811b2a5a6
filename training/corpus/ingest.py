"""``corpus add``: any folder of the user's audio -> the same corpus format.

Every readable file becomes ``audio/added/<source folder>/<relative path>.flac``
(11025 Hz mono, level-normalised) with a manifest entry and a mel-cache entry.
A file that cannot be read, or holds no samples, or only silence, is skipped and
listed with its reason; the rest goes in.

Works and composers: MusicNet's layout (``train_data/`` and ``test_data/`` with
``<id>.wav``, ``musicnet_metadata.csv`` beside or above them) takes composer,
work (composition) and instrumentation (ensemble) from the metadata, so the
movements of one work share a split. Elsewhere the top folder below SRC is the
composer (``unknown`` for files directly in SRC) and each file is its own work.
MusicNet's own train/test folders are not kept as splits: the corpus splits by
work like everything else (no work on both sides).
"""
from __future__ import annotations

import csv
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.corpus.manifest import CorpusLock, FileEntry, read_or_new, write_manifest

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                              ".aifc", ".au", ".m4a", ".wv", ".w64", ".caf"})
MUSICNET_METADATA = "musicnet_metadata.csv"


@dataclass(frozen=True)
class AddConfig:
    src: str
    out: str
    jobs: int = 2
    timeout_s: float = 600.0
    progress: bool = True
    spec: MelSpec = field(default_factory=MelSpec)


@dataclass(frozen=True)
class AddTask:
    source: str                # absolute path of the original
    rel_out: str
    composer: str
    work: str
    instrumentation: str
    corpus_dir: str
    spec: dict[str, Any]


@dataclass
class AddReport:
    added: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def find_audio(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such file or folder")
    out = []
    for dirpath, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in files
                   if not f.startswith(".") and os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS)
    return sorted(out)


def musicnet_metadata(src: Path) -> dict[str, dict[str, str]]:
    """{id: row} from ``musicnet_metadata.csv`` in SRC or its parent (empty if absent)."""
    for folder in (src, src.parent):
        path = folder / MUSICNET_METADATA
        if path.is_file():
            with open(path, newline="", encoding="utf-8", errors="replace") as f:
                return {row["id"].strip(): row for row in csv.DictReader(f) if row.get("id")}
    return {}


def describe_file(path: Path, src: Path, meta: dict[str, dict[str, str]]) -> tuple[str, str, str]:
    """(composer, work, instrumentation) of one source file."""
    row = meta.get(path.stem)
    if row is not None:
        composer = _slug(row.get("composer", "unknown")).lower()
        work = f"{composer}/{_slug(row.get('composition', path.stem))}"
        return composer, work, _slug(row.get("ensemble", "recording")).lower()
    rel = path.relative_to(src) if src.is_dir() else Path(path.name)
    composer = _slug(rel.parts[0]) if len(rel.parts) > 1 else "unknown"
    if rel.parts[0] in ("train_data", "test_data"):        # MusicNet without its metadata
        composer = "unknown"
    return composer, f"{composer}/{_slug(str(rel.with_suffix('')))}", "recording"


def read_any_audio(path: str) -> tuple[np.ndarray, int]:
    """``(samples,) float32 mono, sample rate``; soundfile first, librosa (ffmpeg) as fallback."""
    import soundfile as sf

    if os.path.getsize(path) == 0:
        raise ValueError("file is empty (0 bytes)")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
    except Exception as sf_exc:
        try:
            import librosa

            audio, sr = librosa.load(path, sr=None, mono=True)
        except Exception as lr_exc:
            raise ValueError(f"unreadable audio (soundfile: {sf_exc}; librosa: {lr_exc})") from None
    if audio.size == 0:
        raise ValueError("no samples")
    if not np.all(np.isfinite(audio)):
        raise ValueError("contains NaN or infinite samples")
    return np.asarray(audio, dtype=np.float32), int(sr)


def _worker_init():
    return None


def _worker_add(_state, task: AddTask):
    from melsynth.training.corpus.render import CORPUS_RATE, RenderError, normalise_level, resample
    from melsynth.training.corpus.store import store_audio

    try:
        audio, sr = read_any_audio(task.source)
        audio = normalise_level(resample(audio, sr, CORPUS_RATE))
    except (ValueError, RenderError) as exc:
        yield ("failure", task.source, str(exc))
        return
    spec = MelSpec.from_dict(task.spec)
    if audio.size < spec.n_fft:
        yield ("failure", task.source, f"too short ({audio.size} samples at {CORPUS_RATE} Hz)")
        return
    sha, samples = store_audio(task.corpus_dir, task.rel_out, audio, spec)
    yield ("file", FileEntry(
        path=task.rel_out, duration=round(samples / CORPUS_RATE, 3), samples=samples,
        composer=task.composer, work=task.work, instrumentation=task.instrumentation,
        sha256=sha, source=task.source, origin="added", extra={"source_rate": sr}).to_dict())


def add_audio(cfg: AddConfig, log=print) -> AddReport:
    from melsynth.training.corpus.pool import TimeoutPool

    t_start = time.monotonic()
    src = Path(cfg.src).resolve()
    out_dir = Path(cfg.out)
    files = find_audio(src)
    meta = musicnet_metadata(src if src.is_dir() else src.parent)
    root_name = _slug(src.name if src.is_dir() else src.parent.name)
    report = AddReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    with CorpusLock(out_dir):
        manifest = read_or_new(out_dir)
        done = {e.source for e in manifest.files if (out_dir / e.path).is_file()}
        tasks = []
        for path in files:
            if str(path) in done:
                report.skipped += 1
                continue
            composer, work, instr = describe_file(path, src, meta)
            rel = path.relative_to(src) if src.is_dir() else Path(path.name)
            rel_out = f"audio/added/{root_name}/" + "/".join(_slug(p) for p in rel.parts) + ".flac"
            tasks.append(AddTask(str(path), rel_out, composer, work, instr, str(out_dir), cfg.spec.to_dict()))
        log(f"corpus add: {len(tasks)} audio files to add from {src}, {report.skipped} already in the corpus")

        bar = None
        if cfg.progress and tasks:
            from tqdm import tqdm

            bar = tqdm(total=len(tasks), unit="file", desc="corpus add", file=sys.stderr,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0)

        def fail(source: str, reason: str) -> None:
            manifest.add_failure(source, reason)
            report.failed.append({"source": source, "reason": reason})

        def on_message(task: AddTask, msg) -> None:
            if msg[0] == "file":
                manifest.upsert(FileEntry.from_dict(msg[1]))
                manifest.clear_failure(task.source)
                report.added += 1
            else:
                fail(msg[1], msg[2])
            if bar is not None:
                bar.update(1)

        def on_failure(task: AddTask, reason: str) -> None:
            fail(task.source, reason)
            if bar is not None:
                bar.update(1)

        try:
            if tasks:
                from melsynth.training.corpus.build import WORKER_MODULES

                TimeoutPool(_worker_init, _worker_add, jobs=cfg.jobs, timeout_s=cfg.timeout_s,
                            preload_modules=WORKER_MODULES).run(
                    tasks, on_message, on_failure)
        finally:
            if bar is not None:
                bar.close()
            write_manifest(out_dir, manifest)
        report.wall_s = time.monotonic() - t_start
        report.summary = manifest.summary()
    return report


def print_add_report(report: AddReport, out_dir: str, log=print) -> None:
    hours = report.summary.get("hours", {})
    log(f"corpus in {out_dir}: {report.added} files added, {report.skipped} already there, "
        f"{len(report.failed)} skipped for errors, {report.wall_s:.1f} s")
    log("hours: " + ", ".join(f"{k} {v:.2f}" for k, v in hours.items()))
    for f in report.failed:
        log(f"  skipped {f['source']}: {f['reason']}")
