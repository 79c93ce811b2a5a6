"""``melsynth bundle slim BUNDLE_DIR``: drop the offline graphs that the streaming graphs make redundant.

Older bundles ship each neural model (the prior, every amplitude_phase / melgan
vocoder) twice: an offline graph and a streaming graph with the same weights.
The engine serves the offline path from the streaming graph run once from zero
state (``engine.runtime.bundle.run_streaming_graph``), so the offline graph only costs
space. For a bundle folder this:

1. loads it (checksums and graph signatures checked);
2. for every model that lists both graphs, runs the engine's offline path on a
   seeded random input (48 mel frames, 24 latent steps) twice, through the
   offline graph and through the streaming graph, and compares the raw graph
   outputs (``real``/``imag``, ``audio`` or the prior's normalised ``mel``);
3. refuses, changing nothing, if any model differs by more than 1e-4
   (``SlimError`` names the model, the bundle and the max difference);
4. rewrites ``bundle.json`` without the ``offline`` entries (atomic: temp file
   + rename), then deletes the offline ONNX files no graph entry names any more
   (two vocoders may share files). JSON first: a crash in between leaves unused
   files, never a bundle that names a missing one.

numpy + onnxruntime only.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from melsynth.engine.argtypes import finite_float
from melsynth.engine.runtime.bundle import (BUNDLE_FILE, NEURAL_VOCODER_KINDS, ModelBundle, load_bundle,
                                            write_bundle_json)

TOLERANCE = 1e-4
VOCODER_FRAMES = 48  # a few dozen frames: several steps and state hand-overs of every layer
PRIOR_STEPS = 24
SEED = 0


class SlimError(Exception):
    """A bundle that cannot be slimmed safely; nothing was changed."""


@dataclass
class SlimReport:
    bundle: Path
    parity: dict[str, float] = field(default_factory=dict)  # model -> max |offline - streaming|
    removed_entries: list[str] = field(default_factory=list)  # "vocoders.melgan.offline", ...
    deleted_files: list[str] = field(default_factory=list)  # relative to the bundle
    size_before: int = 0  # bytes of every file under the bundle folder
    size_after: int = 0


# --------------------------------------------------------------------------- parity
def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Max abs difference over paired outputs; inf when shapes differ or a value is not finite."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if np.shape(x) != np.shape(y):
            return float("inf")
        d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
        worst = max(worst, float(np.max(d)) if d.size else 0.0)
    return worst if np.isfinite(worst) else float("inf")


def _vocoder_parity(bundle: ModelBundle, name: str, rng: np.random.Generator) -> float:
    """Graph outputs of vocoder ``name`` on ``(n_mels, VOCODER_FRAMES)`` random log mel, offline vs streaming."""
    from melsynth.engine.runtime.vocoder import load_vocoder

    spec = bundle.mel
    mel = rng.uniform(spec.log_min, 0.0, size=(spec.n_mels, VOCODER_FRAMES)).astype(np.float32)
    with_offline = load_vocoder(bundle, name)
    slim_spec = dataclasses.replace(bundle.vocoders[name], offline=None)
    slim = load_vocoder(dataclasses.replace(bundle, vocoders={**bundle.vocoders, name: slim_spec}), name)
    return _max_diff(with_offline.graph_outputs(mel), slim.graph_outputs(mel))


def _prior_parity(bundle: ModelBundle, rng: np.random.Generator) -> float:
    """``Prior.offline`` on ``(PRIOR_STEPS, latent_size)`` random latents, offline graph vs streaming graph."""
    from melsynth.engine.runtime.prior import Prior

    z = rng.standard_normal((PRIOR_STEPS, bundle.prior.latent_size)).astype(np.float32)
    slim = dataclasses.replace(bundle, prior=dataclasses.replace(bundle.prior, offline=None))
    return _max_diff([Prior(bundle).offline(z)], [Prior(slim).offline(z)])


def parity(bundle: ModelBundle, seed: int = SEED) -> dict[str, float]:
    """``{model: max difference}`` for every neural model that lists both graphs (e.g. ``"vocoders.melgan"``)."""
    out = {}
    for name, v in bundle.vocoders.items():
        if v.kind in NEURAL_VOCODER_KINDS and v.offline is not None:
            out[f"vocoders.{name}"] = _vocoder_parity(bundle, name, np.random.default_rng(seed))
    if bundle.prior is not None and bundle.prior.offline is not None:
        out["prior"] = _prior_parity(bundle, np.random.default_rng(seed))
    return out


# --------------------------------------------------------------------------- files
def folder_size(root: Path) -> int:
    """Bytes of every regular file under ``root`` (what ships)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def _graph_files(data: dict, root: Path) -> set[Path]:
    """Resolved paths of every ONNX file a graph entry of ``bundle.json`` data names."""
    entries = [data.get("prior") or {}] + list((data.get("vocoders") or {}).values())
    return {(root / e[key]["file"]).resolve() for e in entries for key in ("offline", "streaming")
            if isinstance(e.get(key), dict) and "file" in e[key]}


