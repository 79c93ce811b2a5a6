"""Commands to the pipeline: immutable messages from other threads (GUI, MIDI).

The producer applies them between steps and (with ``record_events``) logs
``(frame_index, command)`` so ``render_offline`` can replay a session.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from melsynth.engine.runtime.bundle import ModelBundle
from melsynth.engine.stream.controls import Controls


@dataclass(frozen=True)
class SetControls:
    controls: Controls


@dataclass(frozen=True, eq=False)
class SetCanvas:
    log_mel: np.ndarray  # (n_mels, N) read-only copy


@dataclass(frozen=True, eq=False)
class EditCanvas:
    start_frame: int
    values: np.ndarray  # (bins, k) read-only copy
    bin_start: int = 0


@dataclass(frozen=True, eq=False)
class SetFile:
    log_mel: np.ndarray
    path: str = ""


@dataclass(frozen=True, eq=False)
class SwapChain:
    """Hot-swap to another bundle and/or vocoder. ``loaded`` carries models built off-thread."""

    bundle: ModelBundle
    vocoder: str
    loaded: Any = field(default=None, compare=False, repr=False)
    quality: str | None = None  # the classical phase quality of the new chain (engine.dsp.quality)


@dataclass(frozen=True)
class UseKernels:
    """Switch the vocoder and the safety stage to their numba kernels (``engine.kernels``)."""


def frozen_copy(a: np.ndarray) -> np.ndarray:
    """A read-only float32 copy: what a command carries, safe from the sender's later writes."""
    a = np.array(a, dtype=np.float32, copy=True)
    a.setflags(write=False)
    return a
