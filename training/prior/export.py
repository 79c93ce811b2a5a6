"""Export a trained prior into a model bundle: one streaming ONNX graph, the knobs, the figures.

::

    models/NAME/
      bundle.json        "prior" entry added or replaced; every other entry kept
      prior_stream.onnx  "z" (1, latent, k), state_in_0..n -> "mel" (1, n_mels, k * latent_frames), state_out_0..n
                         (any number k of steps per call)

There is no offline graph: the engine's offline path runs the streaming graph
once over all steps from zero state (``engine.bundle.run_streaming_graph``).
Parity is checked against torch's offline generator: by ``export_onnx`` on a
non-zero state, then over a multi-step latent with the ONNX graph run both
ways the engine runs it (all steps in one call, and one step per call). Every
figure goes into ``figures.parity``; any above 1e-4 aborts the export. A
re-export deletes the old ``prior.onnx`` of an older bundle.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from melsynth.engine.runtime.bundle import (BUNDLE_FILE, SCHEMA_VERSION, StateSpec, TensorSpec, graph_entry,
                                            write_bundle_json)
from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.offline.slim_bundle import delete_unreferenced_graphs
from melsynth.training.onnx_export import export_onnx
from melsynth.training.prior.model import Generator, streaming_generator

STREAMING_FILE = "prior_stream.onnx"
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """An export that would write a broken bundle (message names the file)."""


def _run_stream(session, z: np.ndarray, state_shapes, steps_per_call: int) -> np.ndarray:
    """The streaming ONNX graph over all of ``z (1, latent, S)`` from zero state, ``steps_per_call`` at a time."""
    states = [np.zeros(s, dtype=np.float32) for s in state_shapes]
    names_out = ["mel"] + [f"state_out_{i}" for i in range(len(states))]
    outs = []
    for t in range(0, z.shape[2], steps_per_call):
        feeds = {"z": z[:, :, t:t + steps_per_call], **{f"state_in_{i}": s for i, s in enumerate(states)}}
        result = session.run(names_out, feeds)
        outs.append(result[0])
        states = result[1:]
    return np.concatenate(outs, axis=2)


def _streaming_parity(generator: Generator, streaming_path: Path, state_shapes, steps: int = 12,
                      seed: int = 0) -> dict[str, float]:
    """max |torch offline(z) - ONNX stream(z)| over ``steps`` latent steps, for the engine's two ways of running it.

    ``offline_torch_vs_streaming_onnx``: all steps in one call (the engine's offline path);
    ``steps_torch_vs_streaming_onnx``: one latent step per call (its streaming path).
    """
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((1, generator.latent_size, steps)).astype(np.float32)
    with torch.no_grad():
        reference = generator(torch.from_numpy(z)).numpy()
    session = ort.InferenceSession(str(streaming_path), providers=["CPUExecutionProvider"])
    return {f"{label}_torch_vs_streaming_onnx": float(np.max(np.abs(_run_stream(session, z, state_shapes, k)
                                                                     - reference)))
            for label, k in (("offline", steps), ("steps", 1))}


def _declare_static_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Write the fixed shapes of the state outputs into the ONNX file.

    A state output is a slice ``x[..., T - context:]`` of a tensor whose length
    depends on the dynamic step count, so the exporter leaves its last dimension
    symbolic although it is always ``context``; the bundle declares (and the
    engine preallocates) the exact shape.
    """
    import onnx

    from melsynth.engine.atomic import atomic_write_bytes

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
    """Write the streaming ONNX graph into ``bundle_dir``; returns its bundle entry and parity figures."""
    bundle_dir = Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    generator = generator.eval().cpu()
    L, K, n_mels = generator.latent_size, generator.latent_frames, generator.config.n_mels
    torch.manual_seed(0)
    shapes = generator.state_shapes(1)
    names_in = [f"state_in_{i}" for i in range(len(shapes))]
    names_out = [f"state_out_{i}" for i in range(len(shapes))]
    states = [torch.randn(s) * 0.1 for s in shapes]  # non-zero: the parity check exercises the state path
    streaming_path = bundle_dir / STREAMING_FILE
    err_streaming = export_onnx(streaming_generator(generator), [torch.randn(1, L, 2), *states], streaming_path,
                                ["z", *names_in], ["mel", *names_out], {"z": {2: "steps"}, "mel": {2: "frames"}})
    _declare_static_shapes(streaming_path, dict(zip(names_out, shapes)))
    parity = {"streaming_torch_onnx": err_streaming, **_streaming_parity(generator, streaming_path, shapes)}
    for label, err in parity.items():
        if not err <= PARITY_TOLERANCE:
            raise ExportError(f"{streaming_path}: parity {label} {err:.3g} exceeds {PARITY_TOLERANCE:g}")
    z_in = TensorSpec("z", (1, L, "steps"))
    mel_out = TensorSpec("mel", (1, n_mels, "frames"))
    state_specs = [StateSpec(i, o, tuple(s)) for i, o, s in zip(names_in, names_out, shapes)]
    return {
        "streaming": graph_entry(bundle_dir, streaming_path,
                                 [z_in] + [TensorSpec(s.input, s.shape) for s in state_specs],
                                 [mel_out] + [TensorSpec(s.output, s.shape) for s in state_specs],
                                 state_specs, frames_per_step=K),
        "parity": parity,
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
        "streaming": graphs["streaming"],
        "latent_size": generator.latent_size,
        "latent_frames": generator.latent_frames,
        **({"phrase_size": generator.phrase_size} if generator.phrase_size else {}),
        "directions": list(directions or []),
        "training": {"generator_config": generator.config.to_dict(), **(training or {})},
        "figures": {"parity": graphs["parity"], **(figures or {})},
    }
    old = json.loads(json.dumps(data))
    data["prior"] = entry
    write_bundle_json(bundle_dir, data)
    delete_unreferenced_graphs(bundle_dir, old, data)  # an older bundle's prior.onnx
    return entry


def compute_directions(generator: Generator, spec: MelSpec | None = None, n_pca_latents: int = 100_000,
                       n_pca: int = 12, n_regress: int = 4000, n_verify: int = 1000, seed: int = 0,
                       fit_steps: int = 60, log=print) -> tuple[list[dict], dict[str, Any]]:
    """Named + PCA directions for the bundle, and their figures (verification rates etc.).

    Named directions: regressed, then (``fit_steps > 0``) fitted to the knob's own
    objective (``training.prior.direction_fit``), then verified.
    """
    from melsynth.training.prior.direction_fit import FitConfig, fit_direction, torch_properties
    from melsynth.training.prior.directions import (Protocol, format_directions, generator_features_fn,
                                                    named_directions, pca_directions)
    from melsynth.training.prior.train import torch_sample_fn

    spec = spec or MelSpec()
    generator = generator.eval()
    device = next(generator.parameters()).device
    protocol = Protocol(generator.latent_size, generator.latent_frames, phrase_size=generator.phrase_size)
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
