"""Vocoders: ``(256, F)`` log10 mel -> ``(F * hop,)`` audio, offline and streaming.

One interface for every kind in ``bundle.json``::

    voc = load_vocoder(bundle, name=None)      # None: the bundle's default
    audio = voc.offline(log_mel)               # (n_mels, F) -> (F*hop,) float32
    voc.reset()
    chunk = voc.push(log_mel[:, i:i + k])      # (n_mels, k) -> (k*hop,) float32, k >= 1
    tail = voc.flush()                         # -> (latency_samples,), then reset

    concat(push(c) for c in chunks) + flush()  has F*hop + latency_samples samples;
    [latency_samples:] equals offline(log_mel)  (exactly for "classical", 1e-5 for ONNX)

Kinds:

- ``classical``: magnitude from the mel pseudo-inverse sharpened by
  ``magnitude_iterations`` non-negative least-squares updates
  (``engine.dsp.magnitude``), phase by RTISI-LA (``engine.dsp.phase``); params are
  ``magnitude_iterations`` and the ``PhaseConfig`` fields. Offline runs the
  same streaming loop, so the two are bit-identical.
- ``amplitude_phase``: ONNX graph ``mel -> real, imag`` complex STFT frames;
  the engine's numpy inverse STFT overlap-adds them. With params
  ``refine_iterations > 0`` the network's phase becomes the start phase of
  that many RTISI-LA iterations per frame (``refine_lookahead`` frames of
  look-ahead, default 1; ``refine_momentum`` default 0.99) against the
  network's own magnitude: Deep Griffin-Lim style refinement, a quality/CPU
  setting. Other params keys are the trainer's and are ignored here.
- ``melgan``: ONNX graph ``mel -> audio``.

Streaming ONNX graphs carry their state tensors (``GRAPH.state``: zeros at
reset, ``state_out_i`` fed back as ``state_in_i``). Alignment of a streaming
graph with ``lookahead_frames = L`` and ``frames_per_step = f``::

    offline graph:   mel frames 0..F-1           -> output frames 0..F-1 (aligned;
                     frames past the end are treated as silence, the log10 floor)
    streaming graph: mel frame j pushed          -> output frame j - L
                     (its first L outputs stand for frames before 0: dropped)
    flush:           L frames of silence pushed  -> the last L output frames
    no offline graph (slimmed bundle): the streaming graph from zero state, in one
                     call, on mel + silence up to a whole number of steps covering
                     F + L frames; output frames L..L+F-1 are the offline graph's

so an ONNX vocoder's latency is ``(L + f - 1) * hop`` plus its inverse STFT's
``D * hop`` (amplitude_phase) plus the refinement's ``refine_lookahead * hop``.
Every output is made finite and clipped to [-1, 1].
"""
from __future__ import annotations

from typing import Any

import numpy as np

from melsynth.engine.dsp.features import FeatureError, MelSpec
from melsynth.engine.dsp.istft import StreamingISTFT, istft
from melsynth.engine.dsp.magnitude import MelMagnitude
from melsynth.engine.dsp.phase import PhaseConfig, StreamingPhase
from melsynth.engine.runtime.bundle import (BundleError, GraphSpec, ModelBundle, VocoderSpec, onnx_session,
                                            run_streaming_graph)

# Non-negative least-squares updates of the classical magnitude (engine.dsp.magnitude).
DEFAULT_MAGNITUDE_ITERATIONS = 3


