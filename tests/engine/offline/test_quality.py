"""Phase quality presets (engine.dsp.quality), the render streamed to its file, and the phase curve
of ``melsynth eval vocoder --phase``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from melsynth.cli.main import main
from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.engine.dsp.phase import PhaseConfig
from melsynth.engine.dsp.quality import FILE_QUALITY, QUALITIES, parse_phase_point, with_quality
from melsynth.engine.offline.metrics import mr_stft_l1
from melsynth.engine.runtime.bundle import load_bundle
from melsynth.engine.runtime.vocoder import load_vocoder
from tests.vocoder_fixtures import write_bundle

SPEC = MelSpec()


def test_presets_raise_iterations_and_lookahead_only():
    base = PhaseConfig(iterations=6, lookahead=2, momentum=0.5, init="advance")
    assert with_quality(base, "realtime") == base and with_quality(base, None) == base
    high = with_quality(base, "high")
    assert (high.iterations, high.lookahead) == QUALITIES["high"]
    assert (high.momentum, high.init) == (0.5, "advance")
    more = PhaseConfig(iterations=200, lookahead=8)
    assert with_quality(more, "high") == more  # never lowers a bundle's own settings
    maximum = with_quality(base, "max")
    assert maximum.iterations * (maximum.lookahead + 1) > high.iterations * (high.lookahead + 1)
    assert FILE_QUALITY == "high"
    with pytest.raises(ValueError, match="realtime, high, max"):
        with_quality(base, "ultra")


@pytest.mark.parametrize("text, point", [("12/3", (12, 3)), ("6,2", (6, 2))])
def test_phase_points_parse(text, point):
    assert parse_phase_point(text) == point


@pytest.mark.parametrize("text", ["12", "a/b", "12/9", "-1/2"])
def test_bad_phase_points_say_why(text):
    with pytest.raises(ValueError):
        parse_phase_point(text)


def _notes(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    sr = SPEC.sample_rate
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.25):
        f0 = rng.uniform(150, 600)
        env = np.where(t >= start, np.exp(-(t - start) * 6), 0)
        x += sum(env * np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def test_high_quality_is_closer_to_the_original(tmp_path):
    bundle = load_bundle(write_bundle(tmp_path / "b", {"classical": {"kind": "classical", "params": {}}}))
    audio = _notes()
    mel = log_mel(SPEC, audio)
    errors = {}
    for quality in ("realtime", "high"):
        voc = load_vocoder(bundle, None, quality)
        errors[quality] = mr_stft_l1(audio, voc.offline(mel)[:audio.size])
    assert load_vocoder(bundle, None, "high").config.iterations == QUALITIES["high"][0]
    assert errors["high"] < errors["realtime"]


def test_eval_vocoder_scores_phase_points(tmp_path, capsys):
    bundle = write_bundle(tmp_path / "b", {"classical": {"kind": "classical", "params": {}}})
    clip = tmp_path / "clip.wav"
    sf.write(clip, _notes(1.0), SPEC.sample_rate)
    out = tmp_path / "r.json"
    assert main(["eval", "vocoder", "--bundle", str(bundle), "--audio", str(clip), "--phase", "1/0", "4/2",
                 "--gl-iterations", "4", "--no-speed", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["vocoders"]) == {"classical 1/0", "classical 4/2"}
    assert report["vocoders"]["classical 4/2"]["mr_stft_ratio"] < report["vocoders"]["classical 1/0"]["mr_stft_ratio"]
    assert main(["eval", "vocoder", "--bundle", str(bundle), "--audio", str(clip), "--phase", "4/9"]) == 2
    assert "--phase" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("torch")
    from tests.engine_bundles import shared_tiny_prior_bundle

    return shared_tiny_prior_bundle()


def test_streamed_render_equals_the_offline_render(tiny, tmp_path):
    from melsynth.engine.offline.render import render_walk, walk_chunks, write_audio_stream

    bundle = load_bundle(tiny)
    whole = render_walk(bundle, 1.3, 5, quality="high")
    chunks = list(walk_chunks(bundle, 1.3, 5, quality="high"))
    assert max(c.size for c in chunks) <= 4 * SPEC.hop_length  # one pipeline step at a time
    np.testing.assert_array_equal(np.concatenate(chunks), whole)
    path, samples, peak = write_audio_stream(tmp_path / "r.wav", iter(chunks), SPEC.sample_rate)
    written, rate = sf.read(path, dtype="float32")
    assert rate == SPEC.sample_rate and samples == whole.size and peak == float(np.abs(whole).max())
    np.testing.assert_array_equal(written, whole)
    assert not np.array_equal(whole, render_walk(bundle, 1.3, 5, quality="realtime"))


def test_a_render_that_fails_midway_leaves_no_file(tmp_path):
    from melsynth.engine.offline.render import write_audio_stream

    def chunks():
        yield np.zeros(256, np.float32)
        raise RuntimeError("vocoder failed")

    with pytest.raises(RuntimeError):
        write_audio_stream(tmp_path / "r.flac", chunks(), SPEC.sample_rate)
    assert not list(tmp_path.iterdir())


def test_a_replayed_quality_swap_builds_the_chain_at_that_quality(tmp_path):
    from melsynth.engine.stream.messages import SwapChain
    from melsynth.engine.stream.pipeline import Pipeline
    from tests.engine_fakes import fake_bundle, fake_loader

    seen = []
    fake = fake_loader()

    def load(bundle, vocoder_name, quality=None):
        seen.append(quality)
        return fake(bundle, vocoder_name)

    bundle = fake_bundle(tmp_path)
    pipe = Pipeline(bundle, loader=load)
    pipe.apply(SwapChain(bundle, "classical", None, "high"))  # replay: no chain loaded with it
    pipe.apply(SwapChain(bundle, "classical"))
    assert seen == [None, "high", None]


def test_resynth_streamed_for_its_progress_bar_equals_its_offline_path(tmp_path, monkeypatch):
    from melsynth.engine.cli import resynth

    bundle = load_bundle(write_bundle(tmp_path / "b", {"classical": {"kind": "classical", "params": {}}}))
    monkeypatch.setattr(resynth, "CHUNK_FRAMES", 7)  # several chunks, one of them partial
    audio = _notes(1.5)
    passed = []

    def progress(chunks):
        for chunk in chunks:
            passed.append(chunk.size)
            yield chunk

    offline = resynth.resynthesize(bundle, audio, None, "high")
    streamed = resynth.resynthesize(bundle, audio, None, "high", progress=progress)
    assert len(passed) > 3 and streamed.size == audio.size
    np.testing.assert_array_equal(streamed, offline)
