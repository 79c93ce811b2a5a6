"""Export a trained prior into a model bundle: two ONNX graphs, the knobs, the figures.

::

    models/NAME/
      bundle.json        "prior" entry added or replaced; every other entry kept
      prior.onnx         "z" (1, latent, steps) -> "mel" (1, n_mels, steps * latent_frames)
      prior_stream.onnx  "z", state_in_0..n -> "mel", state_out_0..n   (any number of steps per call)

Parity is checked twice: torch against onnxruntime for each graph
(``export_onnx``), and the streaming graph run one latent step at a time
against the offline graph. Both go into ``figures``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.bundle import BUNDLE_FILE, SCHEMA_VERSION, StateSpec, TensorSpec, graph_entry, write_bundle_json
from engine.features import MelSpec
from training.onnx_export import export_onnx
from training.prior.model import Generator, streaming_generator

OFFLINE_FILE = "prior.onnx"
STREAMING_FILE = "prior_stream.onnx"
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that would write a broken bundle (message names the file)."""


def _streaming_parity(offline_path: Path, streaming_path: Path, latent_size: int, state_shapes, steps: int = 12,
                      seed: int = 0) -> float:
    """max |offline(z) - concat(stream(z_t))| of the two ONNX files, one latent step per streaming call."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((1, latent_size, steps)).astype(np.float32)
    off = ort.InferenceSession(str(offline_path), providers=["CPUExecutionProvider"])
    stream = ort.InferenceSession(str(streaming_path), providers=["CPUExecutionProvider"])
    reference = off.run(["mel"], {"z": z})[0]
    states = [np.zeros(s, dtype=np.float32) for s in state_shapes]
    outs = []
    for t in range(steps):
        feeds = {"z": z[:, :, t:t + 1], **{f"state_in_{i}": s for i, s in enumerate(states)}}
        result = stream.run(["mel"] + [f"state_out_{i}" for i in range(len(states))], feeds)
        outs.append(result[0])
        states = result[1:]
    return float(np.max(np.abs(np.concatenate(outs, axis=2) - reference)))


def _declare_static_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Write the fixed shapes of the state outputs into the ONNX file.

    A state output is a slice ``x[..., T - context:]`` of a tensor whose length
    depends on the dynamic step count, so the exporter leaves its last dimension
    symbolic although it is always ``context``; the bundle declares (and the
    engine preallocates) the exact shape.
    """
    import onnx

    from engine.atomic import atomic_write_bytes

    model = onnx.load(str(path))
    for output in model.graph.output:
        if output.name in shapes:
            dims = output.type.tensor_type.shape.dim
            want = shapes[output.name]
            if len(dims) != len(want):
                raise ExportError(f"{path}: output {output.name} has rank {len(dims)}, state shape is {want}")
            for d, n in zip(dims, want):
                d.Clear()
                d.dim_value = int(n)
    onnx.checker.check_model(model)
    atomic_write_bytes(path, model.SerializeToString())


def export_graphs(generator: Generator, bundle_dir: str | Path) -> dict[str, Any]:
    """Write both ONNX graphs into ``bundle_dir``; returns the bundle's graph entries and parity figures."""
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    generator = generator.eval().cpu()
    L, K, n_mels = generator.latent_size, generator.latent_frames, generator.config.n_mels
    torch.manual_seed(0)
    z = torch.randn(1, L, 6)
    offline_path = bundle_dir / OFFLINE_FILE
    err_offline = export_onnx(generator, [z], offline_path, ["z"], ["mel"],
                              {"z": {2: "steps"}, "mel": {2: "frames"}})
    shapes = generator.state_shapes(1)
    names_in = [f"state_in_{i}" for i in range(len(shapes))]
    names_out = [f"state_out_{i}" for i in range(len(shapes))]
    states = [torch.randn(s) * 0.1 for s in shapes]  # non-zero: the parity check exercises the state path
    streaming_path = bundle_dir / STREAMING_FILE
    err_streaming = export_onnx(streaming_generator(generator), [torch.randn(1, L, 2), *states], streaming_path,
                                ["z", *names_in], ["mel", *names_out], {"z": {2: "steps"}, "mel": {2: "frames"}})
    _declare_static_shapes(streaming_path, dict(zip(names_out, shapes)))
    err_stream_vs_offline = _streaming_parity(offline_path, streaming_path, L, shapes)
    for label, err in (("offline torch/onnx", err_offline), ("streaming torch/onnx", err_streaming),
                       ("streaming/offline onnx", err_stream_vs_offline)):
        if not err <= PARITY_TOLERANCE:
            raise ExportError(f"{bundle_dir}: {label} parity {err:.3g} exceeds {PARITY_TOLERANCE:g}")
    z_in = TensorSpec("z", (1, L, "steps"))
    mel_out = TensorSpec("mel", (1, n_mels, "frames"))
    state_specs = [StateSpec(i, o, tuple(s)) for i, o, s in zip(names_in, names_out, shapes)]
    return {
        "offline": graph_entry(bundle_dir, offline_path, [z_in], [mel_out], frames_per_step=K),
        "streaming": graph_entry(bundle_dir, streaming_path,
                                 [z_in] + [TensorSpec(s.input, s.shape) for s in state_specs],
                                 [mel_out] + [TensorSpec(s.output, s.shape) for s in state_specs],
                                 state_specs, frames_per_step=K),
        "parity": {"offline_torch_onnx": err_offline, "streaming_torch_onnx": err_streaming,
                   "streaming_vs_offline_onnx": err_stream_vs_offline},
    }


