"""``melsynth eval prior`` end to end on a tiny bundle and a synthetic corpus: render stats, baselines, contact sheet."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")   # the tiny prior bundle is exported from torch
pytest.importorskip("librosa")

from tests.engine_bundles import shared_tiny_prior_bundle
from tests.prior_fixtures import make_synthetic_corpus
from melsynth.training.prior.render_stats import STAT_KEYS


def test_eval_prior_prints_and_writes_render_stats_baselines_and_contact_sheet(tmp_path, capsys):
    import matplotlib.image

    from melsynth.cli.main import main

    corpus = make_synthetic_corpus(tmp_path / "corpus")
    out, plots = tmp_path / "eval.json", tmp_path / "plots"
    assert main(["eval", "prior", "--bundle", str(shared_tiny_prior_bundle()), "--corpus", str(corpus),
                 "--json", str(out), "--plots", str(plots), "--windows", "64", "--window-frames", "32",
                 "--seeds", "2", "--render-seconds", "3", "--real-clips", "3"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(out.read_text())
    keys = ["fd_ratio_real_chunks", "ndb_real_chunks", "fd_ratio_walk", "ndb_walk"]
    for k in STAT_KEYS:
        keys += [k, k + "_ratio", "test_" + k, "real_chunks_" + k, "real_chunks_" + k + "_ratio"]
    for key in keys:
        assert np.isfinite(metrics[key]), key
    assert (metrics["render_seeds"], metrics["render_seconds"], metrics["real_clips"]) == (2, 3, 3)
    assert metrics["onset_rate_ratio"] == pytest.approx(metrics["onset_rate"] / metrics["test_onset_rate"])
    for word in ("the engine's walk", "real chunks", "render stats", "onset_rate", "flatness", "contrast_db", "chroma_movement"):
        assert word in printed, word
    img = matplotlib.image.imread(plots / "contact_sheet.png")
    assert img.shape[:2] == (960, 1280)


def test_renders_are_measured_after_the_warm_up_as_real_clips_are():
    """The measured clip is the render's continuation past ``RENDER_WARMUP_STEPS`` latent steps,
    not its entry from silence, and exactly ``seconds`` long."""
    from melsynth.engine.offline.render import render_walk
    from melsynth.engine.runtime.bundle import load_bundle
    from melsynth.training.prior.render_eval import RENDER_WARMUP_STEPS, model_renders

    bundle = load_bundle(shared_tiny_prior_bundle())
    rate = bundle.mel.sample_rate
    skip = RENDER_WARMUP_STEPS * bundle.prior.latent_frames * bundle.mel.hop_length
    clip, = model_renders(bundle, (3,), 1.0)
    assert clip.shape == (rate,)
    whole = render_walk(bundle, 1.0 + skip / rate, 3)
    np.testing.assert_array_equal(clip, whole[skip:skip + rate])
    start, = model_renders(bundle, (3,), 1.0, warmup_steps=0)
    np.testing.assert_array_equal(start, whole[:rate])


def test_eval_prior_bad_seeds_is_a_one_line_error(tmp_path, capsys):
    from melsynth.cli.main import main

    corpus = make_synthetic_corpus(tmp_path / "corpus")
    assert main(["eval", "prior", "--bundle", str(shared_tiny_prior_bundle()), "--corpus", str(corpus),
                 "--seeds", "many"]) == 2
    assert "--seeds 'many'" in capsys.readouterr().err


@pytest.mark.parametrize("phrase_size", [0, 2])
def test_walk_latents_are_what_the_engine_feeds_its_prior_for_that_seed(phrase_size):
    from melsynth.engine.dsp.features import MelSpec
    from melsynth.engine.offline.render import walk_controls
    from melsynth.engine.stream.sources import LatentSource
    from melsynth.training.prior.evaluate import walk_latents, walk_sample_fn

    spec = MelSpec()

    class RecordingPrior:
        latent_size, latent_frames, directions = 5, 4, ()
        phrase_size = 0

        def __init__(self):
            self.seen = []

        def step(self, z):
            self.seen.append(np.array(z))
            return np.zeros((spec.n_mels, self.latent_frames), np.float32)

    prior = RecordingPrior()
    prior.phrase_size = phrase_size
    source = LatentSource(prior, spec, walk_controls(7, 0.6, 0.9))
    source.next_frames(prior.latent_frames * 6)
    walked = walk_latents(5, 6, 7, 0.6, 0.9, phrase_size)
    np.testing.assert_allclose(np.stack(prior.seen, axis=1), walked, rtol=0, atol=1e-6)
    if phrase_size:   # the phrase inputs walk slower than the rest
        step = lambda rows: np.abs(np.diff(rows, axis=1)).mean()
        assert step(walked[5 - phrase_size:]) < 0.5 * step(walked[:3])
    # the sampler plays consecutive seeds, one per sequence, whatever noise it is handed
    calls = []
    sampler = walk_sample_fn(lambda z: calls.append(z) or z, 0.6, 0.9, first_seed=7, phrase_size=phrase_size)
    sampler(np.zeros((2, 5, 6), np.float32))
    sampler(np.ones((1, 5, 6), np.float32))
    np.testing.assert_allclose(calls[0][0], walk_latents(5, 6, 7, 0.6, 0.9, phrase_size), atol=1e-6)
    np.testing.assert_allclose(calls[0][1], walk_latents(5, 6, 8, 0.6, 0.9, phrase_size), atol=1e-6)
    np.testing.assert_allclose(calls[1][0], walk_latents(5, 6, 9, 0.6, 0.9, phrase_size), atol=1e-6)
    assert not np.allclose(calls[0][0], calls[0][1])
