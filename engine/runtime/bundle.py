"""Model bundles: the contract between training and engine.

A bundle is a folder with ``bundle.json`` and the ONNX files it names::

    models/NAME/
      bundle.json             schema_version, mel (MelSpec), vocoders{}, default_vocoder, prior
      vocoder_ap_stream.onnx  streaming graph (frames + state in, output + state out)
      prior_stream.onnx
      vocoder_ap.onnx, prior.onnx   offline graphs (dynamic frames): optional

Each neural model (the prior, the amplitude_phase and melgan vocoders) ships one
streaming graph. Every streaming graph is causal, so the offline output is that
graph run over all frames at once from the zero state of a fresh stream
(``run_streaming_graph``; the state it returns is dropped). A bundle may also
list an ``offline`` graph with the same weights; the engine uses it when
present. ``melsynth bundle slim BUNDLE`` removes it after checking the two agree.

``bundle.json``::

    {
      "schema_version": 1,
      "name": "default",
      "mel": {MelSpec fields},
      "default_vocoder": "classical",
      "vocoders": {
        "<name>": {
          "kind": "classical" | "amplitude_phase" | "melgan",
          "params": {...},                         # kind-specific runtime settings
          "streaming": GRAPH,                      # absent for "classical"
          "offline":   GRAPH,                      # optional; absent for "classical"
          "training": {...}, "figures": {...}
        }
      },
      "prior": {                                   # optional
        "streaming": GRAPH, "offline": GRAPH,      # offline optional
        "latent_size": 64, "latent_frames": 16,    # one latent vector per 16 frames
        "directions": [{"name", "kind": "named"|"pca", "vector": [...], "sigma"}],
        "training": {...}, "figures": {...}
      }
    }

    GRAPH = {"file", "sha256",
             "inputs":  [{"name", "shape": [int | "symbol", ...]}],
             "outputs": [{"name", "shape": [...]}],
             "state":   [{"input", "output", "shape": [int, ...]}],   # streaming only
             "lookahead_frames": int, "frames_per_step": int | null}

A streaming graph has one input besides its state ("mel" or "z"), time on its
last axis: a symbolic last dimension takes any number of frames (latent steps)
per call, a fixed one exactly that many.

Everything that is wrong with a bundle raises ``BundleError`` naming the file
and the field.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from melsynth.engine.dsp.features import FeatureError, MelSpec

SCHEMA_VERSION = 1
BUNDLE_FILE = "bundle.json"
VOCODER_KINDS = ("classical", "amplitude_phase", "melgan")
NEURAL_VOCODER_KINDS = ("amplitude_phase", "melgan")
SUPPORTED_SAMPLE_RATES = (11025,)
SUPPORTED_N_MELS = (256,)


class BundleError(Exception):
    """A bundle that cannot be served. ``str()`` names file and field."""

    def __init__(self, path: str | os.PathLike, field_name: str, message: str):
        self.path = str(path)
        self.field = field_name
        self.message = message
        super().__init__(f"{self.path}: {field_name}: {message}")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def repo_root() -> Path:
    """The checkout this engine runs from (``engine/runtime/`` is two folders below it)."""
    return Path(__file__).resolve().parents[2]


def default_bundle_path() -> Path:
    """``$MELSYNTH_BUNDLE`` or the shipped ``models/default``."""
    env = os.environ.get("MELSYNTH_BUNDLE")
    return Path(env) if env else repo_root() / "models" / "default"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape)}


@dataclass(frozen=True)
class StateSpec:
    """One streaming state tensor: fed as ``input``, returned as ``output``."""

    input: str
    output: str
    shape: tuple[int, ...]

    def zeros(self) -> np.ndarray:
        return np.zeros(self.shape, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "shape": list(self.shape)}


@dataclass(frozen=True)
class GraphSpec:
    path: Path
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    state: tuple[StateSpec, ...] = ()
    lookahead_frames: int = 0
    frames_per_step: int | None = None

    def to_dict(self, root: Path) -> dict[str, Any]:
        return {
            "file": os.path.relpath(self.path, root),
            "sha256": self.sha256,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "state": [s.to_dict() for s in self.state],
            "lookahead_frames": self.lookahead_frames,
            "frames_per_step": self.frames_per_step,
        }


@dataclass(frozen=True)
class VocoderSpec:
    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    offline: GraphSpec | None = None    # None for "classical" and for slimmed neural vocoders
    streaming: GraphSpec | None = None  # None for "classical"
    training: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Direction:
    name: str
    kind: str  # "named" (regressed on a measured property) or "pca"
    vector: np.ndarray  # unit vector, (latent_size,)
    sigma: float


@dataclass(frozen=True)
class PriorSpec:
    offline: GraphSpec | None  # None: the offline path runs the streaming graph once
    streaming: GraphSpec
    latent_size: int
    latent_frames: int
    directions: tuple[Direction, ...] = ()
    phrase_size: int = 0       # the last inputs are a phrase latent: held in training, walked slowly
    training: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelBundle:
    root: Path
    name: str
    mel: MelSpec
    vocoders: dict[str, VocoderSpec]
    default_vocoder: str
    prior: PriorSpec | None
    raw: dict[str, Any]

    @property
    def json_path(self) -> Path:
        return self.root / BUNDLE_FILE

    def vocoder(self, name: str | None = None) -> VocoderSpec:
        name = name or self.default_vocoder
        if name not in self.vocoders:
            raise BundleError(self.json_path, "vocoders",
                              f"no vocoder named {name!r}; available: {', '.join(self.vocoders)}")
        return self.vocoders[name]

    @classmethod
    def load(cls, path: str | os.PathLike, check_graphs: bool = True) -> "ModelBundle":
        return load_bundle(path, check_graphs=check_graphs)


# --------------------------------------------------------------------------- parsing
class _Reader:
    """Typed field access that names the JSON path of whatever is wrong."""

    def __init__(self, json_path: Path):
        self.json_path = json_path

    def fail(self, where: str, message: str) -> BundleError:
        return BundleError(self.json_path, where, message)

    def get(self, obj: dict, key: str, where: str, kind: type | tuple, required: bool = True, default=None):
        if not isinstance(obj, dict):
            raise self.fail(where, f"expected an object, got {type(obj).__name__}")
        if key not in obj:
            if required:
                raise self.fail(f"{where}.{key}" if where else key, "missing")
            return default
        value = obj[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(f"{where}.{key}" if where else key,
                            f"expected {names}, got {type(value).__name__}")
        return value

    def shape(self, value: Any, where: str, symbolic: bool) -> tuple:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list of dimensions")
        dims = []
        for i, d in enumerate(value):
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (symbolic and isinstance(d, str))
            if not ok:
                raise self.fail(f"{where}[{i}]", f"bad dimension {d!r}")
            dims.append(d)
        return tuple(dims)

    def tensors(self, obj: dict, key: str, where: str) -> tuple[TensorSpec, ...]:
        items = self.get(obj, key, where, list)
        out = []
        for i, item in enumerate(items):
            w = f"{where}.{key}[{i}]"
            out.append(TensorSpec(self.get(item, "name", w, str),
                                  self.shape(self.get(item, "shape", w, list), f"{w}.shape", True)))
        return tuple(out)

    def graph(self, root: Path, obj: dict, where: str, streaming: bool) -> GraphSpec:
        file_name = self.get(obj, "file", where, str)
        path = (root / file_name).resolve()
        if not path.is_file():
            raise BundleError(path, f"{where}.file", "ONNX file is missing")
        sha = self.get(obj, "sha256", where, str)
        state = []
        for i, s in enumerate(self.get(obj, "state", where, list, required=streaming, default=[])):
            w = f"{where}.state[{i}]"
            state.append(StateSpec(self.get(s, "input", w, str), self.get(s, "output", w, str),
                                   self.shape(self.get(s, "shape", w, list), f"{w}.shape", False)))
        lookahead = self.get(obj, "lookahead_frames", where, int, required=False, default=0)
        if lookahead < 0:
            raise self.fail(f"{where}.lookahead_frames", f"must be >= 0, got {lookahead}")
        fps = self.get(obj, "frames_per_step", where, (int, type(None)), required=False, default=None)
        graph = GraphSpec(path, sha, self.tensors(obj, "inputs", where), self.tensors(obj, "outputs", where),
                          tuple(state), lookahead, fps)
        if streaming:  # the engine feeds it frames (or latents) and state, nothing else
            try:
                streaming_input(graph)
            except BundleError as exc:
                raise self.fail(f"{where}.inputs", exc.message) from exc
        return graph

    def optional_graph(self, root: Path, obj: dict, key: str, where: str) -> GraphSpec | None:
        """An offline graph: absent in slimmed bundles (the streaming graph serves the offline path)."""
        value = self.get(obj, key, where, dict, required=False)
        return None if value is None else self.graph(root, value, f"{where}.{key}", False)


def _check_graph(graph: GraphSpec, where: str) -> None:
    """Checksum, then the ONNX file's real inputs and outputs against the JSON."""
    actual = file_sha256(graph.path)
    if actual != graph.sha256:
        raise BundleError(graph.path, f"{where}.sha256",
                          f"checksum mismatch: bundle.json says {graph.sha256[:12]}..., file is {actual[:12]}...")
    import onnxruntime as ort

    # A session only to read the graph's inputs and outputs: one thread and basic graph
    # optimisation (enough to infer the output shapes) cost a third of the default session
    # (the app's start checks every graph of the bundle).
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        sess = ort.InferenceSession(str(graph.path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private types
        raise BundleError(graph.path, f"{where}.file", f"not a loadable ONNX model: {exc}") from exc
    for label, declared, real in (("inputs", graph.inputs, sess.get_inputs()),
                                  ("outputs", graph.outputs, sess.get_outputs())):
        real_by_name = {r.name: r for r in real}
        declared_names = [t.name for t in declared]
        if sorted(declared_names) != sorted(real_by_name):
            raise BundleError(graph.path, f"{where}.{label}",
                              f"ONNX has {sorted(real_by_name)}, bundle.json says {sorted(declared_names)}")
        for t in declared:
            real_shape = real_by_name[t.name].shape
            if len(real_shape) != len(t.shape):
                raise BundleError(graph.path, f"{where}.{label}.{t.name}",
                                  f"ONNX rank {len(real_shape)} {real_shape}, bundle.json says {list(t.shape)}")
            for want, got in zip(t.shape, real_shape):
                if isinstance(want, int) and want != got:
                    raise BundleError(graph.path, f"{where}.{label}.{t.name}",
                                      f"ONNX shape {real_shape}, bundle.json says {list(t.shape)}")
    names_in = {t.name for t in graph.inputs}
    names_out = {t.name for t in graph.outputs}
    for i, s in enumerate(graph.state):
        if s.input not in names_in or s.output not in names_out:
            raise BundleError(graph.path, f"{where}.state[{i}]",
                              f"state {s.input!r} -> {s.output!r} is not an input/output pair of the graph")


def _parse_mel(r: _Reader, data: dict) -> MelSpec:
    try:
        mel = MelSpec.from_dict(r.get(data, "mel", "", dict))
    except (FeatureError, TypeError) as exc:
        raise r.fail("mel", str(exc)) from exc
    if mel.sample_rate not in SUPPORTED_SAMPLE_RATES:
        raise r.fail("mel.sample_rate", f"engine serves {SUPPORTED_SAMPLE_RATES} Hz, bundle has {mel.sample_rate}")
    if mel.n_mels not in SUPPORTED_N_MELS:
        raise r.fail("mel.n_mels", f"engine serves {SUPPORTED_N_MELS} mel bins, bundle has {mel.n_mels}")
    return mel


def _parse_vocoders(r: _Reader, root: Path, data: dict) -> dict[str, VocoderSpec]:
    vocoders = {}
    for name, v in r.get(data, "vocoders", "", dict).items():
        where = f"vocoders.{name}"
        kind = r.get(v, "kind", where, str)
        if kind not in VOCODER_KINDS:
            raise r.fail(f"{where}.kind", f"unknown vocoder kind {kind!r}; known: {', '.join(VOCODER_KINDS)}")
        neural = kind in NEURAL_VOCODER_KINDS
        offline = r.optional_graph(root, v, "offline", where) if neural else None
        streaming = r.graph(root, r.get(v, "streaming", where, dict), f"{where}.streaming", True) if neural else None
        vocoders[name] = VocoderSpec(
            name=name, kind=kind, params=r.get(v, "params", where, dict, required=False, default={}),
            offline=offline, streaming=streaming,
            training=r.get(v, "training", where, dict, required=False, default={}),
            figures=r.get(v, "figures", where, dict, required=False, default={}))
    if not vocoders:
        raise r.fail("vocoders", "a bundle needs at least one vocoder")
    return vocoders


def _parse_prior(r: _Reader, root: Path, p: dict) -> PriorSpec:
    latent_size = r.get(p, "latent_size", "prior", int)
    latent_frames = r.get(p, "latent_frames", "prior", int)
    if latent_size <= 0 or latent_frames <= 0:
        raise r.fail("prior", f"latent_size={latent_size} and latent_frames={latent_frames} must be positive")
    phrase_size = r.get(p, "phrase_size", "prior", int, required=False, default=0)
    if not 0 <= phrase_size < latent_size:
        raise r.fail("prior.phrase_size", f"must be in [0, latent_size={latent_size}), got {phrase_size}")
    directions = []
    for i, d in enumerate(r.get(p, "directions", "prior", list, required=False, default=[])):
        w = f"prior.directions[{i}]"
        vec = np.asarray(r.get(d, "vector", w, list), dtype=np.float32)
        if vec.shape != (latent_size,) or not np.all(np.isfinite(vec)):
            raise r.fail(f"{w}.vector", f"need {latent_size} finite numbers, got shape {vec.shape}")
        norm = float(np.linalg.norm(vec))
        if abs(norm - 1.0) > 1e-3:
            raise r.fail(f"{w}.vector", f"must be a unit vector, norm is {norm:.4f}")
        sigma = r.get(d, "sigma", w, float)
        if not (np.isfinite(sigma) and sigma > 0):
            raise r.fail(f"{w}.sigma", f"must be positive, got {sigma}")
        vec.setflags(write=False)
        directions.append(Direction(r.get(d, "name", w, str), r.get(d, "kind", w, str, required=False,
                                                                      default="pca"), vec, sigma))
    return PriorSpec(
        offline=r.optional_graph(root, p, "offline", "prior"),
        streaming=r.graph(root, r.get(p, "streaming", "prior", dict), "prior.streaming", True),
        latent_size=latent_size, latent_frames=latent_frames, directions=tuple(directions), phrase_size=phrase_size,
        training=r.get(p, "training", "prior", dict, required=False, default={}),
        figures=r.get(p, "figures", "prior", dict, required=False, default={}))


def load_bundle(path: str | os.PathLike, check_graphs: bool = True) -> ModelBundle:
    """Load and validate a bundle folder (or its ``bundle.json``)."""
    path = Path(path)
    root = path.parent if path.name == BUNDLE_FILE else path
    json_path = root / BUNDLE_FILE
    if not root.is_dir():
        raise BundleError(root, "bundle", "bundle folder does not exist")
    if not json_path.is_file():
        raise BundleError(json_path, "bundle.json", "missing")
    try:
        data = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(json_path, "bundle.json", f"invalid JSON: {exc}") from exc
    r = _Reader(json_path)
    if not isinstance(data, dict):
        raise r.fail("bundle.json", "top level must be an object")
    version = r.get(data, "schema_version", "", int)
    if version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"unknown schema version {version}; this engine reads {SCHEMA_VERSION}")
    mel = _parse_mel(r, data)
    vocoders = _parse_vocoders(r, root, data)
    default = r.get(data, "default_vocoder", "", str)
    if default not in vocoders:
        raise r.fail("default_vocoder", f"{default!r} is not one of the vocoders ({', '.join(vocoders)})")
    prior_data = r.get(data, "prior", "", (dict, type(None)), required=False, default=None)
    prior = _parse_prior(r, root, prior_data) if prior_data is not None else None
    bundle = ModelBundle(root=root, name=r.get(data, "name", "", str, required=False, default=root.name),
                         mel=mel, vocoders=vocoders, default_vocoder=default, prior=prior, raw=data)
    if check_graphs:
        for v in vocoders.values():
            for label, g in (("offline", v.offline), ("streaming", v.streaming)):
                if g is not None:
                    _check_graph(g, f"vocoders.{v.name}.{label}")
        if prior is not None:
            if prior.offline is not None:
                _check_graph(prior.offline, "prior.offline")
            _check_graph(prior.streaming, "prior.streaming")
    return bundle


def onnx_session(graph: GraphSpec):
    """An onnxruntime session with 1 intra-op and 1 inter-op thread (the other core is the callback's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(graph.path), sess_options=opts, providers=["CPUExecutionProvider"])


def streaming_input(graph: GraphSpec) -> TensorSpec:
    """The one input of a streaming graph that is not state ("mel" or "z")."""
    state_inputs = {s.input for s in graph.state}
    inputs = [t for t in graph.inputs if t.name not in state_inputs]
    if len(inputs) != 1:
        raise BundleError(graph.path, "inputs",
                          f"a streaming graph needs exactly one input besides its state, has {[t.name for t in inputs]}")
    return inputs[0]


def run_streaming_graph(session, graph: GraphSpec, x: np.ndarray, output_names: list[str]) -> list[np.ndarray]:
    """A streaming graph over all of ``x`` from zero state: what its offline graph computes.

    ``x`` is the graph's non-state input, time on the last axis (``(1, n_mels, F)`` or
    ``(1, latent_size, steps)``); returns the named outputs, time on their last axis. The
    graph is causal and a fresh stream starts from zero state, so its outputs equal the
    offline graph's; the state it returns is dropped. A symbolic time dimension takes all
    of ``x`` in one call; a fixed one (static-shape graphs) is fed in chunks of that size,
    the state carried between them. Alignment (look-ahead, step padding) is the caller's.
    """
    spec = streaming_input(graph)
    x = np.ascontiguousarray(x, dtype=np.float32)
    length = x.shape[-1]
    chunk = spec.shape[-1] if isinstance(spec.shape[-1], int) else length
    if chunk <= 0 or length % chunk:
        raise BundleError(graph.path, f"inputs.{spec.name}",
                          f"the graph takes {chunk} steps per call; {length} is not a multiple of it")
    state_out = [s.output for s in graph.state]
    states = [s.zeros() for s in graph.state]
    pieces: list[list[np.ndarray]] = []
    for start in range(0, length, chunk):
        feeds = {spec.name: np.ascontiguousarray(x[..., start:start + chunk]),
                 **{s.input: v for s, v in zip(graph.state, states)}}
        outs = session.run(list(output_names) + state_out, feeds)
        pieces.append(outs[:len(output_names)])
        states = outs[len(output_names):]
    if len(pieces) == 1:
        return pieces[0]
    return [np.concatenate(p, axis=-1) for p in zip(*pieces)]


def write_bundle_json(root: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Atomically write ``bundle.json`` (training side; checksums must already be filled in)."""
    from melsynth.engine.atomic import atomic_write_json

    data = dict(data)
    data.setdefault("schema_version", SCHEMA_VERSION)
    return atomic_write_json(Path(root) / BUNDLE_FILE, data)


def graph_entry(root: str | os.PathLike, onnx_path: str | os.PathLike, inputs: list[TensorSpec],
                outputs: list[TensorSpec], state: list[StateSpec] = (), lookahead_frames: int = 0,
                frames_per_step: int | None = None) -> dict[str, Any]:
    """The JSON GRAPH entry of an ONNX file already inside the bundle folder."""
    g = GraphSpec(Path(onnx_path), file_sha256(onnx_path), tuple(inputs), tuple(outputs), tuple(state),
                  lookahead_frames, frames_per_step)
    return g.to_dict(Path(root))
