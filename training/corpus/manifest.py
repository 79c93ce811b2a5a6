"""``manifest.json``: what a corpus folder holds, written atomically.

::

    {
      "format": "melsynth-corpus", "version": 1, "sample_rate": 11025,
      "files": [{"path": "audio/bach/bwv66.6__organ.flac",   # relative to the corpus folder
                 "duration": 24.0, "samples": 264600, "composer": "bach",
                 "work": "bach/bwv66.6", "instrumentation": "organ",
                 "split": "train", "sha256": "...", "source": "bach/bwv66.6.mxl",
                 "origin": "music21" | "added", ...}],
      "failures": [{"source": "...", "reason": "..."}],
      "summary": {"hours": {"train": h, "validation": h, "test": h, "total": h},
                  "files": {...}, "works": {...}}
    }

Splits are by work and stable: a work's split depends only on its name (a hash
mapped to [0, 1)), so adding files never moves a work to another split. Tiny
corpora get at least one work in each split (see ``assign_splits``).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from melsynth.engine.atomic import atomic_write_json
from melsynth.training.corpus.scores import stable_int

MANIFEST_FILE = "manifest.json"
FORMAT = "melsynth-corpus"
VERSION = 1
SPLITS = ("train", "validation", "test")
# Fractions of works (by hash): validation, then test, the rest train.
SPLIT_FRACTIONS = {"validation": 0.05, "test": 0.05}


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file."""


@dataclass
class FileEntry:
    """One audio file of the corpus."""

    path: str                   # relative to the corpus folder, '/'-separated
    duration: float             # seconds
    samples: int
    composer: str
    work: str
    instrumentation: str
    sha256: str
    source: str                 # score (music21 corpus path) or original audio file
    origin: str = "music21"     # "music21" (rendered) or "added" (ingested audio)
    split: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)   # performance parameters etc.

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> "FileEntry":
        try:
            entry = cls(**data)
        except TypeError as exc:
            raise ManifestError(f"{where}: bad file entry {data!r}: {exc}") from None
        if entry.split not in SPLITS:
            raise ManifestError(f"{where}: file {entry.path}: split {entry.split!r} not in {SPLITS}")
        return entry


@dataclass
class Manifest:
    sample_rate: int = 11025
    files: list[FileEntry] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)    # how it was built (seed, wall time...)

    # --- queries --------------------------------------------------------------------
    def by_path(self) -> dict[str, FileEntry]:
        return {e.path: e for e in self.files}

    def split_files(self, split: str) -> list[FileEntry]:
        if split not in SPLITS:
            raise ManifestError(f"unknown split {split!r}; expected one of {SPLITS}")
        return [e for e in self.files if e.split == split]

    def summary(self) -> dict[str, Any]:
        hours = {s: 0.0 for s in SPLITS}
        files = {s: 0 for s in SPLITS}
        works: dict[str, set[str]] = {s: set() for s in SPLITS}
        instr: dict[str, float] = {}
        for e in self.files:
            hours[e.split] += e.duration / 3600
            files[e.split] += 1
            works[e.split].add(e.work)
            instr[e.instrumentation] = instr.get(e.instrumentation, 0.0) + e.duration / 3600
        return {
            "hours": {**{s: round(h, 3) for s, h in hours.items()}, "total": round(sum(hours.values()), 3)},
            "files": {**files, "total": sum(files.values())},
            "works": {**{s: len(w) for s, w in works.items()}, "total": len(set().union(*works.values()))},
            "hours_by_instrumentation": {k: round(v, 3) for k, v in sorted(instr.items())},
            "failures": len(self.failures),
        }

    # --- mutation -------------------------------------------------------------------
    def upsert(self, entry: FileEntry) -> None:
        """Add ``entry``, replacing any entry with the same path."""
        self.files = [e for e in self.files if e.path != entry.path] + [entry]

    def add_failure(self, source: str, reason: str) -> None:
        self.failures = [f for f in self.failures if f["source"] != source]
        self.failures.append({"source": source, "reason": reason})

    def clear_failure(self, source: str) -> None:
        self.failures = [f for f in self.failures if f["source"] != source]

    # --- (de)serialisation ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        assign_splits(self.files)
        return {
            "format": FORMAT, "version": VERSION, "sample_rate": self.sample_rate,
            "summary": self.summary(),
            "info": self.info,
            "files": [e.to_dict() for e in sorted(self.files, key=lambda e: e.path)],
            "failures": sorted(self.failures, key=lambda f: f["source"]),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ManifestError(f"{where}: not a melsynth corpus manifest (format != {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ManifestError(f"{where}: manifest version {data.get('version')!r}, expected {VERSION}")
        files = [FileEntry.from_dict(f, where) for f in data.get("files", [])]
        failures = [dict(f) for f in data.get("failures", [])]
        return cls(sample_rate=int(data.get("sample_rate", 11025)), files=files, failures=failures,
                   info=dict(data.get("info", {})))


def manifest_path(corpus_dir: str | os.PathLike) -> Path:
    return Path(corpus_dir) / MANIFEST_FILE


def read_manifest(corpus_dir: str | os.PathLike) -> Manifest:
    """The corpus folder's manifest; ``FileNotFoundError``/``ManifestError`` naming the file."""
    path = manifest_path(corpus_dir)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no corpus manifest (build one with `melsynth corpus build`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from None
    return Manifest.from_dict(data, str(path))


def read_or_new(corpus_dir: str | os.PathLike) -> Manifest:
    path = manifest_path(corpus_dir)
    return read_manifest(corpus_dir) if path.exists() else Manifest()


def write_manifest(corpus_dir: str | os.PathLike, manifest: Manifest) -> Path:
    """Assign splits, then write atomically (a crash leaves the previous manifest)."""
    return atomic_write_json(manifest_path(corpus_dir), manifest.to_dict())


# --- splits -----------------------------------------------------------------------------

def work_unit(work: str) -> float:
    """The work's stable position in [0, 1)."""
    return stable_int("split:" + work) / 2.0 ** 63


def split_of_unit(u: float) -> str:
    v = SPLIT_FRACTIONS["validation"]
    if u < v:
        return "validation"
    if u < v + SPLIT_FRACTIONS["test"]:
        return "test"
    return "train"


def assign_splits(files: list[FileEntry]) -> dict[str, str]:
    """Set ``split`` on every entry by work; returns {work: split}.

    Each work goes where its hash falls. With 3 or more works, an empty split takes
    the train work whose hash lies nearest above its range, so a tiny corpus still
    has a validation and a test work (train keeps at least one).
    """
    works = sorted({e.work for e in files}, key=work_unit)
    split = {w: split_of_unit(work_unit(w)) for w in works}
    if len(works) >= 3:
        for name in ("validation", "test"):
            if name not in split.values():
                train = [w for w in works if split[w] == "train"]
                if len(train) > 1:
                    split[train[0]] = name
    for e in files:
        e.split = split[e.work]
    return split


# --- one writer at a time -----------------------------------------------------------------

class CorpusLock:
    """``with CorpusLock(dir):`` -- refuses a second build/add in the same folder.

    The lock file holds the owner's pid; a lock whose process is gone is stale and taken over.
    """

    def __init__(self, corpus_dir: str | os.PathLike):
        self.path = Path(corpus_dir) / ".lock"

    def __enter__(self) -> "CorpusLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid):
                    raise ManifestError(f"{self.path.parent}: another corpus build/add (pid {pid}) "
                                        f"is writing this folder") from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise ManifestError(f"{self.path}: cannot take the corpus lock")

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
