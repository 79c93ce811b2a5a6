"""A shipped prior back in torch: its weights read out of the bundle's streaming ONNX graph.

Training checkpoints live in ``runs/`` and do not travel with the repository; the
bundles in ``models/`` do. Distilling a student from a shipped prior
(``training.prior.distill``) therefore starts from the bundle::

    bundle.json  prior.training.prior_config.generator  ->  Generator(config), weight norm removed
    prior_stream.onnx  initializers "net.<param>"        ->  the same-named parameters
                       two "[1, C, 1]" Add constants     ->  the upsamplers' biases (the exporter split
                                                             them off their ConvTranspose), in graph order

The rebuilt generator is run beside onnxruntime on random latents and refused
unless the two agree, so a misread weight cannot pass silently.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from melsynth.training.gan import TrainError
from melsynth.training.onnx_export import remove_weight_norm
from melsynth.training.prior.config import GeneratorConfig
from melsynth.training.prior.model import Generator

PARITY_TOLERANCE = 1e-4  # max |torch - onnxruntime| on normalised mel in [-1, 1]


def is_bundle(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / "bundle.json").is_file()


def _generator_config(bundle_json: Path) -> GeneratorConfig:
    prior = json.loads(bundle_json.read_text()).get("prior") or {}
    training = prior.get("training") or {}
    config = (training.get("prior_config") or {}).get("generator") or training.get("generator_config")
    if config is None:
        raise TrainError(f"{bundle_json}: the prior entry records no generator configuration "
                         "(prior.training.prior_config.generator)")
    return GeneratorConfig.from_dict(config)


def generator_from_bundle(bundle: str | Path) -> Generator:
    """The bundle's prior as an eval-mode torch ``Generator`` (plain weights, no weight norm)."""
    import onnx
    from onnx import numpy_helper

    from melsynth.engine.runtime.bundle import load_bundle
    from melsynth.engine.runtime.prior import Prior

    b = load_bundle(bundle)
    if b.prior is None:
        raise TrainError(f"{b.json_path}: the bundle has no prior")
    generator = remove_weight_norm(Generator(_generator_config(b.json_path))).eval()
    graph = onnx.load(str(b.prior.streaming.path)).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    state = generator.state_dict()
    loaded = {}
    for name, value in weights.items():
        if name.startswith("net.") and name[4:] in state:
            loaded[name[4:]] = torch.from_numpy(value.copy())
    # the upsamplers' biases: [1, C, 1] constants added right after each ConvTranspose, in graph order
    biases = [n for n in _use_order(graph) if n in weights and not n.startswith("net.")
              and weights[n].ndim == 3 and weights[n].shape[0] == 1 and weights[n].shape[2] == 1]
    wanted = [f"upsamplers.{i}.conv.bias" for i in range(len(generator.upsamplers))]
    for key, name in zip(wanted, biases):
        loaded[key] = torch.from_numpy(weights[name].reshape(-1).copy())
    missing = sorted(set(state) - set(loaded))
    if missing:
        raise TrainError(f"{b.prior.streaming.path}: no weights found for {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''} (not a prior exported by training.prior.export?)")
    try:
        generator.load_state_dict(loaded)
    except RuntimeError as exc:
        raise TrainError(f"{b.prior.streaming.path}: weights do not fit the configured generator: {exc}") from exc
    _check_parity(generator, Prior(b), b.prior.streaming.path)
    return generator.requires_grad_(False)


def _use_order(graph) -> list[str]:
    """Initializer names in the order the graph's nodes first use them."""
    seen: dict[str, None] = {}
    for node in graph.node:
        for name in node.input:
            seen.setdefault(name, None)
    return list(seen)


def _check_parity(generator: Generator, prior, path: Path, steps: int = 6) -> None:
    z = np.random.default_rng(0).standard_normal((steps, generator.latent_size)).astype(np.float32)
    want = prior.offline(z)
    with torch.no_grad():
        got = generator(torch.from_numpy(z.T[None].copy()))[0].numpy()
    err = float(np.max(np.abs(got - want)))
    if not err <= PARITY_TOLERANCE:
        raise TrainError(f"{path}: the weights read back give another prior (max difference {err:.2g} "
                         f"against onnxruntime, tolerance {PARITY_TOLERANCE:g})")
