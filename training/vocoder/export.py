"""Export a vocoder run into a model bundle: one streaming ONNX graph, parity checked.

``export_vocoder(run_dir, bundle_dir, name)``:

1. rebuilds the generator from the run's ``config.json`` and its best
   (else latest) generator weights;
2. writes ``vocoder_<name>_stream.onnx`` (``mel (1, 256, frames)``,
   ``state_in_i`` -> ``real, imag (1, 513, frames)`` or ``audio
   (1, frames*256)``, ``state_out_i``; any number of frames per call) with
   weight norm removed. No offline graph: the engine's offline path runs this
   graph once over all frames from zero state;
3. checks parity against torch's offline generator: onnxruntime on a non-zero
   state, then the streaming graph from zero state over all frames in one call
   (the engine's offline path) and in chunks of 1..16 frames (its streaming
   path), in the audio domain (the amplitude-phase frames go through
   ``engine.dsp.istft``); any error above 1e-4 aborts the export;
4. adds (or replaces) the ``vocoders.<name>`` entry of ``bundle.json``,
   creating the bundle with the classical vocoder as default when absent and
   never touching other entries or the default; an older bundle's
   ``vocoder_<name>.onnx`` offline graph is deleted unless another entry
   still names it;
5. saves compact float16 generator weights for fine-tuning under
   ``train/vocoder_<name>.pt`` in the bundle.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.engine.offline.slim_bundle import delete_unreferenced_graphs
from melsynth.engine.runtime.bundle import (BUNDLE_FILE, SCHEMA_VERSION, StateSpec, TensorSpec, graph_entry,
                                            write_bundle_json)
from melsynth.training.gan import (BEST, CHECKPOINT, CURVE, TrainError, load_checkpoint, load_run_config,
                                   save_torch_atomic)
from melsynth.training.nn.conv import StreamingModule, initial_state, stateful_layers
from melsynth.training.onnx_export import export_onnx, remove_weight_norm
from melsynth.training.vocoder.config import VocoderConfig, from_dict
from melsynth.training.vocoder.train import build_generator

PARITY_LIMIT = 1e-4


def load_run_generator(run_dir: str | os.PathLike, which: str = "best") -> tuple[VocoderConfig, torch.nn.Module, dict]:
    """``(config, generator (eval, cpu), info)`` of a run; ``which`` is ``best`` or ``last``."""
    run_dir = Path(run_dir)
    saved = load_run_config(run_dir)
    if not str(saved.get("task_name", "")).startswith("vocoder_"):
        raise TrainError(f"{run_dir / 'config.json'}: not a vocoder run (task {saved.get('task_name')!r})")
    config = from_dict(VocoderConfig, saved["task"], f"{run_dir / 'config.json'}: task")
    best, last = run_dir / BEST, run_dir / CHECKPOINT
    path = best if which == "best" and best.is_file() else last
    ckpt = load_checkpoint(path)
    generator = build_generator(config)
    generator.load_state_dict(ckpt["generator"])
    generator.eval()
    info = {"checkpoint": path.name, "step": int(ckpt.get("step", 0))}
    if "value" in ckpt:
        info["best"] = {"metric": ckpt.get("metric"), "value": ckpt.get("value")}
    last_state = load_checkpoint(last) if last.is_file() and path != last else ckpt
    info["total_steps"] = int(last_state.get("step", 0))
    info["wall_hours"] = round(float(last_state.get("wall_seconds", 0.0)) / 3600, 4)
    info["cpu_hours"] = round(float(last_state.get("cpu_seconds", 0.0)) / 3600, 4)
    info["trainer"] = saved.get("trainer", {})
    return config, generator, info


def example_mel(spec: MelSpec, frames: int, seed: int = 0) -> np.ndarray:
    """A deterministic music-like ``(n_mels, frames)`` log10 mel (decaying harmonic notes + noise)."""
    rng = np.random.default_rng(seed)
    n = frames * spec.hop_length
    t = np.arange(n) / spec.sample_rate
    audio = 0.002 * rng.standard_normal(n)
    for start, f0 in zip(np.linspace(0, t[-1] * 0.7, 4), (220.0, 330.0, 147.0, 523.0)):
        env = np.where(t >= start, np.exp(-(t - start) * 2.0), 0.0)
        for h in range(1, 6):
            if f0 * h < spec.sample_rate / 2:
                audio += 0.08 / h * env * np.sin(2 * np.pi * f0 * h * t + h)
    return log_mel(spec, audio)[:, :frames]


def _audio_from(config: VocoderConfig, outputs: list[np.ndarray]) -> np.ndarray:
    """Graph outputs -> audio, for parity in the domain the engine hears."""
    if config.arch == "melgan":
        return np.asarray(outputs[0][0], dtype=np.float64)
    from melsynth.engine.dsp.istft import istft

    frames = np.asarray(outputs[0][0], dtype=np.float64) + 1j * np.asarray(outputs[1][0], dtype=np.float64)
    return istft(config.mel, frames).astype(np.float64)


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run_stream(session, mel: np.ndarray, outputs: list[str], state_in: list[str], state_out: list[str],
                shapes: list[tuple], chunks: list[int]) -> list[np.ndarray]:
    """The streaming graph over ``mel (1, n_mels, F)`` from zero state, in calls of ``chunks`` frames each."""
    state = [np.zeros(s, np.float32) for s in shapes]
    pieces: list[list[np.ndarray]] = [[] for _ in outputs]
    start = 0
    for k in chunks:
        res = session.run([*outputs, *state_out], {"mel": mel[..., start:start + k], **dict(zip(state_in, state))})
        for i in range(len(outputs)):
            pieces[i].append(res[i])
        state = res[len(outputs):]
        start += k
    return [np.concatenate(p, axis=-1) for p in pieces]


def _random_chunks(frames: int, seed: int = 1, most: int = 16) -> list[int]:
    """Chunk sizes of 1..``most`` frames adding up to ``frames``."""
    rng = np.random.default_rng(seed)
    chunks: list[int] = []
    while sum(chunks) < frames:
        chunks.append(min(int(rng.integers(1, most + 1)), frames - sum(chunks)))
    return chunks


def export_graphs(config: VocoderConfig, generator: torch.nn.Module, out_dir: Path, name: str,
                  frames: int = 48) -> dict[str, Any]:
    """Write the streaming ONNX file into ``out_dir``; returns its path, tensor specs and parity figures."""
    spec = config.mel
    generator = remove_weight_norm(generator).eval()
    mel = torch.from_numpy(example_mel(spec, frames))[None]
    outputs = ["real", "imag"] if config.arch == "ap" else ["audio"]
    length_axis = "frames" if config.arch == "ap" else "samples"
    stream_path = out_dir / f"vocoder_{name}_stream.onnx"

    layers = stateful_layers(generator)
    shapes = [tuple(layer.state_shape(1)) for layer in layers]
    state_in = [f"state_in_{i}" for i in range(len(layers))]
    state_out = [f"state_out_{i}" for i in range(len(layers))]
    # Parity on a non-trivial state: run a few frames first and export with the state they leave.
    wrapper = StreamingModule(generator).eval()
    with torch.no_grad():
        warm = wrapper(mel[..., :5], *initial_state(generator))
    states = [s.detach() for s in warm[len(outputs):]]
    step_mel = mel[..., 5:8]
    err_stream = export_onnx(wrapper, (step_mel, *states), stream_path, ["mel", *state_in],
                             [*outputs, *state_out], {"mel": {2: "frames"},
                                                      **{o: {o_axis(config): length_axis} for o in outputs}})

    # Torch's offline generator against the streaming ONNX graph from zero state, run the engine's
    # two ways: all frames in one call (its offline path) and random chunks (its streaming path).
    with torch.no_grad():
        ref = generator(mel)
    ref = [r.numpy() for r in ([ref] if isinstance(ref, torch.Tensor) else ref)]
    session = _session(stream_path)
    whole = _run_stream(session, mel.numpy(), outputs, state_in, state_out, shapes, [frames])
    chunked = _run_stream(session, mel.numpy(), outputs, state_in, state_out, shapes, _random_chunks(frames))
    ref_audio = _audio_from(config, ref)
    err_raw = max(float(np.max(np.abs(w - r))) for w, r in zip(whole, ref))
    figures = {"parity_torch_onnx_offline": float(np.max(np.abs(ref_audio - _audio_from(config, whole)))),
               "parity_torch_onnx_streaming_raw": err_stream,
               "parity_torch_onnx_offline_raw": err_raw,
               "parity_stream_chunks_vs_offline": float(np.max(np.abs(ref_audio - _audio_from(config, chunked))))}
    figures["parity_max_abs_error"] = max(figures["parity_torch_onnx_offline"],
                                          figures["parity_stream_chunks_vs_offline"])
    if not figures["parity_max_abs_error"] <= PARITY_LIMIT:
        raise TrainError(f"{out_dir}: ONNX parity {figures['parity_max_abs_error']:.3g} exceeds {PARITY_LIMIT} "
                         f"({json.dumps(figures)})")
    frames_sym = "frames"
    out_specs = ([TensorSpec(o, (1, spec.n_freqs, frames_sym)) for o in outputs] if config.arch == "ap"
                 else [TensorSpec("audio", (1, "samples"))])
    mel_spec = TensorSpec("mel", (1, spec.n_mels, frames_sym))
    declared = {t.name: t.shape for t in [mel_spec, *out_specs]}
    declare_shapes(stream_path, {**declared, **{n: s for n, s in zip(state_in, shapes)},
                                 **{n: s for n, s in zip(state_out, shapes)}})
    return {
        "stream_path": stream_path,
        "inputs": [mel_spec], "outputs": out_specs,
        "state": [StateSpec(i, o, s) for i, o, s in zip(state_in, state_out, shapes)],
        "state_tensors": [TensorSpec(i, s) for i, s in zip(state_in, shapes)],
        "state_out_tensors": [TensorSpec(o, s) for o, s in zip(state_out, shapes)],
        "figures": figures,
    }


def declare_shapes(path: Path, shapes: dict[str, tuple]) -> None:
    """Write the declared shapes (ints fixed, strings symbolic) of graph inputs/outputs into the file.

    The TorchScript exporter leaves some output dims symbolic (e.g. batch) that the
    bundle pins to 1; only type annotations change, not the computation.
    """
    import onnx

    from melsynth.engine.atomic import atomic_write_bytes

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        want = shapes[value.name]
        if len(dims) != len(want):
            raise TrainError(f"{path}: {value.name} has rank {len(dims)}, expected {len(want)}")
        for d, w in zip(dims, want):
            if isinstance(w, int):
                d.dim_value = w
            else:
                d.dim_param = w
    atomic_write_bytes(path, model.SerializeToString())


def o_axis(config: VocoderConfig) -> int:
    """Length axis of the outputs: 2 for ``(1, 513, frames)``, 1 for ``(1, samples)``."""
    return 2 if config.arch == "ap" else 1


def _last_validation(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CURVE
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", None)}


def export_vocoder(run_dir: str | os.PathLike, bundle_dir: str | os.PathLike, name: str | None = None,
                   which: str = "best", weights: bool = True) -> dict[str, Any]:
    """Export ``run_dir`` into ``bundle_dir`` as vocoder ``name``; returns the bundle entry."""
    run_dir, root = Path(run_dir), Path(bundle_dir)
    config, generator, info = load_run_generator(run_dir, which)
    name = name or config.kind
    root.mkdir(parents=True, exist_ok=True)
    json_path = root / BUNDLE_FILE
    if json_path.is_file():
        try:
            data = json.loads(json_path.read_text())
        except json.JSONDecodeError as exc:
            raise TrainError(f"{json_path}: invalid JSON: {exc}") from exc
        bundle_mel = MelSpec.from_dict(data.get("mel", {}))
        if bundle_mel != config.mel:
            raise TrainError(f"{json_path}: mel {bundle_mel} differs from the run's {config.mel}")
    else:
        from melsynth.engine.offline.make_default_bundle import ensure_classical

        ensure_classical(root)
        data = json.loads(json_path.read_text())
    graphs = export_graphs(config, generator, root, name)
    n_params = sum(p.numel() for p in generator.parameters())
    streaming = graph_entry(root, graphs["stream_path"], [*graphs["inputs"], *graphs["state_tensors"]],
                            [*graphs["outputs"], *graphs["state_out_tensors"]], graphs["state"],
                            lookahead_frames=0, frames_per_step=None)
    entry = {
        "kind": config.kind,
        "params": dict(data.get("vocoders", {}).get(name, {}).get("params", {})),
        "streaming": streaming,
        "training": {"run": str(run_dir), "arch": config.arch, **info, "config": config.to_dict()},
        "figures": {**graphs["figures"], "parameters": int(n_params),
                    "validation_last": _last_validation(run_dir)},
    }
    if weights:
        weights_path = root / "train" / f"vocoder_{name}.pt"
        save_torch_atomic(weights_path, {
            "task_name": f"vocoder_{config.arch}", "task": config.to_dict(), "step": info["step"],
            "generator": {k: v.half() if v.is_floating_point() else v
                          for k, v in generator.state_dict().items()}})
        entry["training"]["weights"] = os.path.relpath(weights_path, root)
    old = json.loads(json.dumps(data))
    data.setdefault("schema_version", SCHEMA_VERSION)
    data.setdefault("vocoders", {})[name] = entry
    for other_name, other in data["vocoders"].items():
        # a variant sharing this graph (amplitude_phase_refined) must name the new file's checksum
        shared = other.get("streaming") if other_name != name else None
        if isinstance(shared, dict) and shared.get("file") == streaming["file"]:
            other["streaming"] = json.loads(json.dumps(streaming))
    if data.get("default_vocoder") not in data["vocoders"]:
        data["default_vocoder"] = name
    write_bundle_json(root, data)
    delete_unreferenced_graphs(root, old, data)  # an older bundle's vocoder_<name>.onnx
    return entry


def load_weights(path: str | os.PathLike) -> tuple[VocoderConfig, dict[str, torch.Tensor]]:
    """Config and float32 generator state dict of a bundle's ``train/vocoder_<name>.pt`` (for fine-tuning)."""
    ckpt = load_checkpoint(path)
    if "generator" not in ckpt or "task" not in ckpt:
        raise TrainError(f"{path}: not vocoder weights (needs 'task' and 'generator')")
    config = from_dict(VocoderConfig, ckpt["task"], f"{path}: task")
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["generator"].items()}
    return config, state
