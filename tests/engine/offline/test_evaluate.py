"""engine.offline.metrics / engine.offline.evaluate / engine.offline.make_default_bundle: the vocoder yardstick."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from melsynth.cli.main import main
from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.engine.offline.evaluate import Clip, corpus_clips, evaluate, write_figures
from melsynth.engine.offline.make_default_bundle import ensure_classical
from melsynth.engine.offline.metrics import griffin_lim, log_mel_l1, mr_stft_l1
from melsynth.engine.runtime.bundle import load_bundle
from tests.vocoder_fixtures import write_bundle

SPEC = MelSpec()
SR = SPEC.sample_rate


def _notes(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for start in np.arange(0, seconds, 0.25):
        f0 = rng.uniform(150, 600)
        env = np.where(t >= start, np.exp(-(t - start) * 6), 0)
        x += sum(env * np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


class _Fixed:
    """A stand-in vocoder whose offline output is given (Vocoder interface subset)."""

    kind = "fixed"
    latency_samples = 0

    def __init__(self, audio):
        self.audio = audio
        self.spec = SPEC

    def offline(self, log_mel):
        out = np.zeros(log_mel.shape[1] * SPEC.hop_length, np.float32)
        out[:self.audio.size] = self.audio
        return out


@pytest.fixture
def bundle(tmp_path):
    return load_bundle(write_bundle(tmp_path / "b", {"classical": {"kind": "classical",
                                                                   "params": {"iterations": 2}}}))


def test_metrics_are_zero_for_identical_audio_and_grow_with_damage():
    x = _notes()
    assert mr_stft_l1(x, x) == 0.0 and log_mel_l1(SPEC, x, x) == 0.0
    rng = np.random.default_rng(0)
    small = x + 0.003 * rng.standard_normal(x.size).astype(np.float32)
    large = x + 0.03 * rng.standard_normal(x.size).astype(np.float32)
    assert 0 < mr_stft_l1(x, small) < mr_stft_l1(x, large)
    assert 0 < log_mel_l1(SPEC, x, small) < log_mel_l1(SPEC, x, large)
    with pytest.raises(ValueError, match="trim"):
        mr_stft_l1(x, x[:-1])


def test_griffin_lim_reference_beats_random_phase_and_is_deterministic():
    x = _notes(seed=1)
    mel = log_mel(SPEC, x)
    gl = griffin_lim(SPEC, mel, x.size, iterations=16)
    assert gl.shape == x.shape and np.array_equal(gl, griffin_lim(SPEC, mel, x.size, iterations=16))
    few = griffin_lim(SPEC, mel, x.size, iterations=1)
    assert mr_stft_l1(x, gl) < mr_stft_l1(x, few)


def test_griffin_lim_scored_against_itself_is_exactly_one(bundle):
    x = _notes(seed=2)
    reference = griffin_lim(SPEC, log_mel(SPEC, x), x.size, iterations=8)
    report = evaluate(bundle, [Clip("notes", x)], gl_iterations=8, speed=False,
                      vocoders={"gl": _Fixed(reference), "original": _Fixed(x)})
    assert report["vocoders"]["gl"]["mr_stft_ratio"] == 1.0
    assert report["vocoders"]["gl"]["log_mel_ratio"] == 1.0
    assert report["vocoders"]["original"]["mr_stft_ratio"] == 0.0


def test_evaluate_a_bundle_reports_ratios_speed_and_plots(bundle, tmp_path):
    clips = [Clip("a", _notes(0.8, seed=3)), Clip("b", _notes(0.6, seed=4))]
    report = evaluate(bundle, clips, plots_dir=tmp_path / "plots", gl_iterations=8)
    v = report["vocoders"]["classical"]
    assert report["clips"] == 2 and len(report["per_clip"]) == 2
    assert 0.5 < v["mr_stft_ratio"] < 2.0 and v["log_mel_ratio"] > 0
    assert v["x_realtime_offline"] > 0 and v["x_realtime_streaming_1_frame"] > 0
    assert v["latency_ms"] == pytest.approx(1e3 * 4 * 256 / SR, abs=0.1)
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert len(pngs) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    json.dumps(report)  # JSON-able


def test_write_figures_keeps_everything_else(bundle):
    data = json.loads(bundle.json_path.read_text())
    data["vocoders"]["other"] = {"kind": "classical", "params": {}, "figures": {"keep": 1}}
    data["extra_field"] = "kept"
    bundle.json_path.write_text(json.dumps(data))
    report = evaluate(load_bundle(bundle.root), [Clip("a", _notes(0.5))], ["classical"], gl_iterations=4,
                      speed=False)
    write_figures(bundle.root, report, {"split": "test"})
    after = json.loads(bundle.json_path.read_text())
    assert after["vocoders"]["classical"]["figures"]["split"] == "test"
    figures = after["vocoders"]["classical"]["figures"]
    assert figures["mr_stft_ratio"] == report["vocoders"]["classical"]["mr_stft_ratio"]
    assert after["vocoders"]["other"]["figures"] == {"keep": 1} and after["extra_field"] == "kept"


def _fake_corpus(root):
    (root / "audio").mkdir(parents=True)
    files = []
    for i, split in enumerate(["train", "test", "test", "validation"]):
        path = f"audio/f{i}.flac"
        sf.write(root / path, _notes(0.5, seed=i), SR)
        files.append({"path": path, "split": split, "duration": 0.5})
    (root / "manifest.json").write_text(json.dumps({"files": files}))
    return root


def test_corpus_clips_take_the_split(tmp_path):
    corpus = _fake_corpus(tmp_path / "corpus")
    clips = corpus_clips(corpus, "test", SPEC, None, None)
    assert [c.name for c in clips] == ["f1.flac", "f2.flac"]
    assert len(corpus_clips(corpus, "test", SPEC, 1, 0.25)[0].audio) == int(0.25 * SR)
    (corpus / "manifest.json").write_text(json.dumps({"files": [{"path": "audio/f0.flac", "split": "train"}]}))
    with pytest.raises(ValueError, match="no files in split 'test'"):
        corpus_clips(corpus, "test", SPEC, None, None)


def test_cli_eval_vocoder_prints_every_vocoder(bundle, tmp_path, capsys):
    corpus = _fake_corpus(tmp_path / "corpus")
    data = json.loads(bundle.json_path.read_text())
    data["vocoders"]["fewer"] = {"kind": "classical", "params": {"iterations": 1, "lookahead": 0}}
    bundle.json_path.write_text(json.dumps(data))
    out_json = tmp_path / "r.json"
    rc = main(["eval", "vocoder", "--bundle", str(bundle.root), "--corpus", str(corpus), "--split", "test",
               "--gl-iterations", "4", "--no-speed", "--json", str(out_json), "--write-figures"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "classical" in text and "fewer" in text and "MR-STFT/GL" in text
    report = json.loads(out_json.read_text())
    assert set(report["vocoders"]) == {"classical", "fewer"} and report["clips"] == 2
    assert json.loads(bundle.json_path.read_text())["vocoders"]["fewer"]["figures"]["clips"] == 2


def test_cli_eval_needs_audio_or_corpus(bundle, capsys):
    assert main(["eval", "vocoder", "--bundle", str(bundle.root)]) == 2
    assert "--audio" in capsys.readouterr().err


def test_ensure_classical_creates_then_preserves(tmp_path):
    root = tmp_path / "default"
    data = ensure_classical(root)
    assert data["default_vocoder"] == "classical" and data["vocoders"]["classical"]["kind"] == "classical"
    assert load_bundle(root).vocoder().kind == "classical"
    # another helper adds a vocoder, a prior, figures and makes its vocoder the default
    data["vocoders"]["classical"]["figures"] = {"mr_stft_ratio": 1.0}
    data["vocoders"]["ap"] = {"kind": "classical", "params": {"iterations": 1}}
    data["default_vocoder"] = "ap"
    data["prior"] = {"placeholder": True}
    (root / "bundle.json").write_text(json.dumps(data))
    again = ensure_classical(root)
    assert again["default_vocoder"] == "ap" and "ap" in again["vocoders"] and again["prior"] == {"placeholder": True}
    assert again["vocoders"]["classical"]["figures"] == {"mr_stft_ratio": 1.0}  # same params: still valid
