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


def test_spread_ratio_sees_windows_that_vary_too_little(corpus, reference):
    """Real windows vary about as the test split's do; the same windows pulled halfway to their
    average spectrum keep every frame's shape but a quarter of the variety between windows."""
    from melsynth.training.prior.data import load_split

    train = load_split(corpus, "train", min_frames=32)
    real = train.sample_windows(200, 32, np.random.default_rng(6))
    full = reference.score(real)["spread_ratio"]
    assert 0.6 < full < 1.6
    band_means = real.mean(axis=2, keepdims=True)
    squeezed = real - band_means + 0.5 * (band_means + band_means.mean(axis=0, keepdims=True))
    assert reference.score(squeezed)["spread_ratio"] == pytest.approx(0.25 * full, rel=1e-6)


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


def test_fd_of_each_part_names_the_part_that_differs(corpus, reference):
    """Windows whose frames swing twice as far about their own average keep their band means,
    so only the spreads' parts move; the floors are real train windows' own figures."""
    from melsynth.training.prior.data import load_split
    from melsynth.training.prior.evaluate import FEATURE_GROUPS

    real = load_split(corpus, "train", min_frames=32).sample_windows(200, 32, np.random.default_rng(7))
    base = reference.score(real)
    band_means = real.mean(axis=2, keepdims=True)
    swung = reference.score(band_means + 2.0 * (real - band_means))
    for g in FEATURE_GROUPS:
        assert np.isfinite(base[f"fd_{g}"]) and base[f"fd_{g}_floor"] > 0
        assert base[f"fd_{g}_floor"] == reference.fd_group_floor[g]
    assert swung["fd_band_mean"] == pytest.approx(base["fd_band_mean"], rel=1e-6)
    assert swung["fd_band_std"] > 3 * base["fd_band_std"] and swung["fd_diff_std"] > 3 * base["fd_diff_std"]
    assert sum(base[f"fd_{g}_floor"] for g in FEATURE_GROUPS) < 1.5 * reference.fd["floor"]


def test_reference_save_load_scores_identically(reference, tmp_path):
    from melsynth.training.prior.evaluate import PriorReference

    path = reference.save(tmp_path / "ref.npz")
    again = PriorReference.load(path)
    windows = np.random.default_rng(9).uniform(-4, 0, size=(50, 256, 32)).astype(np.float32)
    assert again.score(windows) == reference.score(windows)
    assert again.fd == reference.fd and again.real_examples.shape == reference.real_examples.shape


# --------------------------------------------------------------------------- real-chunk baseline
def _indexed_split(files: int = 3, frames: int = 60):
    """A SplitMels whose every frame is unique: bin 0 = file, bin 1 = frame index."""
    from melsynth.training.prior.data import SplitMels

    mels = []
    for f in range(files):
        m = np.zeros((256, frames), np.float32)
        m[0], m[1] = f, np.arange(frames)
        mels.append(m)
    return SplitMels(corpus_dir=".", split="train", mels=mels, paths=[f"f{f}" for f in range(files)])


