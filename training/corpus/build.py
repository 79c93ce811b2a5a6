"""``corpus build``: music21 scores -> rendered, varied, normalised FLACs + manifest + mel cache.

Plan (reproducible from the seed)::

    works (movements grouped)  --seeded shuffle, first --max-works-->  scores
    score  --per_score instrumentations (seeded)-->  outputs  audio/<composer>/<slug>__<instr>.flac
    output --seeded Performance (tempo, velocity)-->  render 22050 Hz -> soxr 11025 -> level -> FLAC

One task per score (music21 parses it once for all its instrumentations) runs in
a ``TimeoutPool`` worker, so a slow score is stopped at ``timeout_s`` and listed
as failed; the build goes on. Re-running skips outputs already in the manifest
whose file exists, and scores that failed before (``retry_failed`` retries them).
The manifest is rewritten atomically every few seconds, so an interrupted build
loses at most the files finished since the last write (they are re-rendered).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.corpus.manifest import CorpusLock, FileEntry, read_or_new, write_manifest
from melsynth.training.corpus.scores import (INSTRUMENTATIONS, ScoreSource, choose_instrumentations,
                                             list_scores, stable_int)

SAVE_EVERY_S = 10.0


@dataclass(frozen=True)
class BuildConfig:
    out: str
    max_works: int | None = None        # None: every work of the selected collections
    jobs: int = 2
    seed: int = 0
    per_score: int = 2                  # instrumentations rendered per score
    timeout_s: float = 900.0            # CPU seconds per score (parse + all its renders)
    max_seconds: float = 3600.0         # longest rendered file (Beethoven op. 132 in one file: 32 min)
    collections: tuple[str, ...] | None = None
    score_root: str | None = None       # folder of scores; None: music21's bundled corpus
    retry_failed: bool = False
    spec: MelSpec = field(default_factory=MelSpec)
    progress: bool = True


@dataclass(frozen=True)
class Output:
    rel: str                   # corpus-relative FLAC path
    instrumentation: str
    performance: dict[str, float]
    variation_seed: int


@dataclass(frozen=True)
class ScoreTask:
    score: ScoreSource
    outputs: tuple[Output, ...]
    corpus_dir: str
    spec: dict[str, Any]
    max_seconds: float


@dataclass
class BuildReport:
    rendered: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)


def select_scores(cfg: BuildConfig) -> list[ScoreSource]:
    """Scores of the first ``max_works`` works in seeded order (all movements of a work)."""
    scores = list_scores(cfg.collections, Path(cfg.score_root) if cfg.score_root else None)
    if not scores:
        raise FileNotFoundError(f"no scores found in {cfg.score_root or 'the music21 corpus'}"
                                + (f" for collections {list(cfg.collections)}" if cfg.collections else ""))
    works = sorted({s.work for s in scores})
    order = np.random.default_rng([cfg.seed, 1]).permutation(len(works))
    chosen = [works[i] for i in order]
    if cfg.max_works is not None:
        chosen = chosen[: cfg.max_works]
    rank = {w: i for i, w in enumerate(chosen)}
    return sorted((s for s in scores if s.work in rank), key=lambda s: (rank[s.work], s.rel))


def plan_outputs(score: ScoreSource, cfg: BuildConfig) -> tuple[Output, ...]:
    from melsynth.training.corpus.render import Performance

    outs = []
    for name in choose_instrumentations(cfg.seed, score.rel, cfg.per_score):
        rel = f"audio/{score.composer}/{score.slug}__{name}.flac"
        vseed = stable_int(f"{cfg.seed}:{rel}")
        perf = Performance.random(np.random.default_rng([vseed, 0]))
        outs.append(Output(rel, name, asdict(perf), vseed))
    return tuple(outs)


# --- worker side (runs in pool processes) -------------------------------------------------

# Imported once by the pool's fork server, inherited by every worker.
WORKER_MODULES = ("numpy", "soundfile", "soxr", "scipy.signal", "librosa.filters",
                  "melsynth.engine.dsp.features", "melsynth.training.corpus.render", "melsynth.training.corpus.store")
SCORE_MODULES = ("music21", "music21.midi.translate")


def _worker_init():
    from melsynth.training.corpus.render import FluidRenderer

    return FluidRenderer()


def _worker_render(renderer, task: ScoreTask):
    """Yield ("file", entry dict) or ("failure", source, reason) per output."""
    from melsynth.training.corpus.render import (CORPUS_RATE, Performance, RenderError, normalise_level,
                                                 resample)
    from melsynth.training.corpus.scores import ScoreError, load_score_notes
    from melsynth.training.corpus.store import store_audio

    spec = MelSpec.from_dict(task.spec)
    try:
        notes = load_score_notes(task.score.path)
    except ScoreError as exc:
        yield ("failure", task.score.rel, str(exc))
        return
    for out in task.outputs:
        source = f"{task.score.rel} [{out.instrumentation}]"
        perf = Performance(**out.performance)
        played = notes.varied(perf.tempo_scale, perf.velocity_scale, perf.velocity_jitter,
                              np.random.default_rng([out.variation_seed, 1]))
        try:
            audio = renderer.render(played, INSTRUMENTATIONS[out.instrumentation], task.max_seconds)
            audio = normalise_level(resample(audio, renderer.sample_rate, CORPUS_RATE))
        except RenderError as exc:
            yield ("failure", source, str(exc))
            continue
        sha, samples = store_audio(task.corpus_dir, out.rel, audio, spec)
        yield ("file", FileEntry(
            path=out.rel, duration=round(samples / CORPUS_RATE, 3), samples=samples,
            composer=task.score.composer, work=task.score.work,
            instrumentation=out.instrumentation, sha256=sha, source=task.score.rel,
            origin="music21", extra={"performance": out.performance,
                                     "variation_seed": out.variation_seed}).to_dict())


# --- parent side ------------------------------------------------------------------------

def build_corpus(cfg: BuildConfig, log=print) -> BuildReport:
    """Build or resume a corpus in ``cfg.out``; returns what happened."""
    from melsynth.training.corpus.pool import TimeoutPool

    t_start = time.monotonic()
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BuildReport()
    with CorpusLock(out_dir):
        manifest = read_or_new(out_dir)
        have = {e.path for e in manifest.files if (out_dir / e.path).is_file()}
        failed_before = {f["source"] for f in manifest.failures}
        tasks = []
        for score in select_scores(cfg):
            outputs = plan_outputs(score, cfg)
            pending = tuple(o for o in outputs if o.rel not in have)
            report.skipped += len(outputs) - len(pending)
            if not pending:
                continue
            sources = {score.rel} | {f"{score.rel} [{o.instrumentation}]" for o in pending}
            if not cfg.retry_failed and sources & failed_before:
                report.skipped += len(pending)
                continue
            for s in sources:
                manifest.clear_failure(s)
            tasks.append(ScoreTask(score, pending, str(out_dir), cfg.spec.to_dict(), cfg.max_seconds))
        n_outputs = sum(len(t.outputs) for t in tasks)
        log(f"corpus build: {len(tasks)} scores to render ({n_outputs} files), "
            f"{report.skipped} files already done or failed before, {cfg.jobs} workers")
        manifest.info.update({"seed": cfg.seed, "per_score": cfg.per_score, "max_works": cfg.max_works,
                              "collections": list(cfg.collections) if cfg.collections else None,
                              "soundfont": os.environ.get("MELSYNTH_SOUNDFONT", "FluidR3_GM.sf2"),
                              "mel_cache": [cfg.spec.key()]})

        bar = None
        if cfg.progress and n_outputs:
            from tqdm import tqdm

            bar = tqdm(total=n_outputs, unit="file", desc="corpus build", file=sys.stderr,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0)
        state = {"last_save": time.monotonic(), "hours": 0.0}

        def save(force: bool = False) -> None:
            if force or time.monotonic() - state["last_save"] > SAVE_EVERY_S:
                write_manifest(out_dir, manifest)
                state["last_save"] = time.monotonic()

        seen: dict[str, int] = {}     # outputs accounted for per score, for the progress bar

        def advance(task: ScoreTask, n: int) -> None:
            seen[task.score.rel] = seen.get(task.score.rel, 0) + n
            if bar is not None and n:
                bar.update(n)
                bar.set_postfix(hours=f"{state['hours']:.2f}", failed=len(report.failed), refresh=False)

        def on_message(task: ScoreTask, msg) -> None:
            if msg[0] == "file":
                entry = FileEntry.from_dict(msg[1])
                manifest.upsert(entry)
                report.rendered += 1
                state["hours"] += entry.duration / 3600
                advance(task, 1)
            else:
                _, source, reason = msg
                manifest.add_failure(source, reason)
                report.failed.append({"source": source, "reason": reason})
                # a whole-score failure settles its outputs in on_done
                advance(task, 0 if source == task.score.rel else 1)
            save()

        def on_failure(task: ScoreTask, reason: str) -> None:
            manifest.add_failure(task.score.rel, reason)
            report.failed.append({"source": task.score.rel, "reason": reason})
            on_done(task)
            save()

        def on_done(task: ScoreTask) -> None:
            advance(task, len(task.outputs) - seen.get(task.score.rel, 0))

        try:
            if tasks:
                pool = TimeoutPool(_worker_init, _worker_render, jobs=cfg.jobs, timeout_s=cfg.timeout_s,
                                   preload_modules=WORKER_MODULES + SCORE_MODULES)
                pool.run(tasks, on_message, on_failure, on_done)
        finally:
            if bar is not None:
                bar.close()
            report.wall_s = time.monotonic() - t_start
            manifest.info["last_build_wall_s"] = round(report.wall_s, 1)
            write_manifest(out_dir, manifest)
        report.summary = manifest.summary()
    return report


def print_report(report: BuildReport, out_dir: str, log=print) -> None:
    s = report.summary
    hours = s.get("hours", {})
    log(f"corpus in {out_dir}: {report.rendered} files rendered, {report.skipped} skipped, "
        f"{len(report.failed)} failed, {report.wall_s / 60:.1f} min")
    log("hours: " + ", ".join(f"{k} {v:.2f}" for k, v in hours.items())
        + f"; works: {s.get('works')}")
    if s.get("hours_by_instrumentation"):
        log("by instrumentation (h): " + ", ".join(
            f"{k} {v:.2f}" for k, v in s["hours_by_instrumentation"].items()))
    for f in report.failed:
        log(f"  failed: {f['source']}: {f['reason']}")
