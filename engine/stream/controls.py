"""What a player controls, as immutable snapshots.

GUI and MIDI threads never mutate shared state: they build a new ``Controls``
(``dataclasses.replace`` or ``Controls.with_knob``) and hand it to
``Synth.set_controls``; the producer thread picks up the newest snapshot at its
next step. A frozen dataclass swap is one reference assignment, so it is atomic.

Values may be anything a float can hold: the latent point is sanitised where it
is used (``latent_point``), so NaN, inf or 1e300 from a broken MIDI mapping never
reach a model.

Latent point (``latent_size`` values, the prior's input)::

    base   = morph between point A and point B   (each: explicit vector, or N(0, 1) from a seed)
    s      = walk_spread
    z      = sqrt(max(0, 1 - s^2)) * base + s * walk_k + sum_i knobs[i] * sigma_i * direction_i
    walk_k = seeded Ornstein-Uhlenbeck walk with unit stationary spread, one step per latent step:
             walk_{k+1} = (1 - speed) walk_k + sqrt(1 - (1 - speed)^2) eps_k,  eps_k ~ N(0, 1)

The walk *replaces* part of the point rather than adding to it: for ``s <= 1``
every step's latent stays N(0, 1), what the prior was trained on (a point plus
a unit walk would be N(0, 2), and held mostly still). The prior learned music
from a fresh latent every step, so ``speed = 1, s = 1`` is its own training
distribution, where it plays notes that start and stop; a held point (``s = 0``)
makes a steady sound. The knobs shift every step alike, as their directions
were fitted and verified (``training.prior.direction_fit``). ``s > 1`` wanders
further than the prior has seen (the base point then no longer counts).

A prior with a phrase latent (the bundle's ``phrase_size``: its last inputs are
drawn once per phrase in training) gets those inputs walked ``PHRASE_WALK_RATE``
times slower, so the loudness, register or instrument they hold changes over
seconds while the notes change every step::

    inputs        0 .. latent - phrase - 1       latent - phrase .. latent - 1
    walk speed    speed                          speed * PHRASE_WALK_RATE
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

SOURCES = ("latent", "canvas", "file")
Z_LIMIT = 8.0  # |z| per element after sanitising: far outside any trained N(0, 1) prior
# Defaults of render, play and the app. The two-level prior's front makes the phrases from fresh
# noise, so the walk feeds it a fresh step each time (speed 1), and a 0.31 share of the held point
# (spread 0.95) keeps the seed, morph and knobs audible. Measured by benchmarks/walk_settings.py
# (docs/benchmarks.md): over seeds 1-4 its renders pass every musical figure (onsets, flatness,
# contrast, chroma movement), as do slower walks; spread 1 no longer hears the point.
WALK_SPEED, WALK_SPREAD = 1.0, 0.95
# The phrase part of the walk moves 32 times slower: at speed 1 its correlation falls to 1/e in
# 32 steps (12 s), about a phrase; a training window (28 steps) holds it still.
PHRASE_WALK_RATE = 1.0 / 32.0
WALK_STREAM = 1  # the walk's noise: the seed's stream 1 (``seeded_point`` is stream 0, the plain seed)


def _float(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


@dataclass(frozen=True)
class Controls:
    """One snapshot of every player control.

    knobs:        offset along each bundle direction, in that direction's sigma (missing = 0)
    seed:         seed of latent point A (used when ``point_a`` is None)
    point_a:      explicit latent point A (e.g. from a preset), overrides ``seed``
    seed_b, point_b: latent point B; None and None = no B (morph ignored)
    morph:        0 = A, 1 = B
    walk_speed:   0 = still .. 1 = a fresh random point every latent step
    walk_spread:  share of the latent that walks (0 = held point, 1 = all of it; > 1 wilder)
    walk_seed:    seed of the walk's noise
    source:       "latent" | "canvas" | "file"
    gain:         linear output gain (before the limiter)
    """

    knobs: tuple[float, ...] = ()
    seed: int = 0
    point_a: tuple[float, ...] | None = None
    seed_b: int | None = None
    point_b: tuple[float, ...] | None = None
    morph: float = 0.0
    walk_speed: float = 0.0
    walk_spread: float = 0.0
    walk_seed: int = 0
    source: str = "latent"
    gain: float = 1.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; known: {', '.join(SOURCES)}")
        # tuples, so snapshots stay hashable and immutable whatever the caller passed
        object.__setattr__(self, "knobs", tuple(self.knobs))
        for name in ("point_a", "point_b"):
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, tuple(float(x) for x in np.asarray(v, dtype=np.float64).ravel()))

    def with_knob(self, index: int, value: float) -> "Controls":
        knobs = list(self.knobs) + [0.0] * max(0, index + 1 - len(self.knobs))
        knobs[index] = value
        return dataclasses.replace(self, knobs=tuple(knobs))

    def replace(self, **changes) -> "Controls":
        return dataclasses.replace(self, **changes)

    def latent_equal(self, other: "Controls") -> bool:
        """Same latent point (everything but source and gain)."""
        return dataclasses.replace(self, source="latent", gain=1.0) == dataclasses.replace(
            other, source="latent", gain=1.0)

    @property
    def safe_gain(self) -> float:
        return min(max(_float(self.gain, 0.0), 0.0), 16.0)

    @property
    def safe_morph(self) -> float:
        return min(max(_float(self.morph, 0.0), 0.0), 1.0)

    @property
    def safe_walk_speed(self) -> float:
        return min(max(_float(self.walk_speed, 0.0), 0.0), 1.0)

    @property
    def safe_walk_spread(self) -> float:
        return min(max(_float(self.walk_spread, 0.0), 0.0), Z_LIMIT)


def seeded_point(seed: int, latent_size: int) -> np.ndarray:
    """``(latent_size,)`` float64 N(0, 1) point from an integer seed."""
    try:
        s = int(seed) & 0xFFFFFFFFFFFFFFFF
    except (TypeError, ValueError, OverflowError):
        s = 0
    return np.random.default_rng(s).standard_normal(latent_size)


def _vector(point: Sequence[float] | None, seed: int | None, latent_size: int) -> np.ndarray:
    if point is not None:
        v = np.zeros(latent_size, dtype=np.float64)
        p = np.asarray(point, dtype=np.float64)[:latent_size]
        v[: p.size] = p
        return v
    return seeded_point(seed or 0, latent_size)


def sanitize_latent(z: np.ndarray) -> np.ndarray:
    """NaN -> 0, +-inf and huge -> +-Z_LIMIT; float32."""
    z = np.asarray(z)
    if z.dtype.kind == "f" and z.size and float(np.abs(z).max()) <= Z_LIMIT:  # NaN fails: careful path
        return z.astype(np.float32)
    z = np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0, posinf=Z_LIMIT, neginf=-Z_LIMIT)
    return np.clip(z, -Z_LIMIT, Z_LIMIT).astype(np.float32)


def base_point(controls: Controls, latent_size: int) -> np.ndarray:
    """Point A, or the morph of A and B (norm interpolated, so the middle is not a quiet shrunk point)."""
    key = (controls.point_a, controls.seed, controls.point_b, controls.seed_b, controls.safe_morph, latent_size)
    try:
        return _cached_base_point(*key).copy()
    except TypeError:  # an unhashable seed (a list from a broken preset): compute it uncached
        return _base_point(*key)


def _base_point(point_a, seed, point_b, seed_b, morph: float, latent_size: int) -> np.ndarray:
    a = sanitize_latent(_vector(point_a, seed, latent_size)).astype(np.float64)
    if point_b is None and seed_b is None:
        return a
    b = sanitize_latent(_vector(point_b, seed_b, latent_size)).astype(np.float64)
    mix = (1.0 - morph) * a + morph * b
    norm = float(np.linalg.norm(mix))
    target = (1.0 - morph) * float(np.linalg.norm(a)) + morph * float(np.linalg.norm(b))
    return mix * (target / norm) if norm > 1e-9 else mix


# A knob move re-runs the prior with the same base point, and drawing a seeded point (a new
# Generator) cost more than the rest of the latent arithmetic together.
_cached_base_point = functools.lru_cache(maxsize=32)(_base_point)


def latent_point(controls: Controls, directions: Sequence, latent_size: int,
                 walk: np.ndarray | None = None) -> np.ndarray:
    """The prior's input for one latent step: ``(latent_size,)`` float32, always finite.

    ``directions``: the bundle's ``Direction`` objects (unit ``vector`` and ``sigma``).
    ``walk``: the unit-spread walk offset of this step (``RandomWalk.offset``), or None.
    """
    with np.errstate(all="ignore"):
        spread = controls.safe_walk_spread
        z = base_point(controls, latent_size)
        if walk is not None and spread > 0:
            z = math.sqrt(max(0.0, 1.0 - spread * spread)) * z + spread * walk
        for value, d in zip(controls.knobs, directions):
            v = _float(value, 0.0)
            if v:
                z = z + np.clip(v, -1e6, 1e6) * float(d.sigma) * np.asarray(d.vector, dtype=np.float64)
        return sanitize_latent(z)


class RandomWalk:
    """Seeded unit-spread Ornstein-Uhlenbeck walk in latent space, one step per latent step.

    Deterministic given the seed and the sequence of ``advance``/``reseed`` calls, which a
    streamed session and its offline replay make at the same latent steps.
    """

    def __init__(self, latent_size: int, seed: int = 0, phrase_size: int = 0):
        if not 0 <= phrase_size < max(latent_size, 1):
            raise ValueError(f"phrase_size={phrase_size} must be in [0, latent_size={latent_size})")
        self.latent_size = latent_size
        self.phrase_size = phrase_size
        self.step_index = 0
        self.reseed(seed)
        # start where the walk would be after a long time (unit spread), not at the point
        self.offset = self._rng.standard_normal(latent_size)

    def reseed(self, seed: int) -> None:
        """New noise from here on; the walk continues from where it is."""
        self.seed = seed
        try:
            s = int(seed) & 0xFFFFFFFFFFFFFFFF
        except (TypeError, ValueError, OverflowError):
            s = 0
        # Its own stream, not the one ``seeded_point`` draws from: a walk seeded like its point
        # (``render --seed``) would otherwise start at the point, and ``sqrt(1 - s^2) point + s walk``
        # would be 1.3 point, not N(0, 1), until the walk had moved off (seconds, for the phrase part).
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([s, WALK_STREAM])))

    def snapshot(self) -> tuple:
        """Where the walk is (offset, step, seed, noise state): ``restore`` goes back to it."""
        return self.offset.copy(), self.step_index, self.seed, self._rng.bit_generator.state

    def restore(self, snap: tuple) -> None:
        """Back to ``snap``; a reseed since then is kept (the noise starts afresh from the new seed,
        as it would have had the reseed come first)."""
        offset, step_index, seed, noise = snap
        self.offset = offset.copy()
        self.step_index = step_index
        if seed == self.seed:
            self._rng.bit_generator.state = noise
        else:
            self.reseed(self.seed)

    def advance(self, speed: float) -> np.ndarray:
        if speed > 0:
            eps = self._rng.standard_normal(self.latent_size)
            keep = 1.0 - speed
            offset = keep * self.offset + math.sqrt(max(0.0, 1.0 - keep * keep)) * eps
            if self.phrase_size:
                p = self.phrase_size
                keep = 1.0 - speed * PHRASE_WALK_RATE
                offset[-p:] = keep * self.offset[-p:] + math.sqrt(max(0.0, 1.0 - keep * keep)) * eps[-p:]
            self.offset = offset
        self.step_index += 1
        return self.offset
