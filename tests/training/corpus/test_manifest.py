"""manifest.json: round trip, clear errors, splits by work (disjoint, stable), the corpus lock."""
from __future__ import annotations

import json
import os

import pytest

from melsynth.training.corpus.manifest import (SPLITS, CorpusLock, FileEntry, Manifest, ManifestError,
                                               assign_splits, read_manifest, write_manifest)


def _entry(i: int, work: str, instr: str = "piano", seconds: float = 30.0) -> FileEntry:
    return FileEntry(path=f"audio/x/f{i}__{instr}.flac", duration=seconds, samples=int(seconds * 11025),
                     composer=work.split("/")[0], work=work, instrumentation=instr,
                     sha256=f"{i:064x}", source=f"{work}.mxl", extra={"performance": {"tempo_scale": 1.1}})


def test_round_trip_keeps_every_field(tmp_path):
    m = Manifest(files=[_entry(i, f"bach/w{i % 7}", ("piano", "organ")[i % 2], 10.0 + i) for i in range(20)],
                 failures=[{"source": "beethoven/opus133.mxl", "reason": "timed out after 300 s"}],
                 info={"seed": 3})
    write_manifest(tmp_path, m)
    back = read_manifest(tmp_path)
    assert back.to_dict() == m.to_dict()
    assert [e.to_dict() for e in sorted(back.files, key=lambda e: e.path)] == \
        [e.to_dict() for e in sorted(m.files, key=lambda e: e.path)]
    assert back.failures == m.failures and back.info == {"seed": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]   # no temp files left
    data = json.loads((tmp_path / "manifest.json").read_text())
    total = sum(10.0 + i for i in range(20)) / 3600
    assert data["summary"]["hours"]["total"] == pytest.approx(total, abs=1e-3)
    assert sum(data["summary"]["hours"][s] for s in SPLITS) == pytest.approx(total, abs=2e-3)
    assert set(data["files"][0]) >= {"path", "duration", "composer", "work", "instrumentation", "split", "sha256"}


def test_bad_manifests_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ManifestError, match="not a melsynth corpus"):
        read_manifest(tmp_path)
    good = Manifest(files=[_entry(0, "a/b")]).to_dict()
    good["files"][0]["split"] = "holdout"
    (tmp_path / "manifest.json").write_text(json.dumps(good))
    with pytest.raises(ManifestError, match="holdout"):
        read_manifest(tmp_path)


def test_splits_are_disjoint_by_work_and_about_90_5_5():
    files = [_entry(i, f"c{i % 13}/work{i // 2}", ("piano", "strings")[i % 2]) for i in range(1200)]
    split = assign_splits(files)
    seen: dict[str, set] = {}
    for e in files:
        seen.setdefault(e.work, set()).add(e.split)
    assert all(len(s) == 1 for s in seen.values())          # no work in two splits
    assert all(split[w] == next(iter(s)) for w, s in seen.items())
    n = len(split)
    for name, lo, hi in (("validation", 0.02, 0.09), ("test", 0.02, 0.09), ("train", 0.83, 0.96)):
        frac = sum(1 for s in split.values() if s == name) / n
        assert lo < frac < hi, (name, frac)


def test_adding_works_never_moves_existing_works():
    first = [_entry(i, f"w/{i}") for i in range(300)]
    before = assign_splits(first)
    more = first + [_entry(1000 + i, f"v/{i}") for i in range(300)]
    after = assign_splits(more)
    assert all(after[w] == s for w, s in before.items())


def test_tiny_corpus_still_has_every_split():
    for n in (3, 4, 6):
        files = [_entry(i, f"tiny{n}/{i}") for i in range(n)]
        assert set(assign_splits(files).values()) == set(SPLITS)
    two = [_entry(i, f"two/{i}") for i in range(2)]
    assert "train" in assign_splits(two).values()


def test_second_writer_is_refused_and_stale_lock_taken_over(tmp_path):
    with CorpusLock(tmp_path):
        with pytest.raises(ManifestError, match="another corpus build"):
            with CorpusLock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()
    # a lock left by a process that no longer exists is stale
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / ".lock").write_text(dead)
    with CorpusLock(tmp_path):
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
