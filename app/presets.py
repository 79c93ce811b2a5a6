"""Presets: what the player set up, as JSON, written atomically.

A preset holds the knob values (by direction name, in sigma), the current latent
point and the stored ones (A, B and one per MIDI note), the random walk, the
source, the loop length and the MIDI map::

    {
      "melsynth_preset": 1,
      "name": "Slow drift",
      "point":  {"seed": 7, "knobs": {"loudness": 0.5, "pc1": -1.0}},
      "points": {"A": POINT, "B": POINT, "notes": {"60": POINT, ...}},
      "morph": 0.0,
      "walk": {"speed": 0.2, "spread": 1.0},
      "glide_seconds": 0.3,
      "source": "latent" | "canvas" | "file",
      "file": "path/to/audio.flac" | null,
      "loop_seconds": 4.0,
      "midi_map": [{"channel": 0, "controller": 74, "knob": "brightness"}]
    }

    POINT = {"seed": int} | {"vector": [latent_size floats]}, plus "knobs": {name: sigma}

A point given by seed is the same vector on any bundle of the same latent size
(``latent_from_seed``), so factory presets stay small. Knob names a bundle does
not have are kept in the file but have no effect (the window says which).
Everything wrong in a file raises ``PresetError`` naming the file and the field.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from melsynth.app.midi import MidiMap
from melsynth.engine import WALK_SPEED, WALK_SPREAD, atomic_write_json

PRESET_VERSION = 1
SOURCES = ("latent", "canvas", "file")  # engine.stream.controls.SOURCES; "paint" is read as "canvas"
FACTORY_DIR = Path(__file__).resolve().parent / "factory_presets"
MAX_ABS_SIGMA = 10.0


class PresetError(ValueError):
    def __init__(self, path: str | os.PathLike | None, field_name: str, message: str):
        self.path = str(path) if path is not None else "<preset>"
        self.field = field_name
        super().__init__(f"{self.path}: {field_name}: {message}")


def latent_from_seed(seed: int, latent_size: int) -> np.ndarray:
    """The base latent vector of a seed, as the engine draws it: ``(latent_size,)`` float32."""
    from melsynth.engine import seeded_point

    return seeded_point(int(seed), latent_size).astype(np.float32)


@dataclass(frozen=True)
class LatentPoint:
    """A base vector (from ``seed``, or explicit ``vector``) plus knob offsets in sigma."""

    seed: int | None = 0
    vector: tuple[float, ...] | None = None
    knobs: dict[str, float] = field(default_factory=dict)

    def base(self, latent_size: int) -> np.ndarray:
        if self.vector is not None:
            v = np.asarray(self.vector, dtype=np.float32)
            if v.shape != (latent_size,):
                # A point saved with another bundle: keep what fits, pad with the seed-0 draw.
                out = latent_from_seed(self.seed or 0, latent_size)
                n = min(latent_size, v.size)
                out[:n] = v[:n]
                return out
            return v
        return latent_from_seed(self.seed or 0, latent_size)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.vector is not None:
            out["vector"] = [round(float(x), 6) for x in self.vector]
            if self.seed is not None:
                out["seed"] = self.seed
        else:
            out["seed"] = int(self.seed or 0)
        out["knobs"] = {k: round(float(v), 4) for k, v in self.knobs.items()}
        return out

    @classmethod
    def from_json(cls, obj: Any, path, where: str) -> "LatentPoint":
        if not isinstance(obj, dict):
            raise PresetError(path, where, f"expected an object, got {type(obj).__name__}")
        seed = obj.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise PresetError(path, f"{where}.seed", f"need a non-negative integer, got {seed!r}")
        vector = obj.get("vector")
        if vector is not None:
            if not isinstance(vector, list) or not vector or not all(_is_finite_number(x) for x in vector):
                raise PresetError(path, f"{where}.vector", "need a non-empty list of finite numbers")
            vector = tuple(float(x) for x in vector)
        if seed is None and vector is None:
            raise PresetError(path, where, "needs a 'seed' or a 'vector'")
        return cls(seed=seed, vector=vector, knobs=_knobs(obj.get("knobs", {}), path, f"{where}.knobs"))


def lerp_points(a: LatentPoint, b: LatentPoint, t: float, latent_size: int) -> LatentPoint:
    """The point a fraction ``t`` of the way from ``a`` to ``b`` (bases and knobs both linear).

    The latent vector is linear in base and knobs, so this is the straight line
    between the two latent vectors.
    """
    t = float(min(max(t, 0.0), 1.0))
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    base = (1 - t) * a.base(latent_size) + t * b.base(latent_size)
    names = set(a.knobs) | set(b.knobs)
    knobs = {n: (1 - t) * a.knobs.get(n, 0.0) + t * b.knobs.get(n, 0.0) for n in names}
    return LatentPoint(seed=None, vector=tuple(float(x) for x in base), knobs=knobs)


@dataclass(frozen=True)
class Preset:
    name: str = "Init"
    point: LatentPoint = field(default_factory=LatentPoint)
    point_a: LatentPoint | None = None
    point_b: LatentPoint | None = None
    note_points: dict[int, LatentPoint] = field(default_factory=dict)
    morph: float = 0.0
    walk_speed: float = WALK_SPEED
    walk_spread: float = WALK_SPREAD
    glide_seconds: float = 0.3
    source: str = "latent"
    file: str | None = None
    loop_seconds: float = 4.0
    midi_map: MidiMap = field(default_factory=MidiMap)

    def with_(self, **changes) -> "Preset":
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        points: dict[str, Any] = {}
        if self.point_a is not None:
            points["A"] = self.point_a.to_json()
        if self.point_b is not None:
            points["B"] = self.point_b.to_json()
        points["notes"] = {str(n): p.to_json() for n, p in sorted(self.note_points.items())}
        return {
            "melsynth_preset": PRESET_VERSION,
            "name": self.name,
            "point": self.point.to_json(),
            "points": points,
            "morph": round(self.morph, 4),
            "walk": {"speed": self.walk_speed, "spread": self.walk_spread},
            "glide_seconds": self.glide_seconds,
            "source": self.source,
            "file": self.file,
            "loop_seconds": self.loop_seconds,
            "midi_map": self.midi_map.to_json(),
        }

    @classmethod
    def from_json(cls, data: Any, path: str | os.PathLike | None = None) -> "Preset":
        if not isinstance(data, dict):
            raise PresetError(path, "preset", "top level must be an object")
        version = data.get("melsynth_preset")
        if version != PRESET_VERSION:
            raise PresetError(path, "melsynth_preset", f"unknown preset version {version!r}; "
                              f"this app reads {PRESET_VERSION}")
        name = data.get("name", Path(path).stem if path else "Preset")
        if not isinstance(name, str):
            raise PresetError(path, "name", "must be a string")
        point = LatentPoint.from_json(data.get("point", {"seed": 0}), path, "point")
        points = data.get("points", {})
        if not isinstance(points, dict):
            raise PresetError(path, "points", "expected an object")
        a = LatentPoint.from_json(points["A"], path, "points.A") if points.get("A") is not None else None
        b = LatentPoint.from_json(points["B"], path, "points.B") if points.get("B") is not None else None
        notes_raw = points.get("notes", {})
        if not isinstance(notes_raw, dict):
            raise PresetError(path, "points.notes", "expected an object keyed by MIDI note number")
        notes = {}
        for key, value in notes_raw.items():
            try:
                note = int(key)
            except ValueError:
                raise PresetError(path, f"points.notes.{key}", "key must be a MIDI note number") from None
            if not 0 <= note <= 127:
                raise PresetError(path, f"points.notes.{key}", "MIDI note must be 0..127")
            notes[note] = LatentPoint.from_json(value, path, f"points.notes.{key}")
        walk = data.get("walk", {})
        if not isinstance(walk, dict):
            raise PresetError(path, "walk", "expected an object")
        source = data.get("source", "latent")
        source = "canvas" if source == "paint" else source
        if source not in SOURCES:
            raise PresetError(path, "source", f"unknown source {source!r}; known: {', '.join(SOURCES)}")
        file = data.get("file")
        if file is not None and not isinstance(file, str):
            raise PresetError(path, "file", "must be a path string or null")
        try:
            midi_map = MidiMap.from_json(data.get("midi_map", []))
        except ValueError as exc:
            raise PresetError(path, "midi_map", str(exc)) from None
        return cls(
            name=name, point=point, point_a=a, point_b=b, note_points=notes,
            morph=_number(data.get("morph", 0.0), path, "morph", 0.0, 1.0),
            walk_speed=_number(walk.get("speed", WALK_SPEED), path, "walk.speed", 0.0, 1.0),
            walk_spread=_number(walk.get("spread", WALK_SPREAD), path, "walk.spread", 0.0, 8.0),
            glide_seconds=_number(data.get("glide_seconds", 0.3), path, "glide_seconds", 0.0, 10.0),
            source=source, file=file,
            loop_seconds=_number(data.get("loop_seconds", 4.0), path, "loop_seconds", 0.5, 60.0),
            midi_map=midi_map)


def save_preset(path: str | os.PathLike, preset: Preset) -> Path:
    """Write ``preset`` to ``path`` atomically (temp file, fsync, rename)."""
    return atomic_write_json(path, preset.to_json())


def load_preset(path: str | os.PathLike) -> Preset:
    path = Path(path)
    if not path.is_file():
        raise PresetError(path, "file", "does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PresetError(path, "file", f"invalid JSON: {exc}") from None
    return Preset.from_json(data, path)


def factory_presets() -> list[Path]:
    return sorted(FACTORY_DIR.glob("*.json"))


def user_preset_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "melsynth" / "presets"


# --------------------------------------------------------------------------- helpers
def _is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _number(x: Any, path, where: str, lo: float, hi: float) -> float:
    if not _is_finite_number(x) or not lo <= x <= hi:
        raise PresetError(path, where, f"need a number in [{lo}, {hi}], got {x!r}")
    return float(x)


def _knobs(obj: Any, path, where: str) -> dict[str, float]:
    if not isinstance(obj, dict):
        raise PresetError(path, where, "expected an object {direction name: sigma}")
    out = {}
    for name, value in obj.items():
        out[name] = _number(value, path, f"{where}.{name}", -MAX_ABS_SIGMA, MAX_ABS_SIGMA)
    return out
