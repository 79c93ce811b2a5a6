"""FD-mel, NDB and the reference built from a corpus (numpy only)."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.evaluate import (GaussianStats, PriorReference, assign_bins, frechet_distance,
                                              gaussian_frame_windows, generate_windows, kmeans, mel_grid_image,
                                              ndb_test, window_features)
from tests.prior_fixtures import make_synthetic_corpus


def test_window_features_layout():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 256, 20))
    f = window_features(w)
    assert f.shape == (5, 1024)
    np.testing.assert_allclose(f[:, :256], w.mean(2))
    np.testing.assert_allclose(f[:, 256:512], w.std(2))
    np.testing.assert_allclose(f[:, 768:], np.diff(w, axis=2).std(2))


def test_frechet_distance_identical_sets_is_zero_and_shift_grows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)) @ rng.standard_normal((16, 16))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    shifts = [frechet_distance(x, x + s) for s in (0.5, 1.0, 2.0)]
    # a pure mean shift s in every one of 16 dims: exactly 16 s^2
    np.testing.assert_allclose(shifts, [16 * s * s for s in (0.5, 1.0, 2.0)], rtol=1e-6)


def test_frechet_distance_matches_closed_form_for_gaussians():
    """FD(N(0, I), N(0, 4I)) = d * (1 + 4 - 2*2) = d."""
    rng = np.random.default_rng(1)
    a = GaussianStats(np.zeros(8), np.eye(8), 10)
    b = GaussianStats(np.zeros(8), 4 * np.eye(8), 10)
    assert frechet_distance(a, b) == pytest.approx(8.0)
    sample = frechet_distance(rng.standard_normal((20000, 8)), 2 * rng.standard_normal((20000, 8)))
    assert sample == pytest.approx(8.0, rel=0.05)


def test_gaussian_baseline_matches_frame_moments():
    rng = np.random.default_rng(2)
    frames = rng.standard_normal((5000, 4)) @ np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0], [0, 0, 0, 1.0]])
    w = gaussian_frame_windows(frames, 400, 25, rng)
    flat = w.transpose(0, 2, 1).reshape(-1, 4)
    np.testing.assert_allclose(flat.mean(0), frames.mean(0), atol=0.05)
    np.testing.assert_allclose(np.cov(flat, rowvar=False), np.cov(frames, rowvar=False), atol=0.1)


def test_ndb_same_distribution_few_bins_shifted_many():
    rng = np.random.default_rng(3)
    centres_true = rng.standard_normal((10, 6)) * 4
    def draw(n, weights):
        idx = rng.choice(10, size=n, p=weights)
        return centres_true[idx] + rng.standard_normal((n, 6))
    uniform = np.full(10, 0.1)
    train = draw(20000, uniform)
    centres = kmeans(train, 10, rng)
    ref_bins = assign_bins(train, centres)
    same, _ = ndb_test(ref_bins, assign_bins(draw(2000, uniform), centres), 10)
    skewed = np.array([0.5] + [0.5 / 9] * 9)
    different, _ = ndb_test(ref_bins, assign_bins(draw(2000, skewed), centres), 10)
    assert same <= 2
    assert different >= 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("prior_corpus") / "corpus")


@pytest.fixture(scope="module")
def reference(corpus):
    return PriorReference(corpus, n_windows=200, window_frames=32)


def test_reference_floor_below_baselines(reference):
    """Real train windows are much closer to the test split than either baseline."""
    assert reference.fd["floor"] > 0
    assert reference.fd["gaussian"] > 2 * reference.fd["floor"]
    assert reference.fd["shuffled"] > 2 * reference.fd["floor"]


def test_score_of_real_windows_near_floor_and_noise_far(corpus, reference):
    from melsynth.training.prior.data import load_split

    rng = np.random.default_rng(5)
    train = load_split(corpus, "train", min_frames=32)
    real = reference.score(train.sample_windows(200, 32, rng))
    assert real["fd_ratio"] < 1.6
    noise = reference.score(rng.uniform(-5, 1, size=(200, 256, 32)).astype(np.float32))
    assert noise["fd_ratio"] > 10 and noise["fd_mel"] > real["fd_mel"]
    assert noise["ndb"] > real["ndb"]
    assert real["fd_gaussian"] == reference.fd["gaussian"]


def test_generate_windows_crops_after_warmup_and_denormalises():
    spec = MelSpec()
    calls = []

    def sample(z):
        calls.append(z.shape)
        b, _, steps = z.shape
        frames = np.arange(steps * 4, dtype=np.float32)
        return np.broadcast_to(frames / 1000.0, (b, 256, steps * 4)).copy()

    w = generate_windows(sample, latent_size=3, latent_frames=4, n=10, window_frames=8, rng=np.random.default_rng(0),
                         batch=2, windows_per_sequence=3, warmup_steps=2)
    assert w.shape == (10, 256, 8)
    first = spec.normalize(w[:, 0, 0]) * 1000.0
    assert np.all(first >= 2 * 4 - 1e-3)          # never inside the warm-up
    assert calls[0] == (2, 3, calls[0][2])


def test_grid_image_is_rgb_uint8():
    img = mel_grid_image(np.full((2, 256, 16), -5.0), np.full((2, 256, 16), 2.0))
    assert img.dtype == np.uint8 and img.shape == (256 * 2 + 4, 32, 3)
    assert img[0, 0].sum() > img[-1, 0].sum()  # loud real row (bottom of the array is the top row flipped)


def test_reference_save_load_scores_identically(reference, tmp_path):
    from melsynth.training.prior.evaluate import PriorReference

    path = reference.save(tmp_path / "ref.npz")
    again = PriorReference.load(path)
    windows = np.random.default_rng(9).uniform(-4, 0, size=(50, 256, 32)).astype(np.float32)
    assert again.score(windows) == reference.score(windows)
    assert again.fd == reference.fd and again.real_examples.shape == reference.real_examples.shape
