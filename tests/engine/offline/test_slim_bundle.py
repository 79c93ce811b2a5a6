"""engine.offline.slim_bundle and streaming-only bundles: offline served by the streaming graph, same outputs.

The fixture is a tiny bundle of random-weight graphs (never shipped) with every
shape of model the engine serves: a prior whose streaming graph takes one latent
step per call (static shapes), vocoders with look-ahead and multi-frame steps,
and two vocoder entries that share their ONNX files.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from melsynth.cli.main import main
from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.offline.slim_bundle import SlimError, folder_size, slim_bundle
from melsynth.engine.runtime.bundle import load_bundle, write_bundle_json
from melsynth.engine.runtime.prior import Prior
from melsynth.engine.runtime.vocoder import load_vocoder
from tests.engine_bundles import tiny_prior_bundle
from tests.vocoder_fixtures import ap_entry, melgan_entry

SPEC = MelSpec()
NEURAL = ("ap", "ap_l1s2", "ap_l1s2_refined", "mg_l1s3")


@pytest.fixture(scope="module")
def old_bundle(tmp_path_factory):
    """A bundle in the old format: every neural model has an offline and a streaming graph."""
    root = tiny_prior_bundle(tmp_path_factory.mktemp("slim") / "old")
    data = json.loads((root / "bundle.json").read_text())
    shared = ap_entry(root, SPEC, lookahead=1, frames_per_step=2, stem="ap_l1s2")
    data["vocoders"].update({
        "ap_l1s2": shared,
        "ap_l1s2_refined": {**shared, "params": {"refine_iterations": 2}},  # same files as ap_l1s2
        "mg_l1s3": melgan_entry(root, SPEC, lookahead=1, frames_per_step=3, stem="mg_l1s3"),
    })
    write_bundle_json(root, data)
    return root


@pytest.fixture
def bundle_copy(old_bundle, tmp_path):
    return shutil.copytree(old_bundle, tmp_path / "copy")


def _inputs():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((5, 8)).astype(np.float32)
    mel = rng.uniform(SPEC.log_min, 0.0, (SPEC.n_mels, 23)).astype(np.float32)
    return z, mel


def _outputs(bundle):
    """What the engine's offline path gives: prior mel, each vocoder's graph outputs and audio."""
    z, mel = _inputs()
    out = {"prior": [Prior(bundle).offline(z)]}
    for name in NEURAL:
        voc = load_vocoder(bundle, name)
        out[name] = voc.graph_outputs(mel) + [voc.offline(mel)]
    return out


def _slimmed(bundle):
    """The same bundle as the engine sees it without offline graphs (files untouched)."""
    vocoders = {n: dataclasses.replace(v, offline=None) for n, v in bundle.vocoders.items()}
    return dataclasses.replace(bundle, vocoders=vocoders, prior=dataclasses.replace(bundle.prior, offline=None))


def test_streaming_graph_serves_the_offline_path_like_the_offline_graph(old_bundle):
    bundle = load_bundle(old_bundle)
    before, after = _outputs(bundle), _outputs(_slimmed(bundle))
    for model in before:
        for a, b in zip(before[model], after[model], strict=True):
            assert a.shape == b.shape
            assert np.max(np.abs(a - b)) < 1e-5, model


def test_old_bundles_still_use_their_offline_graphs(old_bundle):
    bundle = load_bundle(old_bundle)
    assert bundle.prior.offline is not None and Prior(bundle)._offline is not None
    voc = load_vocoder(bundle, "mg_l1s3")
    voc.offline(np.full((SPEC.n_mels, 4), SPEC.log_min, np.float32))
    assert voc._session_offline is not None  # the offline graph ran


def test_slim_bundle_removes_offline_graphs_and_keeps_what_the_engine_computes(bundle_copy):
    before = _outputs(load_bundle(bundle_copy))
    size_before = folder_size(bundle_copy)
    lines = []
    report = slim_bundle(bundle_copy, log=lines.append)

    data = json.loads((bundle_copy / "bundle.json").read_text())
    assert "offline" not in data["prior"]
    assert all("offline" not in v for v in data["vocoders"].values())
    assert sorted(report.removed_entries) == sorted(["prior.offline"] + [f"vocoders.{n}.offline" for n in NEURAL])
    # ap_l1s2 and ap_l1s2_refined shared one offline file: deleted once
    assert sorted(report.deleted_files) == ["ap_l1s2.onnx", "mg_l1s3.onnx", "prior.onnx", "voc.onnx"]
    assert not any((bundle_copy / f).exists() for f in report.deleted_files)
    for f in ("ap_l1s2_stream.onnx", "mg_l1s3_stream.onnx", "prior_stream.onnx", "voc_stream.onnx"):
        assert (bundle_copy / f).is_file()
    assert report.size_before == size_before > report.size_after == folder_size(bundle_copy)
    assert all(d <= 1e-4 for d in report.parity.values())
    assert any("removed prior.offline" in line for line in lines) and "MB ->" in lines[-1]

    after = _outputs(load_bundle(bundle_copy))  # the engine loads the slim bundle and hears the same
    for model in before:
        for a, b in zip(before[model], after[model], strict=True):
            assert np.max(np.abs(a - b)) < 1e-5, model

    again = slim_bundle(bundle_copy, log=lines.append)  # nothing left to do
    assert again.removed_entries == [] and again.deleted_files == [] and "no offline graphs" in lines[-1]


def test_slim_bundle_refuses_and_changes_nothing_when_the_graphs_disagree(bundle_copy, capsys):
    data = json.loads((bundle_copy / "bundle.json").read_text())
    # another network with the same signature: the melgan entry's offline graph is now someone else's
    other = melgan_entry(bundle_copy, SPEC, lookahead=0, stem="other")
    data["vocoders"]["mg_l1s3"]["offline"] = other["offline"]
    write_bundle_json(bundle_copy, data)
    json_before = (bundle_copy / "bundle.json").read_bytes()
    files_before = sorted(p.name for p in bundle_copy.iterdir())

    with pytest.raises(SlimError) as e:
        slim_bundle(bundle_copy, log=lambda *a: None)
    message = str(e.value)
    assert "vocoders.mg_l1s3" in message and str(bundle_copy) in message and "differs" in message
    assert (bundle_copy / "bundle.json").read_bytes() == json_before
    assert sorted(p.name for p in bundle_copy.iterdir()) == files_before

    assert main(["bundle", "slim", str(bundle_copy)]) == 2
    assert "vocoders.mg_l1s3" in capsys.readouterr().err
    assert (bundle_copy / "bundle.json").read_bytes() == json_before


def test_cli_prints_what_it_removed_and_the_sizes(bundle_copy, capsys):
    assert main(["bundle", "slim", str(bundle_copy)]) == 0
    out = capsys.readouterr().out
    assert "removed vocoders.ap.offline" in out and "deleted prior.onnx" in out
    assert f"{bundle_copy}:" in out and "MB ->" in out
    load_bundle(bundle_copy)