def read_bundle_json(bundle_dir: Path, spec: MelSpec) -> dict[str, Any]:
    """The bundle's JSON as it is, or a new bundle with the classical vocoder if there is none yet."""
    path = bundle_dir / BUNDLE_FILE
    if not path.is_file():
        return {"schema_version": SCHEMA_VERSION, "name": bundle_dir.name, "mel": spec.to_dict(),
                "default_vocoder": "classical", "vocoders": {"classical": {"kind": "classical", "params": {}}}}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: invalid JSON, refusing to overwrite it: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path}: top level is not an object, refusing to overwrite it")
    if data.get("mel") != spec.to_dict():
        raise ExportError(f"{path}: the bundle's mel {data.get('mel')} differs from the prior's {spec.to_dict()}")
    return data


def export_prior(generator: Generator, bundle_dir: str | Path, spec: MelSpec | None = None,
                 directions: list[dict] | None = None, training: dict | None = None,
                 figures: dict | None = None) -> dict[str, Any]:
    """Graphs + ``prior`` entry into ``bundle_dir/bundle.json`` (other entries kept). Returns the entry."""
    spec = spec or MelSpec()
    bundle_dir = Path(bundle_dir)
    data = read_bundle_json(bundle_dir, spec)   # before writing anything: refuse a foreign bundle early
    graphs = export_graphs(generator, bundle_dir)
    entry = {
        "offline": graphs["offline"],
        "streaming": graphs["streaming"],
        "latent_size": generator.latent_size,
        "latent_frames": generator.latent_frames,
        "directions": list(directions or []),
        "training": {"generator_config": generator.config.to_dict(), **(training or {})},
        "figures": {"parity": graphs["parity"], **(figures or {})},
    }
    data["prior"] = entry
    write_bundle_json(bundle_dir, data)
    return entry


def compute_directions(generator: Generator, spec: MelSpec | None = None, n_pca_latents: int = 100_000,
                       n_pca: int = 12, n_regress: int = 4000, n_verify: int = 1000, seed: int = 0,
                       fit_steps: int = 60, log=print) -> tuple[list[dict], dict[str, Any]]:
    """Named + PCA directions for the bundle, and their figures (verification rates etc.).

    Named directions: regressed, then (``fit_steps > 0``) fitted to the knob's own
    objective (``training.prior.direction_fit``), then verified.
    """
    from training.prior.direction_fit import FitConfig, fit_direction, torch_properties
    from training.prior.directions import (Protocol, format_directions, generator_features_fn,
                                           named_directions, pca_directions)
    from training.prior.train import torch_sample_fn

    spec = spec or MelSpec()
    generator = generator.eval()
    device = next(generator.parameters()).device
    protocol = Protocol(generator.latent_size, generator.latent_frames)
    properties = torch_properties(spec)

    def refine(name: str, vector: np.ndarray) -> np.ndarray:
        return fit_direction(generator, properties[name], protocol, spec, vector, FitConfig(steps=fit_steps),
                             seed=seed)

    named = named_directions(torch_sample_fn(generator, device), protocol, spec, n_regress=n_regress,
                             n_verify=n_verify, seed=seed, refine=refine if fit_steps > 0 else None)
    pca = pca_directions(generator_features_fn(generator, device=str(device)), generator.latent_size,
                         count=n_pca, n_latents=n_pca_latents, seed=seed)
    log(format_directions(named, pca))
    figures = {
        "named": {d.name: {"verify_rate": d.verify_rate, "mean_change_at_2sigma": d.mean_change, "r2": d.r2,
                           "standardised_change": d.cross} for d in named},
        "pca": {d.name: {"sigma": d.sigma, "explained_variance": d.explained} for d in pca},
        "protocol": {"warmup_steps": protocol.warmup_steps, "measure_steps": protocol.measure_steps,
                     "n_regress": n_regress, "n_verify": n_verify, "n_pca_latents": n_pca_latents,
                     "fit_steps": fit_steps, "fit_batch": FitConfig().batch},
    }
    return [d.to_bundle() for d in named] + [d.to_bundle() for d in pca], figures
