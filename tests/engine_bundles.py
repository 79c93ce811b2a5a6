"""Tiny real bundles for the engine's tests: ONNX graphs with random weights (fixtures, never shipped).

``tiny_prior_bundle(root)``: the classical vocoder plus a tiny prior exported with
the prior helper's exporter and two directions. Needs torch (the ``train`` extra).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_prior_bundle(root: Path, name: str = "tiny-engine") -> Path:
    import torch

    from engine.bundle import SCHEMA_VERSION, load_bundle, write_bundle_json
    from engine.features import MelSpec
    from tests.prior_fixtures import tiny_generator_config
    from training.prior.export import export_prior
    from training.prior.model import Generator

    root.mkdir(parents=True, exist_ok=True)
    spec = MelSpec()
    write_bundle_json(root, {"schema_version": SCHEMA_VERSION, "name": name, "mel": spec.to_dict(),
                             "default_vocoder": "classical",
                             "vocoders": {"classical": {"kind": "classical", "params": {}}}})
    torch.manual_seed(1)
    from training.onnx_export import remove_weight_norm

    # plain weights up front: the random fixture does not need weight norm, and exporting plain
    # layers keeps this fixture independent of how the exporter handles parametrisations
    gen = remove_weight_norm(Generator(tiny_generator_config())).eval()
    rng = np.random.default_rng(1)
    directions = []
    for dname, kind in (("loudness", "named"), ("pc1", "pca")):
        v = rng.standard_normal(gen.latent_size)
        directions.append({"name": dname, "kind": kind, "vector": (v / np.linalg.norm(v)).tolist(), "sigma": 1.0})
    export_prior(gen, root, spec, directions=directions)
    load_bundle(root)  # checks the graphs
    return root


def real_prior_fake_vocoder_loader():
    """The bundle's real ONNX prior with the numpy fake vocoder (until a tiny neural vocoder is needed)."""
    from engine.prior import load_prior
    from tests.engine_fakes import FakeVocoder

    def load(bundle, vocoder_name):
        return load_prior(bundle), FakeVocoder(bundle.mel, name=vocoder_name)
    return load
