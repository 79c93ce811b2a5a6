"""Runtime prior: latent vectors -> normalised mel frames, offline or one latent step at a time.

Built from a bundle's ``prior`` entry (see ``engine.runtime.bundle``)::

    streaming graph  "z" (1, latent_size, k), state_in_i... -> "mel" (1, n_mels, k * latent_frames), state_out_i...
    offline graph    "z" (1, latent_size, steps) -> "mel" (1, n_mels, steps * latent_frames)   (optional)

The mel is in ``MelSpec.normalize`` space ([-1, 1]); ``spec.denormalize`` gives
the log10 mel a vocoder takes. The streaming graph starts from zero state, so
``concat(step(z_t) for t)`` equals ``offline(z)`` (float rounding). Without an
offline graph, ``offline(z)`` is the streaming graph run over all of ``z`` from
zero state (``engine.runtime.bundle.run_streaming_graph``).

numpy + onnxruntime only; sessions have 1 intra-op and 1 inter-op thread.
"""
from __future__ import annotations

import os

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import (BundleError, Direction, ModelBundle, load_bundle, onnx_session,
                                            run_streaming_graph)


class Prior:
    """Unconditional mel prior. Shapes: ``z (steps, latent_size) -> (n_mels, steps * latent_frames)``."""

    def __init__(self, bundle: ModelBundle):
        if bundle.prior is None:
            raise BundleError(bundle.json_path, "prior", "the bundle has no prior")
        spec = bundle.prior
        self.spec: MelSpec = bundle.mel
        self.latent_size: int = spec.latent_size
        self.latent_frames: int = spec.latent_frames
        self.phrase_size: int = spec.phrase_size   # last inputs held per phrase (engine.stream.controls)
        self.directions: tuple[Direction, ...] = spec.directions
        self.figures = spec.figures
        self._offline = onnx_session(spec.offline) if spec.offline is not None else None
        self._streaming_graph = spec.streaming
        self._streaming = onnx_session(spec.streaming)
        self._state_specs = spec.streaming.state
        self._out_names = ["mel"] + [s.output for s in self._state_specs]
        self._state: list[np.ndarray] = []
        self.reset()

    # --------------------------------------------------------------- helpers
    def _check_z(self, z: np.ndarray, what: str) -> np.ndarray:
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_size or z.shape[0] < 1:
            raise ValueError(f"{what}: z must be (steps >= 1, {self.latent_size}), got shape {z.shape}")
        if not np.all(np.isfinite(z)):
            raise ValueError(f"{what}: z contains NaN or infinite values")
        return np.ascontiguousarray(z.T[None])  # (1, latent_size, steps)

    def direction(self, name: str) -> Direction:
        for d in self.directions:
            if d.name == name:
                return d
        raise KeyError(f"no direction named {name!r}; available: {', '.join(d.name for d in self.directions)}")

    # --------------------------------------------------------------- API
    def offline(self, z: np.ndarray) -> np.ndarray:
        """``(steps, latent_size) -> (n_mels, steps * latent_frames)`` normalised mel, from zero state."""
        z = self._check_z(z, "Prior.offline")
        if self._offline is not None:
            return self._offline.run(["mel"], {"z": z})[0][0]
        # the stream's own state is untouched: this run starts from, and drops, its own
        return run_streaming_graph(self._streaming, self._streaming_graph, z, ["mel"])[0][0]

    def reset(self) -> None:
        """Back to the zero state of a fresh stream."""
        self._state = [s.zeros() for s in self._state_specs]

    def get_state(self) -> tuple[np.ndarray, ...]:
        """The stream's state now (copies): ``set_state`` of it re-runs the next step from here.

        The engine uses this to re-run the current latent step when a knob moves, so a
        change is heard within a frame or two instead of at the next step boundary.
        """
        return tuple(s.copy() for s in self._state)

    def set_state(self, state) -> None:
        """Restore a state from ``get_state`` (shapes checked)."""
        state = list(state)
        if len(state) != len(self._state_specs):
            raise ValueError(f"Prior.set_state: {len(state)} tensors given, the stream has {len(self._state_specs)}")
        for s, spec in zip(state, self._state_specs):
            if np.shape(s) != spec.shape:
                raise ValueError(f"Prior.set_state: {spec.input} must have shape {spec.shape}, got {np.shape(s)}")
        self._state = [np.array(s, dtype=np.float32, copy=True) for s in state]

    def step(self, z: np.ndarray) -> np.ndarray:
        """``(latent_size,) -> (n_mels, latent_frames)``: the next latent step of the stream."""
        z = np.asarray(z, dtype=np.float32)
        if z.shape != (self.latent_size,):
            raise ValueError(f"Prior.step: z must be ({self.latent_size},), got shape {z.shape}")
        return self.steps(z[None])

    def steps(self, z: np.ndarray) -> np.ndarray:
        """``(k, latent_size) -> (n_mels, k * latent_frames)``: the next ``k`` steps of the stream."""
        feeds = {"z": self._check_z(z, "Prior.steps")}
        for s, value in zip(self._state_specs, self._state):
            feeds[s.input] = value
        out = self._streaming.run(self._out_names, feeds)
        self._state = out[1:]
        return out[0][0]


def load_prior(bundle: ModelBundle | str | os.PathLike) -> Prior:
    """The prior of ``bundle`` (a loaded ``ModelBundle`` or a bundle folder)."""
    if not isinstance(bundle, ModelBundle):
        bundle = load_bundle(bundle)
    return Prior(bundle)
