"""Scores from music21's bundled corpus -> timed MIDI note events with explicit instruments.

music21 ships ~3,200 works in its wheel, so any machine with PyPI can build the
corpus. A *score* is one file (a chorale, a quartet movement); a *work* groups
the movements of one composition so that the train/validation/test split never
puts two movements of the same quartet on both sides::

    beethoven/opus18no1/movement3.mxl   -> work "beethoven/opus18no1"
    bach/bwv112.5-sc.mxl                -> work "bach/bwv112.5"
    monteverdi/madrigal.3.1.mxl         -> work "monteverdi/madrigal.3.1"

music21 writes the instruments each score names (often none: every part a
piano), so the renderer ignores them and an ``Instrumentation`` assigns a
General MIDI program to each part, top voice first.

music21 is imported inside functions: the CLI registers without it.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ScoreError(RuntimeError):
    """A score that cannot be turned into notes (the reason is the message)."""


# --- instrumentations ---------------------------------------------------------------

@dataclass(frozen=True)
class Instrumentation:
    """General MIDI programs for a score's parts, top voice first.

    A score with more parts than ``programs`` repeats the last program (the
    lowest instrument doubles the extra bass parts).
    """

    name: str
    programs: tuple[int, ...]

    def program_for_part(self, part: int, n_parts: int) -> int:
        # Spread the voices over the ensemble: with 2 parts use top and bottom.
        if n_parts <= 1:
            return self.programs[0]
        if n_parts < len(self.programs):
            idx = round(part * (len(self.programs) - 1) / (n_parts - 1))
        else:
            idx = min(part, len(self.programs) - 1)
        return self.programs[idx]


# GM program numbers (0-based): 0 acoustic grand, 6 harpsichord, 19 church organ,
# 40 violin, 41 viola, 42 cello, 43 contrabass, 52 choir aahs, 56 trumpet,
# 57 trombone, 58 tuba, 60 french horn, 68 oboe, 70 bassoon, 71 clarinet, 73 flute,
# 24 nylon guitar.
INSTRUMENTATIONS: dict[str, Instrumentation] = {
    ins.name: ins for ins in (
        Instrumentation("piano", (0,)),
        Instrumentation("strings", (40, 40, 41, 42, 43)),
        Instrumentation("organ", (19,)),
        Instrumentation("harpsichord", (6,)),
        Instrumentation("woodwinds", (73, 68, 71, 70)),
        Instrumentation("brass", (56, 60, 57, 58)),
        Instrumentation("choir", (52,)),
        Instrumentation("guitar", (24,)),
    )
}


def choose_instrumentations(seed: int, work_source: str, count: int) -> tuple[str, ...]:
    """``count`` distinct instrumentation names for one score, reproducible from the seed."""
    names = sorted(INSTRUMENTATIONS)
    rng = np.random.default_rng([seed, stable_int(work_source)])
    return tuple(names[i] for i in rng.permutation(len(names))[:count])


def stable_int(text: str) -> int:
    """A 63-bit integer from text, the same on every run and machine (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


# --- the score list -------------------------------------------------------------------

# Collections of the music21 corpus that are not concert music for this purpose:
# monophonic folk-tune books (one file holds hundreds of tunes), test/demo files,
# lead sheets (chord symbols), and Palestrina's 1,318 mass movements (opt in
# with ``collections``: they would double the build).
EXCLUDED_COLLECTIONS = frozenset({
    "airdsAirs", "essenFolksong", "miscFolk", "nottingham-dataset", "oneills1850",
    "ryansMammoth", "demos", "theoryExercises", "leadSheet", "palestrina",
})
# Roman-numeral analyses (.rntxt) are not scores. Same piece in two formats:
# keep the first of this order.
SCORE_EXTENSIONS = (".mxl", ".musicxml", ".xml", ".krn", ".abc")


@dataclass(frozen=True)
class ScoreSource:
    """One score file of the music21 corpus."""

    rel: str            # path inside music21's corpus folder, '/'-separated
    path: str           # absolute path
    composer: str
    work: str

    @property
    def slug(self) -> str:
        """File-name-safe name for outputs: ``beethoven/opus18no1/movement1.mxl`` ->
        ``opus18no1-movement1``."""
        stem = self.rel.rsplit(".", 1)[0]
        stem = stem.split("/", 1)[1] if "/" in stem else stem
        return re.sub(r"[^A-Za-z0-9._-]+", "_", stem.replace("/", "-"))


def music21_corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


def work_of(rel: str) -> str:
    """Group movements into works (see module docstring)."""
    parts = rel.split("/")
    if len(parts) >= 3:           # composer/work/movement.ext
        return "/".join(parts[:2])
    stem = parts[-1].rsplit(".", 1)[0]
    stem = re.sub(r"-[A-Za-z0-9]{1,3}$", "", stem)   # bwv112.5-sc, bwv120.8-a: variants of one work
    return f"{parts[0]}/{stem}" if len(parts) == 2 else stem


def list_scores(collections: tuple[str, ...] | None = None,
                root: Path | None = None) -> list[ScoreSource]:
    """The score files of the corpus, sorted, one format per piece.

    ``collections``: top-level folders to take (default: all but
    ``EXCLUDED_COLLECTIONS``).
    """
    root = Path(root) if root is not None else music21_corpus_root()
    by_piece: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            ext = os.path.splitext(name)[1].lower()
            if ext not in SCORE_EXTENSIONS:
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if "/" not in rel:
                continue
            top = rel.split("/", 1)[0]
            if collections is not None:
                if top not in collections:
                    continue
            elif top in EXCLUDED_COLLECTIONS or top.startswith(("_", ".")):
                continue
            piece = rel.rsplit(".", 1)[0]
            old = by_piece.get(piece)
            if old is None or SCORE_EXTENSIONS.index(ext) < SCORE_EXTENSIONS.index(
                    os.path.splitext(old)[1].lower()):
                by_piece[piece] = rel
    return [ScoreSource(rel=rel, path=str(root / rel), composer=rel.split("/", 1)[0], work=work_of(rel))
            for rel in sorted(by_piece.values())]


# --- score -> note events ---------------------------------------------------------------

@dataclass(frozen=True)
class ScoreNotes:
    """The notes of a score in seconds, one array per part (top part first).

    ``parts[i]`` is ``(n, 4)`` float64: onset_s, offset_s, midi pitch, velocity (1..127).
    """

    parts: tuple[np.ndarray, ...]
    part_names: tuple[str, ...]

    @property
    def duration(self) -> float:
        ends = [p[:, 1].max() for p in self.parts if len(p)]
        return float(max(ends)) if ends else 0.0

    @property
    def n_notes(self) -> int:
        return int(sum(len(p) for p in self.parts))

    def varied(self, tempo_scale: float, velocity_scale: float, velocity_jitter: float,
               rng: np.random.Generator) -> "ScoreNotes":
        """A performance: time stretched by ``1 / tempo_scale``, velocities scaled and jittered."""
        out = []
        for p in self.parts:
            q = p.copy()
            q[:, :2] /= tempo_scale
            vel = q[:, 3] * velocity_scale + rng.normal(0.0, velocity_jitter, size=len(q))
            q[:, 3] = np.clip(np.round(vel), 1, 127)
            out.append(q)
        return ScoreNotes(tuple(out), self.part_names)


def parse_score(path: str | os.PathLike) -> "object":
    """music21 Score of a file; ``ScoreError`` with music21's reason if it cannot be read."""
    from music21 import converter

    try:
        return converter.parse(str(path))
    except Exception as exc:  # music21 raises many types for malformed files
        raise ScoreError(f"cannot parse {path}: {type(exc).__name__}: {exc}") from exc


def score_notes(score) -> ScoreNotes:
    """music21 Score -> ``ScoreNotes`` via music21's own MIDI translation.

    The MIDI translation expands repeats and realises dynamics into velocities;
    tempo changes of the conductor track apply to all parts.
    """
    from music21.midi import translate

    try:
        mf = translate.streamToMidiFile(score)
    except Exception as exc:
        if "repeat" not in str(exc):
            raise ScoreError(f"MIDI translation failed: {type(exc).__name__}: {exc}") from exc
        # Badly formed repeats (music21 cannot expand them): play the score through once.
        strip_repeats(score)
        try:
            mf = translate.streamToMidiFile(score)
        except Exception as exc2:
            raise ScoreError(f"MIDI translation failed even without repeats: "
                             f"{type(exc2).__name__}: {exc2} (first: {exc})") from exc2
    return midi_tracks_to_notes(mf.tracks, mf.ticksPerQuarterNote)


def strip_repeats(score) -> None:
    """Remove repeat barlines, volta brackets and repeat expressions (in place)."""
    from music21 import bar, repeat, spanner, stream

    for m in score.recurse().getElementsByClass(stream.Measure):
        if isinstance(m.leftBarline, bar.Repeat):
            m.leftBarline = None
        if isinstance(m.rightBarline, bar.Repeat):
            m.rightBarline = None
    for el in list(score.recurse().getElementsByClass((repeat.RepeatExpression, spanner.RepeatBracket))):
        site = el.activeSite
        if site is not None:
            site.remove(el)
    for sp in list(score.spannerBundle.getByClass(spanner.RepeatBracket)):
        score.spannerBundle.remove(sp)


def _tempo_map(tracks) -> tuple[np.ndarray, np.ndarray]:
    """(ticks, microseconds-per-quarter) of every tempo change, sorted; 120 bpm at tick 0."""
    changes = {0: 500000}
    for track in tracks:
        tick = 0
        for ev in track.events:
            if ev.isDeltaTime():
                tick += ev.time or 0
            elif ev.type is not None and getattr(ev.type, "name", "") == "SET_TEMPO":
                data = ev.data if isinstance(ev.data, (bytes, bytearray)) else bytes(ev.data)
                if len(data) >= 3:
                    mpq = int.from_bytes(data[:3], "big")
                    if mpq > 0:
                        changes[tick] = mpq
    ticks = np.array(sorted(changes), dtype=np.int64)
    return ticks, np.array([changes[t] for t in ticks], dtype=np.float64)


def midi_tracks_to_notes(tracks, ticks_per_quarter: int) -> ScoreNotes:
    """music21 ``MidiTrack`` list -> ``ScoreNotes`` (one part per track with notes)."""
    tempo_ticks, tempo_mpq = _tempo_map(tracks)
    # Seconds at each tempo change, to convert ticks piecewise-linearly.
    seg_seconds = np.diff(tempo_ticks) * tempo_mpq[:-1] / 1e6 / ticks_per_quarter
    tempo_seconds = np.concatenate([[0.0], np.cumsum(seg_seconds)])

    def to_seconds(ticks: np.ndarray) -> np.ndarray:
        i = np.searchsorted(tempo_ticks, ticks, side="right") - 1
        return tempo_seconds[i] + (ticks - tempo_ticks[i]) * tempo_mpq[i] / 1e6 / ticks_per_quarter

    parts, names = [], []
    for track in tracks:
        tick = 0
        open_notes: dict[int, list[tuple[int, int]]] = {}
        notes: list[tuple[int, int, int, int]] = []
        name = ""
        for ev in track.events:
            if ev.isDeltaTime():
                tick += ev.time or 0
                continue
            kind = getattr(ev.type, "name", "")
            if kind == "SEQUENCE_TRACK_NAME" and ev.data:
                name = bytes(ev.data).decode("utf-8", "replace")
            elif kind == "NOTE_ON" and ev.velocity:
                open_notes.setdefault(ev.pitch, []).append((tick, ev.velocity))
            elif kind == "NOTE_OFF" or (kind == "NOTE_ON" and not ev.velocity):
                stack = open_notes.get(ev.pitch)
                if stack:
                    start, vel = stack.pop(0)
                    if tick > start:
                        notes.append((start, tick, ev.pitch, vel))
        if not notes:
            continue
        arr = np.array(notes, dtype=np.float64)
        arr[:, 0] = to_seconds(arr[:, 0].astype(np.int64))
        arr[:, 1] = to_seconds(arr[:, 1].astype(np.int64))
        parts.append(arr[np.argsort(arr[:, 0], kind="stable")])
        names.append(name)
    if not parts:
        raise ScoreError("score has no notes")
    return ScoreNotes(tuple(parts), tuple(names))


def load_score_notes(path: str | os.PathLike) -> ScoreNotes:
    """Parse a score file and translate it to notes (``ScoreError`` on failure)."""
    return score_notes(parse_score(path))
