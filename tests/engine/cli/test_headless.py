"""``melsynth render / play / bench`` end to end on a tiny real bundle (random ONNX prior + classical vocoder)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from melsynth.cli.main import main
from melsynth.engine.dsp.features import MelSpec
from tests.paths import REPO


@pytest.fixture(scope="module")
def tiny() -> Path:
    pytest.importorskip("torch")
    from tests.engine_bundles import shared_tiny_prior_bundle

    return shared_tiny_prior_bundle()


def test_render_writes_seeded_music_and_a_spectrogram(tiny, tmp_path, capsys):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.flac", tmp_path / "c.wav"
    assert main(["render", "--seconds", "1.5", "--seed", "3", "--out", str(a), "--png", str(tmp_path / "a.png"),
                 "--bundle", str(tiny)]) == 0
    assert main(["render", "--seconds", "1.5", "--seed", "3", "--out", str(b), "--bundle", str(tiny)]) == 0
    assert main(["render", "--seconds", "1.5", "--seed", "4", "--out", str(c), "--bundle", str(tiny)]) == 0
    assert "wrote" in capsys.readouterr().out
    x, sr = sf.read(a, dtype="float32")
    y, _ = sf.read(b, dtype="float32")
    z, _ = sf.read(c, dtype="float32")
    assert sr == 11025 and x.shape == (round(1.5 * 11025),)
    assert np.all(np.isfinite(x)) and np.abs(x).max() <= 1.0 and np.abs(x).max() > 1e-3
    np.testing.assert_allclose(x, y, atol=1 / 32767)  # same seed, same music (FLAC is 16-bit)
    assert np.abs(x - z).max() > 1e-3
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_errors_are_one_line(tmp_path, capsys):
    from tests.engine_fakes import make_fake_bundle

    no_prior = make_fake_bundle(tmp_path / "noprior")
    assert main(["render", "--seconds", "1", "--out", str(tmp_path / "x.wav"), "--bundle", str(no_prior)]) == 2
    err = capsys.readouterr().err
    assert "has no prior" in err and "Traceback" not in err
    assert main(["render", "--seconds", "1", "--out", str(tmp_path / "x.wav"),
                 "--bundle", str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err


def test_play_without_a_device_reports_why(tiny):
    out = subprocess.run([sys.executable, "-m", "melsynth.cli", "play", "--seconds", "1", "--json",
                          "--bundle", str(tiny), "--device", "melsynth-no-such-device"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 1, out.stderr
    summary = json.loads(out.stdout)
    assert "melsynth-no-such-device" in summary["error"] or "PortAudio" in summary["error"]
    assert summary["underruns"] == 0 and summary["seconds"] == 0.0
    assert summary["first_underrun_s"] is None


@pytest.mark.parametrize("lead", ["-1", "nan", "900"])
def test_play_rejects_a_lead_it_cannot_keep(tiny, capsys, lead):
    with pytest.raises(SystemExit) as exit_:
        main(["play", "--seconds", "1", f"--lead-ms={lead}", "--bundle", str(tiny)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--lead-ms" in err and lead in err and "<= 400" in err and err.count("\n") == 1


def test_bench_json_has_every_figure(tiny, capsys):
    started = time.perf_counter()
    assert main(["bench", "--json", "--moves", "20", "--stage-seconds", "1", "--bundle", str(tiny)]) == 0
    elapsed = time.perf_counter() - started
    res = json.loads(capsys.readouterr().out)
    for key in ("prior_rtf", "vocoder_offline_rtf", "vocoder_stream_rtf", "chain_stream_rtf",
                "latency_ms_median", "latency_ms_max", "cpu_producer", "cpu_process"):
        assert isinstance(res[key], float) and res[key] > 0, key
    assert res["latency_moves"] >= 15
    assert res["latency_ms_median"] <= res["latency_ms_max"]
    assert res["latency_ms_median"] >= res["latency_device_ms"]  # includes the device's own latency
    assert res["latency_ms_frame_heard_median"] == pytest.approx(res["latency_ms_median"]
                                                                 + res["vocoder_latency_ms"])
    assert res["frames_per_step"] == 1 == res["config"]["frames_per_step"]
    # a near miss is a producer step, and the real-time fake device takes at most one frame a hop
    spec = MelSpec()
    assert isinstance(res["latency_near_misses"], int)
    assert res["latency_near_misses"] <= elapsed * spec.sample_rate / spec.hop_length


def test_bench_takes_the_step_size_and_refuses_a_bad_one(tiny, capsys):
    args = ["bench", "--json", "--moves", "5", "--stage-seconds", "0.5", "--bundle", str(tiny)]
    assert main(args + ["--frames-per-step", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_per_step"] == 3
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--frames-per-step", "0"])
    assert exit_.value.code == 2
    assert "--frames-per-step: 0 is out of range (must be >= 1" in capsys.readouterr().err


def test_bench_refuses_a_python_callback_without_a_real_device(tiny, capsys):
    assert main(["bench", "--soak", "1", "--python-callback", "--bundle", str(tiny)]) == 2
    assert "--python-callback" in capsys.readouterr().err
