"""``melsynth app --screenshot PNG --quit-after S`` end to end, on a tiny real bundle.

The bundle: the classical vocoder plus a tiny randomly initialised prior exported
to ONNX with two directions (a test fixture, built on the fly, never shipped).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO


@pytest.fixture(scope="module")
def tiny_real_bundle(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from tests.engine_bundles import tiny_prior_bundle

    return tiny_prior_bundle(tmp_path_factory.mktemp("bundles") / "tiny-real", name="tiny-real")


def run_app(args, tmp_path, env_extra, timeout=120):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               MELSYNTH_RECORDINGS=str(tmp_path / "rec"), JACK_NO_START_SERVER="1", **env_extra)
    return subprocess.run([sys.executable, "-m", "melsynth.cli", "app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_screenshot_without_audio_device_or_midi_backend(tiny_real_bundle, tmp_path):
    """No PortAudio device and no MIDI backend: the window opens, says why, and the PNG is written."""
    shot = tmp_path / "app.png"
    # A JACK server name nobody runs: PortAudio's JACK host API and rtmidi's JACK API both find none.
    env = {"JACK_DEFAULT_SERVER": "melsynth-test-no-server", "MELSYNTH_MIDI_APIS": "jack"}
    out = run_app(["--bundle", str(tiny_real_bundle), "--screenshot", str(shot), "--quit-after", "2.5"],
                  tmp_path, env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "audio: no sound: no audio output device" in out.stdout
    assert "midi: no MIDI backend" in out.stdout
    assert "model: tiny-real / classical" in out.stdout
    assert "start-to-first-sound: none" in out.stdout
    w, h = png_size(shot)
    assert w >= 800 and h >= 500


@pytest.mark.jack
def test_screenshot_with_jack_audio_device_reports_first_sound(tiny_real_bundle, tmp_path):
    from melsynth.app.midi import jack_server_running

    if not jack_server_running():
        pytest.skip("no JACK server running (start: jackd --no-realtime -d dummy -r 11025 -p 256 &)")
    shot = tmp_path / "app.png"
    out = run_app(["--bundle", str(tiny_real_bundle), "--device", "system",
                   "--screenshot", str(shot), "--quit-after", "4"], tmp_path, {})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "audio: system [JACK Audio Connection Kit]" in out.stdout, out.stdout
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("start-to-first-sound:"))
    assert line.endswith(" ms"), line  # a number: sound was produced
    print(line)
    w, h = png_size(shot)
    assert w >= 800 and h >= 500


def test_screenshot_needs_quit_after(tmp_path):
    out = run_app(["--screenshot", str(tmp_path / "x.png")], tmp_path, {"MELSYNTH_MIDI_APIS": "none"})
    assert out.returncode == 2 and "--screenshot needs --quit-after" in out.stderr


def test_a_lead_the_engine_cannot_keep_is_refused_before_the_window_opens(tmp_path):
    out = run_app(["--lead-ms", "-3", "--no-play"], tmp_path, {"MELSYNTH_MIDI_APIS": "none"})
    assert out.returncode == 2 and "--lead-ms: -3 is out of range (must be >= 0 and <= 400)" in out.stderr
    assert out.stderr.count("\n") == 1
