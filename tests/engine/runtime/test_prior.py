"""engine.runtime.prior from a tiny exported bundle: streaming == offline, shapes, errors, bundle kept intact."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import BundleError, load_bundle
from melsynth.engine.runtime.prior import load_prior
from melsynth.training.prior.export import ExportError, compute_directions, export_prior
from melsynth.training.prior.model import Generator
from tests.bundle_factory import make_tiny_bundle
from tests.prior_fixtures import one_thread, tiny_generator_config

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = make_tiny_bundle(tmp_path_factory.mktemp("prior_bundle") / "tiny")
    before = json.loads((root / "bundle.json").read_text())
    torch.manual_seed(0)
    generator = Generator(tiny_generator_config()).eval()
    directions, figures = compute_directions(generator, n_pca_latents=3000, n_pca=3, n_regress=300, n_verify=100, fit_steps=3,
                                             log=lambda *a: None)
    export_prior(generator, root, directions=directions, training={"note": "test fixture"},
                 figures={"directions": figures})
    return root, before, generator


def test_bundle_keeps_other_entries_and_validates(exported):
    root, before, _ = exported
    after = json.loads((root / "bundle.json").read_text())
    assert after["vocoders"] == before["vocoders"] and after["default_vocoder"] == before["default_vocoder"]
    bundle = load_bundle(root)
    p = bundle.prior
    assert (p.latent_size, p.latent_frames) == (8, 4)
    assert [d.name for d in p.directions if d.kind == "named"] == ["loudness", "brightness", "register", "activity"]
    assert [d.name for d in p.directions if d.kind == "pca"] == ["pc1", "pc2", "pc3"]
    assert all(v <= 1e-4 for v in p.figures["parity"].values())
    assert set(p.figures["parity"]) == {"streaming_torch_onnx", "offline_torch_vs_streaming_onnx",
                                        "steps_torch_vs_streaming_onnx"}
    # one graph: the engine serves offline from the streaming graph
    assert p.offline is None and "offline" not in after["prior"] and not (root / "prior.onnx").exists()
    named = p.figures["directions"]["named"]
    assert all(0.0 <= named[k]["verify_rate"] <= 1.0 for k in named)


def test_runtime_matches_torch_and_streams_like_offline(exported):
    root, _, generator = exported
    prior = load_prior(root)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((7, prior.latent_size)).astype(np.float32)
    offline = prior.offline(z)
    assert offline.shape == (256, 7 * 4) and offline.dtype == np.float32
    with torch.no_grad():
        reference = generator(torch.from_numpy(z.T[None].copy()))[0].numpy()
    assert np.max(np.abs(offline - reference)) < 1e-5
    prior.reset()
    streamed = np.concatenate([prior.step(zt) for zt in z], axis=1)
    assert np.max(np.abs(streamed - offline)) < 1e-5
    prior.reset()
    chunked = np.concatenate([prior.steps(z[:3]), prior.steps(z[3:])], axis=1)
    assert np.max(np.abs(chunked - offline)) < 1e-5
    prior.reset()
    assert np.max(np.abs(prior.step(z[0]) - offline[:, :4])) < 1e-5  # reset really starts afresh
    assert np.all(np.abs(offline) <= 1.0)


def test_get_and_set_state_rerun_a_step_exactly(exported):
    prior = load_prior(exported[0])
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, prior.latent_size)).astype(np.float32)
    prior.step(z[0])
    prior.step(z[1])
    saved = prior.get_state()
    first = prior.step(z[2])
    prior.step(z[3])                      # the stream moves on ...
    prior.set_state(saved)                # ... and is put back
    again = prior.step(z[2])
    np.testing.assert_array_equal(first, again)
    other = prior.step(z[3] + 1.0)
    assert not np.allclose(other, prior.offline(z)[:, 12:16])
    with pytest.raises(ValueError, match="shape"):
        prior.set_state([np.zeros((1, 1, 1), np.float32)] * len(saved))


def test_runtime_rejects_bad_latents(exported):
    prior = load_prior(exported[0])
    with pytest.raises(ValueError, match=r"z must be \(8,\)"):
        prior.step(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        prior.offline(np.full((2, 8), np.nan, np.float32))
    with pytest.raises(KeyError, match="loudness"):
        prior.direction("nope")
    assert prior.direction("loudness").sigma == 1.0


def test_bundle_without_prior_is_a_clear_error(tmp_path):
    root = make_tiny_bundle(tmp_path / "noprior")
    with pytest.raises(BundleError, match="prior"):
        load_prior(root)


def test_export_over_an_old_prior_deletes_its_offline_graph(tmp_path):
    from tests.engine_bundles import tiny_prior_bundle

    root = tiny_prior_bundle(tmp_path / "old")  # offline + streaming graphs, the old format
    assert (root / "prior.onnx").is_file()
    torch.manual_seed(1)
    export_prior(Generator(tiny_generator_config()).eval(), root)
    assert not (root / "prior.onnx").exists() and (root / "prior_stream.onnx").is_file()
    assert (root / "voc.onnx").is_file()  # the vocoders' graphs are not the prior's to delete
    assert load_bundle(root).prior.offline is None


def test_export_creates_a_bundle_and_refuses_a_foreign_mel(tmp_path):
    torch.manual_seed(1)
    g = Generator(tiny_generator_config()).eval()
    export_prior(g, tmp_path / "fresh")
    b = load_bundle(tmp_path / "fresh")
    assert b.default_vocoder == "classical" and b.prior is not None and b.prior.directions == ()
    other = make_tiny_bundle(tmp_path / "other", MelSpec(norm_low=-6.0))
    with pytest.raises(ExportError, match="mel"):
        export_prior(g, other)


def test_eval_prior_cli_reports_and_writes_json_and_plots(exported, tmp_path):
    import shutil

    from melsynth.cli.main import main
    from tests.prior_fixtures import make_synthetic_corpus

    corpus = make_synthetic_corpus(tmp_path / "corpus")
    bundle = shutil.copytree(exported[0], tmp_path / "bundle")      # --record writes into it
    before = json.loads((bundle / "bundle.json").read_text())
    out = tmp_path / "eval.json"
    assert main(["eval", "prior", "--bundle", str(bundle), "--corpus", str(corpus), "--json", str(out),
                 "--plots", str(tmp_path / "plots"), "--windows", "64", "--window-frames", "32",
                 "--no-render", "--record"]) == 0   # render stats: tests/training/prior/test_eval_cli.py
    metrics = json.loads(out.read_text())
    for key in ("fd_mel", "fd_floor", "fd_ratio", "fd_gaussian", "fd_shuffled", "ndb", "ndb_floor"):
        assert np.isfinite(metrics[key]), key
    # a random tiny network is far from the corpus: worse than real train windows
    assert metrics["fd_ratio"] > 1.0
    assert (tmp_path / "plots" / "prior_windows.png").stat().st_size > 1000
    # --record: the same figures in the bundle's prior entry, everything else as it was
    after = json.loads((bundle / "bundle.json").read_text())
    recorded = after["prior"]["figures"].pop("eval")
    assert recorded["fd_ratio"] == metrics["fd_ratio"] and recorded["ndb"] == metrics["ndb"]
    assert "seconds" not in recorded
    assert after == before
    load_bundle(bundle)


def test_eval_prior_cli_without_prior_is_a_one_line_error(tmp_path, capsys):
    from melsynth.cli.main import main
    from tests.prior_fixtures import make_synthetic_corpus

    root = make_tiny_bundle(tmp_path / "noprior")
    assert main(["eval", "prior", "--bundle", str(root), "--corpus", str(make_synthetic_corpus(tmp_path / "c"))]) == 2
    assert "no prior" in capsys.readouterr().err


def test_phrase_latent_prior_exports_its_phrase_size_and_the_engine_walks_it_slowly(tmp_path):
    """A prior with a phrase latent: the bundle says which inputs are held, the runtime matches torch,
    and the engine's source walks those inputs slower than the rest."""
    import dataclasses

    from melsynth.engine.offline.render import walk_controls
    from melsynth.engine.stream.controls import PHRASE_WALK_RATE
    from melsynth.engine.stream.sources import LatentSource

    root = make_tiny_bundle(tmp_path / "tiny")
    torch.manual_seed(3)
    config = dataclasses.replace(tiny_generator_config(), latent_size=8, phrase_size=3, code_size=6,
                                 front_channels=8, front_dilations=(1,))
    generator = Generator(config).eval()
    with torch.no_grad():
        for p in generator.front.phrase.out.parameters():
            p.normal_()
    export_prior(generator, root)
    assert json.loads((root / "bundle.json").read_text())["prior"]["phrase_size"] == 3
    prior = load_prior(root)
    assert prior.phrase_size == 3
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        reference = generator(torch.from_numpy(z.T[None].copy()))[0].numpy()
    assert np.max(np.abs(prior.offline(z) - reference)) < 1e-5

    seen = []
    step = prior.step
    prior.step = lambda zt: seen.append(np.array(zt)) or step(zt)
    source = LatentSource(prior, MelSpec(), walk_controls(4, 1.0, 1.0))
    source.next_frames(prior.latent_frames * 40)
    z = np.stack(seen)                                   # (40, 8): the walk alone (spread 1)
    moves = np.abs(np.diff(z, axis=0)).mean(axis=0)
    assert moves[:5].min() > 0.8                         # fresh every step at speed 1: about 1.13
    assert moves[5:].max() < 1.6 * np.sqrt(2 * PHRASE_WALK_RATE)   # about 0.8 sqrt(2 rate) = 0.2

    data = json.loads((root / "bundle.json").read_text())
    data["prior"]["phrase_size"] = 8
    (root / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="phrase_size") as e:
        load_bundle(root)
    assert e.value.field == "prior.phrase_size"
