"""``melsynth resynth``: any audio file -> mel -> vocoder -> time-aligned WAV of the same length."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from melsynth.cli.main import main
from melsynth.engine.offline.audiofile import read_audio
from tests.vocoder_fixtures import write_bundle

SR = 11025


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path / "b", {
        "classical": {"kind": "classical", "params": {}},
        "quick": {"kind": "classical", "params": {"iterations": 2, "lookahead": 0}},
    })


def _bursts(rate: int, seconds: float, channels: int) -> np.ndarray:
    """Short tone bursts at irregular times: alignment has one right answer."""
    n = int(rate * seconds)
    x = np.zeros(n, np.float32)
    t = np.arange(int(0.01 * rate)) / rate
    burst = (np.hanning(t.size) * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    for start in (0.11, 0.43, 0.52, 0.97, 1.31):
        i = int(start * rate)
        if i + burst.size <= n:
            x[i:i + burst.size] += 0.8 * burst
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def _envelope_lag(a: np.ndarray, b: np.ndarray, width: int = 64) -> int:
    """Lag (samples) of b's energy envelope against a's, at the cross-correlation peak."""
    k = np.ones(width) / width
    ea, eb = np.convolve(a ** 2, k, "same"), np.convolve(b ** 2, k, "same")
    c = np.correlate(eb - eb.mean(), ea - ea.mean(), "full")
    return int(np.argmax(c)) - (a.size - 1)


@pytest.mark.parametrize("rate,channels,fmt", [(44100, 2, "WAV"), (11025, 1, "FLAC"), (22050, 1, "OGG")])
def test_resynth_is_same_length_and_time_aligned(tmp_path, bundle, rate, channels, fmt, capsys):
    src = tmp_path / f"in.{fmt.lower()}"
    sf.write(src, _bursts(rate, 1.6, channels), rate, format=fmt)
    out = tmp_path / "out.wav"
    assert main(["resynth", str(src), "--out", str(out), "--bundle", str(bundle)]) == 0
    assert "classical" in capsys.readouterr().out
    y, y_rate = sf.read(out, dtype="float32")
    reference = read_audio(src, SR)  # the input as the vocoder saw it: mono, 11025 Hz
    assert y_rate == SR and y.ndim == 1
    assert y.size == reference.size == round(1.6 * SR)
    assert np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.05
    # A latency bug would shift by hops (256 samples); phase reconstruction smears < 1/4 hop.
    assert abs(_envelope_lag(reference, y)) < 64


def test_resynth_picks_the_named_vocoder(tmp_path, bundle, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, _bursts(SR, 0.5, 1), SR)
    assert main(["resynth", str(src), "--out", str(tmp_path / "o.wav"), "--bundle", str(bundle),
                 "--vocoder", "quick"]) == 0
    assert "'quick'" in capsys.readouterr().out
    assert main(["resynth", str(src), "--out", str(tmp_path / "o.wav"), "--bundle", str(bundle),
                 "--vocoder", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "classical" in err and "Traceback" not in err


@pytest.mark.parametrize("content", [b"", b"this is not audio at all" * 20])
def test_unreadable_input_is_a_one_line_error(tmp_path, bundle, capsys, content):
    src = tmp_path / "broken.wav"
    src.write_bytes(content)
    out = tmp_path / "o.wav"
    assert main(["resynth", str(src), "--out", str(out), "--bundle", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "broken.wav" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_input_names_the_file(tmp_path, bundle, capsys):
    assert main(["resynth", str(tmp_path / "ghost.flac"), "--out", str(tmp_path / "o.wav"),
                 "--bundle", str(bundle)]) == 2
    assert "ghost.flac" in capsys.readouterr().err
