"""corpus build: tiny ABC scores -> FLACs, manifest, splits by work, resume, failures, timeouts."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("music21")
pytest.importorskip("fluidsynth")

from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.training.corpus import cache
from melsynth.training.corpus.build import BuildConfig, build_corpus
from melsynth.training.corpus.demo import BROKEN_SCORE, DEMO_SCORES, write_demo_scores
from melsynth.training.corpus.manifest import SPLITS, read_manifest
from melsynth.training.corpus.render import soundfont_path

try:
    soundfont_path()
except Exception as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"no soundfont: {exc}", allow_module_level=True)


def _config(tmp, **kw) -> BuildConfig:
    return BuildConfig(out=str(tmp / "corpus"), score_root=str(tmp / "scores"), jobs=2,
                       per_score=2, timeout_s=60, progress=False, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    write_demo_scores(tmp / "scores", broken=True)
    cfg = _config(tmp)
    report = build_corpus(cfg, log=lambda *a: None)
    return tmp, cfg, report


def test_build_writes_11025_mono_flacs_with_manifest_fields(built):
    tmp, cfg, report = built
    manifest = read_manifest(cfg.out)
    assert report.rendered == 2 * len(DEMO_SCORES) == len(manifest.files)
    for e in manifest.files:
        path = tmp / "corpus" / e.path
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format) == (11025, 1, "FLAC")
        assert info.frames == e.samples and abs(e.duration - e.samples / 11025) < 1e-3
        import hashlib
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e.sha256
        assert e.split in SPLITS and e.composer == e.source.split("/")[0]
        audio, _ = sf.read(str(path), dtype="float32")
        # per-file level normalisation: loud parts at about -20 dBFS, peak under 0.9
        assert np.max(np.abs(audio)) <= 0.9 + 1e-4
        assert 0.03 < np.sqrt(np.mean(audio ** 2)) < 0.15
    # the two movements of mozart/k1 are one work
    works = {e.source: e.work for e in manifest.files}
    assert works["mozart/k1/movement1.abc"] == works["mozart/k1/movement2.abc"] == "mozart/k1"
    # two distinct instrumentations per score
    per_score: dict[str, set] = {}
    for e in manifest.files:
        per_score.setdefault(e.source, set()).add(e.instrumentation)
    assert all(len(v) == 2 for v in per_score.values())


def test_broken_score_listed_with_reason_and_build_goes_on(built):
    _tmp, cfg, report = built
    manifest = read_manifest(cfg.out)
    failures = {f["source"]: f["reason"] for f in manifest.failures}
    assert set(failures) == {BROKEN_SCORE[0]}
    assert "cannot parse" in failures[BROKEN_SCORE[0]]
    assert [f["source"] for f in report.failed] == [BROKEN_SCORE[0]]
    assert len(manifest.files) == 2 * len(DEMO_SCORES)      # the others all rendered


def test_splits_are_disjoint_by_work_and_summarised(built):
    _tmp, cfg, _ = built
    with open(os.path.join(cfg.out, "manifest.json")) as f:
        data = json.load(f)
    split_of_work: dict[str, set] = {}
    for f in data["files"]:
        split_of_work.setdefault(f["work"], set()).add(f["split"])
    assert all(len(s) == 1 for s in split_of_work.values())
    used = {next(iter(s)) for s in split_of_work.values()}
    assert used == set(SPLITS)          # 5 works: each split gets at least one
    hours = data["summary"]["hours"]
    for split in SPLITS:
        expect = sum(f["duration"] for f in data["files"] if f["split"] == split) / 3600
        assert hours[split] == pytest.approx(expect, abs=1e-3)


def test_mel_cache_built_during_build_matches_log_mel(built):
    tmp, cfg, _ = built
    spec = MelSpec()
    e = read_manifest(cfg.out).files[0]
    mel = cache.open_entry(cfg.out, spec, e.sha256)
    audio, _ = sf.read(str(tmp / "corpus" / e.path), dtype="float32")
    np.testing.assert_allclose(mel, log_mel(spec, audio), atol=1e-5)


def test_resume_skips_finished_files_and_renders_missing_ones(built, tmp_path):
    tmp, cfg, _ = built
    # Work on a copy so the module fixture stays intact.
    import shutil
    out = tmp_path / "corpus"
    shutil.copytree(cfg.out, out)
    cfg2 = BuildConfig(**{**cfg.__dict__, "out": str(out)})
    manifest = read_manifest(out)
    mtimes = {e.path: os.stat(out / e.path).st_mtime_ns for e in manifest.files}

    again = build_corpus(cfg2, log=lambda *a: None)
    assert again.rendered == 0 and again.failed == []
    assert again.skipped == 2 * (len(DEMO_SCORES) + 1)      # finished + failed-before outputs
    assert {e.path: os.stat(out / e.path).st_mtime_ns for e in read_manifest(out).files} == mtimes

    gone = sorted(mtimes)[0]
    os.unlink(out / gone)
    time.sleep(0.01)
    third = build_corpus(cfg2, log=lambda *a: None)
    assert third.rendered == 1
    after = read_manifest(out)
    assert {e.path for e in after.files} == set(mtimes)
    assert all(os.stat(out / p).st_mtime_ns == t for p, t in mtimes.items() if p != gone)


def test_max_works_and_seed_choose_reproducibly(tmp_path):
    from melsynth.training.corpus.build import plan_outputs, select_scores

    write_demo_scores(tmp_path / "scores", broken=False)
    cfg = _config(tmp_path, max_works=2, seed=3)
    a = select_scores(cfg)
    assert len({s.work for s in a}) == 2
    assert [s.rel for s in a] == [s.rel for s in select_scores(cfg)]
    assert [plan_outputs(s, cfg) for s in a] == [plan_outputs(s, cfg) for s in a]
    other = BuildConfig(**{**cfg.__dict__, "seed": 4})
    plans = {s.rel: plan_outputs(s, cfg) for s in select_scores(_config(tmp_path))}
    plans4 = {s.rel: plan_outputs(s, other) for s in select_scores(_config(tmp_path))}
    assert plans != plans4      # the seed changes instrumentation and/or performance
