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
    keys = ["fd_ratio_real_chunks", "ndb_real_chunks"]
    for k in STAT_KEYS:
        keys += [k, k + "_ratio", "test_" + k, "real_chunks_" + k, "real_chunks_" + k + "_ratio"]
    for key in keys:
        assert np.isfinite(metrics[key]), key
    assert (metrics["render_seeds"], metrics["render_seconds"], metrics["real_clips"]) == (2, 3, 3)
    assert metrics["onset_rate_ratio"] == pytest.approx(metrics["onset_rate"] / metrics["test_onset_rate"])
    for word in ("real chunks", "render stats", "onset_rate", "flatness", "contrast_db", "chroma_movement"):
        assert word in printed, word
    img = matplotlib.image.imread(plots / "contact_sheet.png")
    assert img.shape[:2] == (960, 1280)


def test_eval_prior_bad_seeds_is_a_one_line_error(tmp_path, capsys):
    from melsynth.cli.main import main

    corpus = make_synthetic_corpus(tmp_path / "corpus")
    assert main(["eval", "prior", "--bundle", str(shared_tiny_prior_bundle()), "--corpus", str(corpus),
                 "--seeds", "many"]) == 2
    assert "--seeds 'many'" in capsys.readouterr().err