def test_real_chunk_windows_are_runs_of_consecutive_train_frames():
    from melsynth.training.prior.evaluate import real_chunk_windows

    split, chunk = _indexed_split(), 8
    w = real_chunk_windows(split, 20, 30, chunk, np.random.default_rng(0))
    assert w.shape == (20, 256, 30)
    seams = 0
    for window in w:
        f, i = window[0].astype(int), window[1].astype(int)
        run = 1
        for t in range(1, 30):
            if f[t] == f[t - 1] and i[t] == i[t - 1] + 1 and run < chunk:
                run += 1
            else:                      # a seam: the previous run was a whole chunk (or the cropped first one)
                seams += 1
                run = 1
        # every frame is a real train frame
        assert all(np.array_equal(window[:, t], split.mels[f[t]][:, i[t]]) for t in range(30))
    assert seams >= 20 * (30 // chunk - 1)  # chunks are independent draws, not a contiguous window


def test_reference_reports_real_chunk_baseline(reference):
    rng = np.random.default_rng(11)
    s = reference.score(rng.uniform(-4, 0, size=(200, 256, 32)).astype(np.float32))
    assert np.isfinite(s["fd_real_chunks"]) and s["fd_ratio_real_chunks"] == pytest.approx(
        s["fd_real_chunks"] / s["fd_floor"])
    # cut-and-paste of real mel is closer to the test split than frames with no time order
    assert reference.fd["floor"] < reference.fd["real_chunks"] < reference.fd["shuffled"]
    assert 0 <= s["ndb_real_chunks"] <= 50


def test_saved_reference_without_new_fields_loads_with_nan_baseline(reference, tmp_path):
    import json

    path = reference.save(tmp_path / "ref.npz")
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(bytes(arrays["meta"]).decode())
    for key in ("ndb_real_chunks", "chunk_frames", "corpus_dir", "render_reference"):
        meta.pop(key)
    meta["fd"].pop("real_chunks")
    meta.pop("fd_group_floor")
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    old = PriorReference.load(tmp_path / "old.npz")
    s = old.score(np.random.default_rng(1).uniform(-4, 0, size=(50, 256, 32)).astype(np.float32))
    assert np.isnan(s["fd_real_chunks"]) and np.isnan(s["ndb_real_chunks"]) and np.isfinite(s["fd_ratio"])
    assert np.isnan(s["fd_band_mean_floor"]) and np.isfinite(s["fd_band_mean"])
    again = PriorReference.load(old.save(tmp_path / "resaved.npz"))   # JSON has no NaN: saved as null
    assert np.isnan(again.fd["real_chunks"]) and again.fd["floor"] == reference.fd["floor"]


# --------------------------------------------------------------------------- contact sheet, learning curve
def _synthetic_sample(latent_frames: int = 4, seed: int = 0):
    """A torch-free SampleFn drawing music-like synthetic mel (normalised)."""
    from tests.prior_fixtures import synthetic_log_mel

    spec, rng = MelSpec(), np.random.default_rng(seed)

    def sample(z):
        b, _, steps = z.shape
        return np.stack([spec.normalize(synthetic_log_mel(steps * latent_frames, rng, spec)) for _ in range(b)])

    return sample


def test_contact_sheet_png_shape(reference, tmp_path):
    import matplotlib.image

    from melsynth.training.prior.evaluate import contact_sheet, contact_windows

    gen, real = contact_windows(_synthetic_sample(), 3, 4, reference, np.random.default_rng(0))
    frames = round(6.0 * MelSpec().frame_rate)
    assert gen.shape == (8, 256, frames) and real.shape == (8, 256, frames)
    path = contact_sheet(tmp_path / "sheet.png", gen, real)
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (960, 1280)
    assert img[..., :3].std() > 0.05  # not blank


def test_learning_curve_point_keys_finite_and_cheap(reference):
    import time

    from melsynth.training.prior.evaluate import learning_curve_point
    from melsynth.training.prior.render_stats import STAT_KEYS

    t0 = time.process_time()
    point = learning_curve_point(_synthetic_sample(), reference, latent_size=3, latent_frames=4, reference_clips=4)
    assert time.process_time() - t0 < 20.0
    for key in ("fd_ratio", "ndb", *STAT_KEYS, *(k + "_ratio" for k in STAT_KEYS)):
        assert np.isfinite(point[key]), key
    assert point["fd_ratio"] > 0 and point["onset_rate"] > 0
    # the real figures are computed once and kept (and saved with the reference)
    assert list(reference.render_reference_figures) == ["test:classical:classical:4x10s"]
    # the renders play render_sample (the trainer's walk), the windows sample: a still render has no notes
    still = learning_curve_point(_synthetic_sample(), reference, latent_size=3, latent_frames=4, reference_clips=4,
                                 render_sample=lambda z: np.full((z.shape[0], 256, z.shape[2] * 4), -0.2, np.float32))
    assert still["fd_ratio"] == point["fd_ratio"]
    assert still["onset_rate"] < 0.25 * point["onset_rate"]   # the start of the sound alone


def test_parse_seeds():
    from melsynth.training.prior.render_eval import parse_seeds

    assert parse_seeds("4") == (1, 2, 3, 4)
    assert parse_seeds("11-14") == (11, 12, 13, 14)
    assert parse_seeds("1,5,9") == (1, 5, 9)
    with pytest.raises(ValueError, match="--seeds 'x'"):
        parse_seeds("x")