def delete_unreferenced_graphs(root: str | Path, before: dict, after: dict) -> list[Path]:
    """Delete the ONNX files that ``before`` (old ``bundle.json`` data) names and ``after`` no longer does.

    Call after ``after`` is written, so the bundle never names a missing file. Two
    vocoder entries may share files: a file goes only when no entry names it.
    Returns the deleted paths.
    """
    root = Path(root)
    unused = sorted(_graph_files(before, root) - _graph_files(after, root))
    for f in unused:
        f.unlink(missing_ok=True)
    return unused


def _without_offline(data: dict, models: list[str]) -> dict:
    """A copy of ``bundle.json`` data with the ``offline`` entry of each model removed."""
    data = json.loads(json.dumps(data))
    for model in models:
        entry = data["prior"] if model == "prior" else data["vocoders"][model.split(".", 1)[1]]
        del entry["offline"]
    return data


# --------------------------------------------------------------------------- migration
def slim_bundle(path: str | Path, tolerance: float = TOLERANCE, log: Callable[[str], None] = print) -> SlimReport:
    """Check, then remove every offline graph of the bundle at ``path``. Raises ``SlimError`` (nothing changed)."""
    bundle = load_bundle(path)
    root = bundle.root
    report = SlimReport(bundle=root, size_before=folder_size(root))
    report.parity = parity(bundle)
    for model, diff in report.parity.items():
        if not diff <= tolerance:
            raise SlimError(f"{root}: {model}: the streaming graph from zero state differs from the offline graph "
                            f"by {diff:.3g} (max abs, tolerance {tolerance:g}); bundle left unchanged")
    if not report.parity:
        log(f"{root}: no offline graphs to remove")
        report.size_after = report.size_before
        return report

    data = json.loads((root / BUNDLE_FILE).read_text())
    slimmed = _without_offline(data, list(report.parity))
    write_bundle_json(root, slimmed)  # first: the bundle never names a file that is gone
    load_bundle(root)  # the engine's own validation of what was written
    unused = delete_unreferenced_graphs(root, data, slimmed)
    report.removed_entries = [f"{model}.offline" for model in report.parity]
    report.deleted_files = [str(f.relative_to(root.resolve())) for f in unused]
    report.size_after = folder_size(root)
    for model, diff in report.parity.items():
        log(f"removed {model}.offline (streaming graph matches it within {diff:.2g})")
    for f in report.deleted_files:
        log(f"deleted {f}")
    log(f"{root}: {report.size_before / 1e6:.1f} MB -> {report.size_after / 1e6:.1f} MB")
    return report


def register(sub) -> None:
    """``melsynth bundle slim BUNDLE``: its arguments; ``run_slim`` handles it."""
    p = sub.add_parser("slim", help="remove a bundle's offline ONNX graphs after checking that its streaming "
                                    "graphs reproduce them (offline then runs the streaming graphs)")
    p.add_argument("bundle", type=Path, help="bundle folder, e.g. models/default")
    p.add_argument("--tolerance", type=finite_float(0, 1, lo_open=True), default=TOLERANCE, help="max abs difference allowed")
    p.set_defaults(func=run_slim)


def run_slim(args: argparse.Namespace) -> int:
    from melsynth.engine.errors import MelsynthError

    try:
        slim_bundle(args.bundle, args.tolerance)
    except SlimError as exc:
        raise MelsynthError(str(exc)) from exc
    return 0
