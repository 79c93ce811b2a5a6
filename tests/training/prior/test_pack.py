"""The portable 8-bit corpus subset for remote training: round trip within the quantisation step."""
from __future__ import annotations

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.data import load_split
from melsynth.training.prior.pack import dequantise, pack_subset, quantise, unpack
from tests.prior_fixtures import make_synthetic_corpus


def test_quantise_round_trip_within_one_step():
    x = np.linspace(-1, 1, 1001)
    err = np.abs(dequantise(quantise(x), np.random.default_rng(0)) - x)
    assert err.max() <= 2.0 / 255 + 1e-6


def test_pack_unpack_gives_a_readable_corpus(tmp_path):
    spec = MelSpec()
    corpus = make_synthetic_corpus(tmp_path / "corpus")
    packed = pack_subset(corpus, tmp_path / "subset.npz", {"train": 0.01, "test": 0.005}, chunk_seconds=5.0)
    assert set(packed) == {"train", "test"} and packed["train"] > 0
    mini = unpack(tmp_path / "subset.npz", tmp_path / "mini")
    train = load_split(mini, "train")
    test = load_split(mini, "test")
    chunk = int(round(5.0 * spec.frame_rate))
    assert all(m.shape == (256, chunk) for m in train.mels) and len(test.mels) >= 1
    assert len(train.mels) == round(0.01 * 3600 * spec.frame_rate / chunk)
    # every chunk is a slice of its source file, to the 8-bit step (in log10 units: 2/255 * 3.5)
    original = load_split(corpus, "train")
    import json
    with np.load(tmp_path / "subset.npz") as z:
        meta = json.loads(bytes(z["meta"]).decode())
    first = meta["chunks"][0]
    src = original.mels[original.paths.index(first["source"])][:, first["start"]:first["start"] + chunk]
    assert np.max(np.abs(train.mels[0] - src)) <= 2 * 3.5 * 2.0 / 255 + 1e-5