def safe_audio(audio: np.ndarray) -> np.ndarray:
    """Finite float32 within [-1, 1] (NaN and infinities become 0)."""
    audio = np.array(audio, dtype=np.float32)  # a copy: never hand out a view of a stream's buffers
    if audio.size == 0 or float(np.abs(audio).max()) <= 1.0:  # NaN fails the test: the careful path
        return audio  # the common case in 3 us; nan_to_num + clip took 24 us a frame
    audio = np.nan_to_num(audio, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(audio, -1.0, 1.0, out=audio)


class Vocoder:
    """Base class: input checks, output safety, offline via a fresh stream.

    Subclasses implement ``_push(log_mel) -> audio``, ``_flush() -> audio``,
    ``_reset()`` and ``_fresh()`` (an independent instance for ``offline``).
    """

    name: str
    kind: str
    spec: MelSpec
    latency_samples: int

    def _check(self, log_mel: np.ndarray) -> np.ndarray:
        log_mel = np.asarray(log_mel)
        if log_mel.ndim != 2 or log_mel.shape[0] != self.spec.n_mels:
            raise FeatureError(f"vocoder {self.name!r}: mel must have shape ({self.spec.n_mels}, frames), "
                               f"got {log_mel.shape}")
        if log_mel.shape[1] == 0:
            raise FeatureError(f"vocoder {self.name!r}: mel has no frames")
        if not np.all(np.isfinite(log_mel)):
            raise FeatureError(f"vocoder {self.name!r}: mel contains NaN or infinite values")
        return log_mel.astype(np.float32, copy=False)

    def use_kernels(self) -> None:
        """Switch to the numba kernels left for later (``engine.kernels``), between two pushes."""

    def offline(self, log_mel: np.ndarray) -> np.ndarray:
        """``(n_mels, F)`` log10 mel -> ``(F * hop,)`` float32; leaves the stream untouched."""
        return safe_audio(self._offline(self._check(log_mel)))

    def _offline(self, log_mel: np.ndarray) -> np.ndarray:
        stream = self._fresh()
        head = stream._push(log_mel)
        return np.concatenate([head, stream._flush()])[self.latency_samples:]

    def push(self, log_mel: np.ndarray) -> np.ndarray:
        """``(n_mels, k)`` -> ``(k * hop,)`` float32, lagging ``offline`` by ``latency_samples``."""
        return safe_audio(self._push(self._check(log_mel)))

    def flush(self) -> np.ndarray:
        """The last ``latency_samples`` samples of what was pushed; then reset."""
        out = safe_audio(self._flush())
        self.reset()
        return out

    def reset(self) -> None:
        self._reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kind={self.kind!r}, latency_samples={self.latency_samples})"

    # subclass hooks
    def _push(self, log_mel: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _flush(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _reset(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fresh(self) -> "Vocoder":  # pragma: no cover - abstract
        raise NotImplementedError


class ClassicalVocoder(Vocoder):
    """Mel pseudo-inverse magnitude + RTISI-LA phase; no network."""

    kind = "classical"

    def __init__(self, spec: MelSpec, config: PhaseConfig = PhaseConfig(),
                 magnitude_iterations: int = DEFAULT_MAGNITUDE_ITERATIONS, name: str = "classical"):
        self.spec = spec
        self.config = config
        self.magnitude_iterations = magnitude_iterations
        self.name = name
        # one frame at a time: a frame's magnitude never depends on how the stream was
        # chunked (BLAS may round a matrix-matrix product unlike a matrix-vector one)
        self.magnitude = MelMagnitude(spec, magnitude_iterations)
        self.phase = StreamingPhase(spec, config)
        self.latency_samples = self.phase.latency_samples

    def use_kernels(self) -> None:
        self.magnitude.use_kernels()
        self.phase.use_kernels()

    def _push(self, log_mel):
        return self.phase.push(self.magnitude(log_mel))

    def _flush(self):
        return self.phase.flush()

    def _reset(self):
        self.phase.reset()

    def _fresh(self):
        return ClassicalVocoder(self.spec, self.config, self.magnitude_iterations, self.name)


class _GraphStream:
    """A streaming ONNX graph with its state, step size and look-ahead.

    ``push(mel (n_mels, k))`` runs the graph on every whole step available and
    returns, per output name, the output frames that stand for real frames
    (``(1, C, j)``, ``j`` may be 0; the first ``L`` outputs after a reset stand
    for frames before 0 and are dropped). ``flush()`` pushes the silence that
    drains the look-ahead and the partial step and returns the frames still owed.
    """

    def __init__(self, graph: GraphSpec, spec: MelSpec, output_names: tuple[str, ...], samples_per_frame: int = 1,
                 fixed_step: bool = False, session=None):
        self.graph = graph
        self.spec = spec
        self.session = session or onnx_session(graph)
        # fixed_step: always run exactly `step` frames per call, so that each output frame is
        # computed the same way whatever the caller's chunking (bit-identical, not just 1e-6 close)
        self.fixed_step = fixed_step
        self.output_names = output_names
        self.state_in = [s.input for s in graph.state]
        self.state_out = [s.output for s in graph.state]
        self.step = graph.frames_per_step or 1
        self.lookahead = graph.lookahead_frames
        self.samples_per_frame = samples_per_frame  # output length per frame along the last axis
        self.latency_frames = self.lookahead + self.step - 1
        self.silence = np.full((spec.n_mels, 1), spec.log_min, dtype=np.float32)
        self.reset()

    def run_whole(self, mel: np.ndarray) -> list[np.ndarray]:
        """All of ``mel (n_mels, F)`` from zero state in one pass, aligned as the offline graph's
        outputs: ``(1, C, F * samples_per_frame)`` per output name. This stream's state is untouched."""
        frames = mel.shape[1]
        # silence after the end drains the look-ahead and completes the last step (as flush does)
        total = -(-(frames + self.lookahead) // self.step) * self.step
        padded = np.concatenate([mel, np.repeat(self.silence, total - frames, axis=1)], axis=1)
        outs = run_streaming_graph(self.session, self.graph, padded[None], list(self.output_names))
        spf = self.samples_per_frame
        return [o[..., self.lookahead * spf:(self.lookahead + frames) * spf] for o in outs]

    def reset(self) -> None:
        self.states = [s.zeros() for s in self.graph.state]
        self.pending = np.zeros((self.spec.n_mels, 0), dtype=np.float32)
        self.frames_in = 0   # frames pushed by the caller
        self.frames_run = 0  # frames the graph has seen (caller's and flush's silence)

    def _run(self, mel: np.ndarray) -> list[np.ndarray]:
        feeds = {"mel": np.ascontiguousarray(mel[None], dtype=np.float32)}
        feeds.update(zip(self.state_in, self.states))
        outs = self.session.run(list(self.output_names) + self.state_out, feeds)
        n = len(self.output_names)
        self.states = [np.asarray(s, dtype=np.float32) for s in outs[n:]]
        return outs[:n]

    def _advance(self, mel: np.ndarray, keep_frames: int | None = None) -> list[np.ndarray]:
        self.pending = np.concatenate([self.pending, mel], axis=1)
        usable = self.pending.shape[1] // self.step * self.step
        if usable == 0:
            return [np.zeros((1, 0, 0), np.float32)] * len(self.output_names)
        chunk, self.pending = self.pending[:, :usable], self.pending[:, usable:]
        if self.fixed_step and usable > self.step:
            pieces = [self._run(chunk[:, i:i + self.step]) for i in range(0, usable, self.step)]
            outs = [np.concatenate(p, axis=-1) for p in zip(*pieces)]
        else:
            outs = self._run(chunk)
        # Output frame j of the graph stands for frame j - L.
        drop = max(0, min(usable, self.lookahead - self.frames_run))
        self.frames_run += usable
        keep = usable - drop if keep_frames is None else min(keep_frames, usable - drop)
        spf = self.samples_per_frame
        return [o[..., drop * spf:(drop + keep) * spf] for o in outs]

    def push(self, mel: np.ndarray) -> list[np.ndarray]:
        self.frames_in += mel.shape[1]
        return self._advance(mel)

    def flush(self) -> list[np.ndarray]:
        produced = max(0, self.frames_run - self.lookahead)
        owed = self.frames_in - produced
        if owed <= 0:
            return [np.zeros((1, 0, 0), np.float32)] * len(self.output_names)
        # Run until frame frames_in - 1 has come out: frames_in + L frames, in whole steps.
        target = -(-(self.frames_in + self.lookahead) // self.step) * self.step
        pad = target - self.frames_run - self.pending.shape[1]
        return self._advance(np.repeat(self.silence, pad, axis=1), keep_frames=owed)


class _OnnxVocoder(Vocoder):
    """A streaming graph followed by a frames -> audio stage, through a FIFO of
    constant delay (the graph's step buffering makes its own output bursty)."""

    def _init_stream(self, graph_stream: _GraphStream, stage_latency: int) -> None:
        self.stream = graph_stream
        self.graph_latency = graph_stream.latency_frames * self.spec.hop_length
        self.latency_samples = self.graph_latency + stage_latency
        self._session_offline = None
        self._reset()

    def _reset(self) -> None:
        self.stream.reset()
        self._reset_stage()
        self.fifo = np.zeros(self.graph_latency, dtype=np.float32)

    def _push(self, log_mel):
        self.fifo = np.concatenate([self.fifo, self._stage(self.stream.push(log_mel))])
        n = log_mel.shape[1] * self.spec.hop_length
        out, self.fifo = self.fifo[:n], self.fifo[n:]
        return out

    def _flush(self):
        tail = np.concatenate([self.fifo, self._stage(self.stream.flush()), self._flush_stage()])
        return tail[:self.latency_samples]

    def _fresh(self):
        raise AssertionError("ONNX vocoders compute offline in one graph pass (graph_outputs)")

    def graph_outputs(self, log_mel: np.ndarray) -> list[np.ndarray]:
        """Offline graph outputs for all of ``log_mel (n_mels, F)``: ``(1, C, F * samples_per_frame)``
        per name in ``self.stream.output_names``, aligned with the input frames. From the
        offline graph when the bundle has one, else the streaming graph run once from zero state."""
        if self.vspec.offline is None:
            return self.stream.run_whole(log_mel)
        if self._session_offline is None:
            self._session_offline = onnx_session(self.vspec.offline)
        return self._session_offline.run(list(self.stream.output_names),
                                         {"mel": np.ascontiguousarray(log_mel[None], dtype=np.float32)})


class AmplitudePhaseVocoder(_OnnxVocoder):
    """ONNX ``mel -> real, imag`` frames, numpy inverse STFT (optionally RTISI-LA refined)."""

    kind = "amplitude_phase"

    def __init__(self, spec: MelSpec, vspec: VocoderSpec, bundle_json: str = "bundle.json", session=None):
        self.spec = spec
        self.vspec = vspec
        self.name = vspec.name
        self.bundle_json = bundle_json
        params = dict(vspec.params)
        self.refine = None
        try:
            iterations = int(params.get("refine_iterations", 0))
            if iterations > 0:
                self.refine = PhaseConfig(iterations=iterations, lookahead=int(params.get("refine_lookahead", 1)),
                                          momentum=float(params.get("refine_momentum", 0.99)))
        except (ValueError, TypeError) as exc:
            raise BundleError(bundle_json, f"vocoders.{vspec.name}.params", str(exc)) from exc
        self.inverse = StreamingPhase(spec, self.refine) if self.refine else StreamingISTFT(spec)
        # Griffin-Lim iterations amplify 1e-7 differences between chunkings of the graph into
        # audible ones: a refined vocoder runs the streaming graph a fixed step at a time, and
        # its offline path is that same stream (never one whole-input call, nor an offline graph).
        stream = _GraphStream(vspec.streaming, spec, ("real", "imag"), fixed_step=bool(self.refine), session=session)
        self._init_stream(stream, self.inverse.latency_samples)

    def use_kernels(self) -> None:
        if isinstance(self.inverse, StreamingPhase):
            self.inverse.use_kernels()

    def _to_audio(self, inverse, real: np.ndarray, imag: np.ndarray) -> np.ndarray:
        real = np.asarray(real[0], dtype=np.float64)
        imag = np.asarray(imag[0], dtype=np.float64)
        if self.refine:
            return inverse.push(np.hypot(real, imag), np.arctan2(imag, real))
        return inverse.push(real + 1j * imag)

    def _stage(self, outs):
        real, imag = outs
        if real.shape[-1] == 0:
            return np.zeros(0, dtype=np.float32)
        return self._to_audio(self.inverse, real, imag)

    def _flush_stage(self):
        return self.inverse.flush()

    def _reset_stage(self):
        self.inverse.reset()

    def _fresh(self):
        return AmplitudePhaseVocoder(self.spec, self.vspec, self.bundle_json, session=self.stream.session)

    def _offline(self, log_mel):
        if self.refine:
            return Vocoder._offline(self, log_mel)
        real, imag = self.graph_outputs(log_mel)
        return istft(self.spec, np.asarray(real[0], np.float64) + 1j * np.asarray(imag[0], np.float64))


class MelGANVocoder(_OnnxVocoder):
    """ONNX ``mel -> audio``."""

    kind = "melgan"

    def __init__(self, spec: MelSpec, vspec: VocoderSpec):
        self.spec = spec
        self.vspec = vspec
        self.name = vspec.name
        self._init_stream(_GraphStream(vspec.streaming, spec, ("audio",), samples_per_frame=spec.hop_length), 0)

    def _stage(self, outs):
        return np.asarray(outs[0], dtype=np.float32).reshape(-1)

    def _flush_stage(self):
        return np.zeros(0, dtype=np.float32)

    def _reset_stage(self):
        pass

    def _offline(self, log_mel):
        (audio,) = self.graph_outputs(log_mel)
        return np.asarray(audio, dtype=np.float32).reshape(-1)


def classical_params(config: PhaseConfig = PhaseConfig(),
                     magnitude_iterations: int = DEFAULT_MAGNITUDE_ITERATIONS) -> dict[str, Any]:
    """A classical vocoder's bundle.json params."""
    return {"magnitude_iterations": magnitude_iterations, **config.to_dict()}


def classical_config(params: dict[str, Any]) -> tuple[PhaseConfig, int]:
    """``(PhaseConfig, magnitude_iterations)`` from a classical vocoder's params (defaults for what is absent)."""
    params = dict(params)
    magnitude_iterations = params.pop("magnitude_iterations", DEFAULT_MAGNITUDE_ITERATIONS)
    if not isinstance(magnitude_iterations, int) or isinstance(magnitude_iterations, bool) or magnitude_iterations < 0:
        raise ValueError(f"magnitude_iterations must be an int >= 0, got {magnitude_iterations!r}")
    return PhaseConfig.from_dict(params), magnitude_iterations


def load_vocoder(bundle: ModelBundle, name: str | None = None, quality: str | None = None) -> Vocoder:
    """The vocoder ``name`` (default: the bundle's default) of ``bundle``, ready to stream.

    ``quality`` (``engine.dsp.quality``: "realtime", "high", "max"; None = the bundle's own
    settings) sets a classical vocoder's phase iterations and look-ahead; other kinds ignore it.
    """
    vspec = bundle.vocoder(name)
    where = f"vocoders.{vspec.name}"
    if vspec.kind == "classical":
        from melsynth.engine.dsp.quality import with_quality

        try:
            config, magnitude_iterations = classical_config(vspec.params)
        except (ValueError, TypeError) as exc:
            raise BundleError(bundle.json_path, f"{where}.params", str(exc)) from exc
        return ClassicalVocoder(bundle.mel, with_quality(config, quality), magnitude_iterations, name=vspec.name)
    if vspec.streaming is None:
        raise BundleError(bundle.json_path, where, f"kind {vspec.kind!r} needs a streaming graph")
    if vspec.kind == "amplitude_phase":
        return AmplitudePhaseVocoder(bundle.mel, vspec, str(bundle.json_path))
    if vspec.kind == "melgan":
        return MelGANVocoder(bundle.mel, vspec)
    raise BundleError(bundle.json_path, f"{where}.kind", f"unknown vocoder kind {vspec.kind!r}")
