"""Knob directions: named directions found by regression and verified; GANSpace PCA directions."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.directions import (PROPERTIES, NamedDirection, Protocol, activity, brightness_hz,
                                                loudness_db, named_directions, pca_directions, register_octaves,
                                                verify_directions)

SPEC = MelSpec()
K = 4  # frames per latent step of the synthetic "generator"


def synthetic_sample(z: np.ndarray) -> np.ndarray:
    """A known generator: level <- z0, spectral tilt <- z1, peak position <- z2, flicker <- z3 (normalised mel)."""
    b, _, steps = z.shape
    bins = np.arange(256)[None, :, None]
    zf = np.repeat(z, K, axis=2)                         # (b, latent, frames)
    level = -0.45 + 0.05 * zf[:, 0:1]
    tilt = 0.08 * zf[:, 1:2] * (bins / 256 - 0.5)
    peak = 60 + 12 * zf[:, 2:3]
    bump = 0.45 * np.exp(-((bins - peak) ** 2) / 18.0)
    flicker = 0.04 * (1 + np.tanh(zf[:, 3:4])) * ((np.arange(steps * K) % 2) * 2 - 1)[None, None]
    return np.clip(level + tilt + bump + flicker, -1, 1).astype(np.float32)


def test_properties_respond_to_what_they_name():
    base = np.full((1, 256, 8), -2.0)
    assert loudness_db(base + 0.5, SPEC)[0] == pytest.approx(loudness_db(base, SPEC)[0] + 10.0)
    tilted = base + np.linspace(-1, 1, 256)[None, :, None]
    assert brightness_hz(tilted, SPEC)[0] > brightness_hz(base, SPEC)[0]
    low, high = base.copy(), base.copy()
    low[0, 30], high[0, 90] = 0.0, 0.0
    assert register_octaves(high, SPEC)[0] > register_octaves(low, SPEC)[0] + 1.0
    flicker = base + 0.3 * (np.arange(8) % 2)[None, None]
    assert activity(flicker, SPEC)[0] > activity(base, SPEC)[0] == 0.0


def test_named_directions_recover_the_known_axes_and_verify():
    protocol = Protocol(latent_size=6, latent_frames=K, warmup_steps=1, measure_steps=3, batch=200)
    found = {d.name: d for d in named_directions(synthetic_sample, protocol, SPEC, n_regress=800, n_verify=400)}
    assert set(found) == set(PROPERTIES)
    for name, axis in (("loudness", 0), ("brightness", 1), ("register", 2), ("activity", 3)):
        d = found[name]
        assert np.linalg.norm(d.vector) == pytest.approx(1.0, abs=1e-6)
        assert abs(d.vector[axis]) == pytest.approx(np.max(np.abs(d.vector)))
        assert d.vector[axis] > 0.7, (name, d.vector)
        assert d.verified and d.verify_rate >= 0.9, (name, d.verify_rate)
        assert d.mean_change > 0


def test_verification_fails_for_a_direction_that_does_not_move_the_property():
    protocol = Protocol(latent_size=6, latent_frames=K, warmup_steps=1, measure_steps=3, batch=200)
    wrong = NamedDirection("register", np.eye(6, dtype=np.float32)[5], 1.0, 0.0)  # z5 drives nothing
    backwards = NamedDirection("loudness", -np.eye(6, dtype=np.float32)[0], 1.0, 0.0)
    verify_directions(synthetic_sample, protocol, [wrong, backwards], SPEC, n=200)
    assert wrong.verify_rate < 0.1 and not wrong.verified
    assert backwards.verify_rate == 0.0 and not backwards.verified


def test_pca_directions_are_the_principal_axes_of_a_linear_layer():
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    scales = np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    a = u * scales                                    # z @ a: latent axis u[:, 0] dominates
    embed, _ = np.linalg.qr(rng.standard_normal((12, 5)))   # orthonormal columns: 5 -> 12 channels
    dirs = pca_directions(lambda z: z @ a @ embed.T, latent_size=5, count=3, n_latents=20000, batch=5000)
    assert [d.name for d in dirs] == ["pc1", "pc2", "pc3"]
    for d, i in zip(dirs, range(3)):
        assert abs(float(d.vector @ u[:, i])) > 0.99
        assert d.sigma == pytest.approx(1.0, rel=0.05)   # linear map of N(0, I): one latent std per component std
    assert dirs[0].explained > dirs[1].explained > dirs[2].explained
