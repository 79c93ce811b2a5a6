r"""The player's latent state, turned into engine ``Controls`` snapshots (no Qt, no I/O).

What the window shows and what the engine plays come from one place::

    knobs {name: sigma}                   --\
    base: LatentPoint (seed | vector)     ---\
    A/B stored points + morph t           ---+--> Controls(knobs, seed | point_a, seed_b | point_b,
    glide (note-on / recall)              --/              morph, walk_*, source, gain)

- A stored point is a base (seed or explicit vector) plus knob values.
- Morph (A/B slider): the engine morphs the bases (``point_a``/``point_b``,
  ``morph``); the knobs are interpolated here and shown on the dials.
- Glide (note-on, recall): the engine morphs from the base heard now (as an
  explicit vector) to the target's base while ``morph`` rises 0 -> 1 along a
  smoothstep over ``glide_seconds``; knobs follow the same curve. The engine
  also interpolates between latent steps, so even a glide of 0 does not click.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from melsynth.app.midi import MidiMap
from melsynth.app.presets import LatentPoint, Preset
from melsynth.engine import WALK_SPEED, WALK_SPREAD, Controls, base_point

SOURCE_LABELS = {"latent": "Latent", "canvas": "Paint", "file": "File"}


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class Glide:
    start_time: float
    seconds: float
    from_vector: tuple[float, ...]
    from_knobs: dict[str, float]
    target: LatentPoint

    def progress(self, now: float) -> float:
        if self.seconds <= 0:
            return 1.0
        return smoothstep((now - self.start_time) / self.seconds)


class Performance:
    """Mutable state of one playing session; ``controls(now)`` is the snapshot for the engine."""

    def __init__(self, knob_names: Sequence[str] = (), latent_size: int = 0):
        self.knob_names: list[str] = list(knob_names)
        self.latent_size = latent_size
        self.knobs: dict[str, float] = {n: 0.0 for n in self.knob_names}
        self.extra_knobs: dict[str, float] = {}  # preset values for directions this bundle lacks
        self.base = LatentPoint(seed=0)
        self.point_a: LatentPoint | None = None
        self.point_b: LatentPoint | None = None
        self.morph: float | None = None  # None: not morphing; else 0..1 between A and B
        self.notes: dict[int, LatentPoint] = {}
        self.walk_speed = WALK_SPEED
        self.walk_spread = WALK_SPREAD
        self.walk_seed = 0
        self.glide_seconds = 0.3
        self.glide: Glide | None = None
        self.source = "latent"
        self.file: str | None = None
        self.loop_seconds = 4.0
        self.gain = 1.0
        self.midi_map = MidiMap()
        self.name = "Init"

    # bundle ---------------------------------------------------------------------
    def set_bundle_shape(self, knob_names: Sequence[str], latent_size: int) -> None:
        """A new bundle: keep values of knobs with the same names."""
        old = {**self.extra_knobs, **self.knobs}
        self.knob_names = list(knob_names)
        self.latent_size = latent_size
        self.knobs = {n: old.get(n, 0.0) for n in self.knob_names}
        self.extra_knobs = {n: v for n, v in old.items() if n not in self.knobs}

    # knobs ----------------------------------------------------------------------
    def set_knob(self, name: str, sigma: float) -> None:
        if name in self.knobs:
            self.knobs[name] = float(sigma)

    # points ---------------------------------------------------------------------
    @property
    def seed(self) -> int | None:
        """The seed of what is heard, or None while morphing/gliding or at an explicit vector."""
        if self.morph is not None or self.glide is not None or self.base.vector is not None:
            return None
        return self.base.seed

    def new_point(self, seed: int | None = None) -> int:
        seed = random.SystemRandom().randrange(0, 2**31 - 1) if seed is None else int(seed)
        self.base = LatentPoint(seed=seed)
        self.morph = None
        self.glide = None
        return seed

    def current_point(self, now: float = 0.0) -> LatentPoint:
        """What is heard now, as a storable point (explicit vector unless it is a plain seed)."""
        if self.seed is not None:
            return LatentPoint(seed=self.seed, knobs=dict(self.knobs))
        vec = self.base_vector(now)
        return LatentPoint(seed=None, vector=tuple(float(x) for x in vec), knobs=dict(self.knobs))

    def base_vector(self, now: float = 0.0) -> np.ndarray:
        return base_point(self.controls(now), self.latent_size)

    def store(self, slot: str, now: float = 0.0) -> LatentPoint:
        point = self.current_point(now)
        if slot == "A":
            self.point_a = point
        elif slot == "B":
            self.point_b = point
        else:
            raise ValueError(f"unknown slot {slot!r}")
        return point

    def store_note(self, note: int, now: float = 0.0) -> LatentPoint:
        point = self.current_point(now)
        self.notes[int(note)] = point
        return point

    def recall(self, slot: str, now: float) -> bool:
        point = {"A": self.point_a, "B": self.point_b}.get(slot)
        if point is None:
            return False
        self.glide_to(point, now)
        return True

    def note_on(self, note: int, now: float) -> bool:
        point = self.notes.get(int(note))
        if point is None:
            return False
        self.glide_to(point, now)
        return True

    def glide_to(self, target: LatentPoint, now: float) -> None:
        from_vector = tuple(float(x) for x in self.base_vector(now))
        self.finish_glide_if_done(now)
        self.glide = Glide(now, self.glide_seconds, from_vector, dict(self.knobs), target)
        self.morph = None
        self.tick(now)

    def set_morph(self, t: float) -> bool:
        """Between stored A and B; False (and nothing changes) until both are stored."""
        if self.point_a is None or self.point_b is None:
            return False
        self.glide = None
        self.morph = float(min(max(t, 0.0), 1.0))
        for name in self.knob_names:
            a, b = self.point_a.knobs.get(name, 0.0), self.point_b.knobs.get(name, 0.0)
            self.knobs[name] = (1 - self.morph) * a + self.morph * b
        return True

    def tick(self, now: float) -> bool:
        """Advance a glide; True while one is running (the window then keeps sending snapshots)."""
        if self.glide is None:
            return False
        p = self.glide.progress(now)
        for name in self.knob_names:
            a = self.glide.from_knobs.get(name, 0.0)
            b = self.glide.target.knobs.get(name, 0.0)
            self.knobs[name] = (1 - p) * a + p * b
        return not self.finish_glide_if_done(now)

    def finish_glide_if_done(self, now: float) -> bool:
        if self.glide is not None and self.glide.progress(now) >= 1.0:
            target = self.glide.target
            self.base = LatentPoint(seed=target.seed, vector=target.vector)
            for name in self.knob_names:
                self.knobs[name] = target.knobs.get(name, 0.0)
            self.glide = None
            return True
        return False

    # snapshot -------------------------------------------------------------------
    def controls(self, now: float = 0.0) -> Controls:
        knobs = tuple(float(self.knobs.get(n, 0.0)) for n in self.knob_names)
        common = dict(knobs=knobs, walk_speed=self.walk_speed, walk_spread=self.walk_spread,
                      walk_seed=self.walk_seed, source=self.source, gain=self.gain)
        if self.glide is not None:
            t = self.glide.target
            return Controls(seed=0, point_a=self.glide.from_vector, seed_b=t.seed if t.vector is None else None,
                            point_b=t.vector, morph=self.glide.progress(now), **common)
        if self.morph is not None and self.point_a is not None and self.point_b is not None:
            a, b = self.point_a, self.point_b
            return Controls(seed=a.seed or 0, point_a=a.vector, seed_b=b.seed if b.vector is None else None,
                            point_b=b.vector, morph=self.morph, **common)
        return Controls(seed=self.base.seed or 0, point_a=self.base.vector, **common)

    # presets --------------------------------------------------------------------
    def to_preset(self, name: str | None = None, now: float = 0.0) -> Preset:
        self.finish_glide_if_done(now)
        knobs = {**self.extra_knobs, **self.knobs}
        point = dataclasses.replace(self.current_point(now), knobs=knobs)
        return Preset(name=name or self.name, point=point, point_a=self.point_a, point_b=self.point_b,
                      note_points=dict(self.notes), morph=self.morph or 0.0, walk_speed=self.walk_speed,
                      walk_spread=self.walk_spread, glide_seconds=self.glide_seconds, source=self.source,
                      file=self.file, loop_seconds=self.loop_seconds,
                      midi_map=MidiMap(self.midi_map.bindings))

    def apply_preset(self, preset: Preset) -> list[str]:
        """Take over everything in ``preset``; -> knob names it has that this bundle lacks."""
        self.name = preset.name
        self.base = LatentPoint(seed=preset.point.seed, vector=preset.point.vector)
        self.knobs = {n: float(preset.point.knobs.get(n, 0.0)) for n in self.knob_names}
        self.extra_knobs = {n: v for n, v in preset.point.knobs.items() if n not in self.knobs}
        self.point_a, self.point_b = preset.point_a, preset.point_b
        self.notes = dict(preset.note_points)
        self.morph = None
        self.glide = None
        if preset.morph > 0 and self.point_a is not None and self.point_b is not None:
            self.morph = preset.morph
        self.walk_speed, self.walk_spread = preset.walk_speed, preset.walk_spread
        self.glide_seconds = preset.glide_seconds
        self.source, self.file, self.loop_seconds = preset.source, preset.file, preset.loop_seconds
        self.midi_map = MidiMap(preset.midi_map.bindings)
        return sorted(self.extra_knobs)
