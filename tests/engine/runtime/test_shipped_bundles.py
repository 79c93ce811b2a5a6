"""Every bundle in models/ loads, plays a step, and carries the figures it was measured with."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.runtime.bundle import load_bundle
from tests.paths import REPO

MODELS = REPO / "models"
BUNDLES = sorted(p.parent.name for p in MODELS.glob("*/bundle.json"))


def test_the_repository_ships_bundles():
    assert "default" in BUNDLES


@pytest.mark.parametrize("name", BUNDLES)
def test_shipped_bundle_is_trained_measured_and_runs(name):
    from melsynth.engine.runtime.prior import load_prior

    bundle = load_bundle(MODELS / name)   # checksums and shapes checked by the loader
    assert bundle.name == name
    for vname, voc in bundle.vocoders.items():
        figures = bundle.raw["vocoders"][vname].get("figures") or {}
        assert figures.get("mr_stft_ratio", 0) > 0 and figures.get("seconds", 0) > 0, vname
    assert bundle.prior is not None
    evaluation = bundle.prior.figures.get("eval") or {}
    assert 0 < evaluation.get("fd_ratio", 0) < evaluation["fd_ratio_gaussian"]   # beats the baseline it must
    assert evaluation["fd_ratio"] < evaluation.get("fd_ratio_real_chunks", float("inf"))   # and cut-and-paste
    assert bundle.prior.training.get("step", 0) > 0           # trained, not a random initialisation
    named = [d for d in bundle.prior.directions if d.kind == "named"]
    assert {d.name for d in named} >= {"loudness", "brightness"}
    prior = load_prior(bundle)
    mel = prior.steps(np.random.default_rng(0).standard_normal((2, prior.latent_size)).astype(np.float32))
    assert mel.shape == (bundle.mel.n_mels, 2 * prior.latent_frames) and np.all(np.abs(mel) <= 1.0)
    assert float(mel.std()) > 0.05   # a trained prior moves; it does not sit on one value
