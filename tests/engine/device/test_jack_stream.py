"""A real stream through PortAudio into CI's JACK dummy server.

CI (.ci/setup test) starts ``jackd --no-realtime -d dummy -r 11025 -p 256`` before
pytest; locally start one the same way (then ``jack_wait -w -t 10``). Without a
running JACK server these tests skip and say so.
"""
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from melsynth.engine.device.callback import native_callback
from melsynth.engine.device.ringbuffer import RingBuffer
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.pipeline import render_offline
from melsynth.engine.stream.synth import Synth
from tests.engine_fakes import declick_fall, fake_bundle, fake_loader
from tests.paths import REPO

pytestmark = pytest.mark.jack


def jack_running() -> str | None:
    """None if a JACK server answers, else why not."""
    if shutil.which("jack_lsp") is None:
        return "jack_lsp not installed (apt-get install jackd2)"
    try:
        r = subprocess.run(["jack_lsp"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"jack_lsp failed: {exc}"
    if r.returncode != 0:
        return "no JACK server running (CI starts: jackd --no-realtime -d dummy -r 11025 -p 256)"
    return None


@pytest.fixture(scope="module")
def jack_output_factory():
    why = jack_running()
    if why:
        pytest.skip(why)
    import sounddevice as sd  # imported after jackd is up, so PortAudio sees the JACK host API

    from melsynth.engine.device.output import AudioOutput, AudioUnavailable, list_output_devices

    if not any("jack" in d.hostapi.lower() for d in list_output_devices()):
        sd._terminate()  # PortAudio was initialised before the server came up: rescan
        sd._initialize()
    try:
        AudioOutput(hostapi="JACK")
    except AudioUnavailable as exc:
        pytest.skip(f"JACK server runs but PortAudio has no JACK output device: {exc}")
    return lambda **kw: AudioOutput(hostapi="JACK", **kw)


def test_five_seconds_through_jack_equal_the_offline_render(tmp_path, jack_output_factory):
    bundle = fake_bundle(tmp_path)
    # generous ring target: this test is about correctness on a busy CI machine, not latency
    cfg = SynthConfig(record_events=True, target_ms=70)
    start = Controls(seed=7, walk_speed=0.3, walk_spread=1.0, walk_seed=7, gain=0.6)
    out = jack_output_factory(capture_samples=8 * 11025)
    assert out.samplerate == 11025  # the JACK server's rate, not ours
    synth = Synth(bundle, config=cfg, controls=start, loader=fake_loader())
    assert synth.play(output=out), synth.status().error
    t0 = time.perf_counter()
    c = start
    for i in range(5):
        time.sleep(1.0)
        c = c.with_knob(i % 2, (-1) ** i * 1.5)
        synth.set_controls(c)
    elapsed = time.perf_counter() - t0
    st = synth.status()
    synth.stop()
    assert st.error is None
    # our ring never ran dry (out.status_flags counts the JACK server's own xruns, which a loaded
    # machine can cause in a non-realtime dummy server whatever its clients do)
    assert st.underruns == 0
    # callback rate: JACK's period of 256 frames at 11025 Hz, ~43 callbacks a second
    assert out.max_frames == 256
    rate = out.callbacks / elapsed
    assert abs(rate - 11025 / 256) < 0.1 * 11025 / 256, f"{out.callbacks} callbacks in {elapsed:.2f} s"
    assert out.captured >= 4.5 * 11025
    offline = render_offline(bundle, 0, start, synth.event_log(), config=cfg, sample_rate=11025,
                             loader=fake_loader(), n_samples=out.captured)
    # up to the stop, the device got the offline render exactly
    stop_at = synth.ring.stop_fade_at
    assert 4.5 * 11025 <= stop_at < out.captured
    np.testing.assert_array_equal(out.capture[:stop_at], offline[:stop_at])
    assert np.abs(offline).max() > 0.05
    # then the same sound under a falling ramp (no click), then silence
    fade = synth.ring.fade_samples
    assert fade == round(cfg.declick_ms * 1e-3 * 11025) > 0
    np.testing.assert_allclose(out.capture[stop_at:stop_at + fade],
                               offline[stop_at:stop_at + fade] * declick_fall(np.arange(fade), fade),
                               rtol=1e-6, atol=1e-9)
    assert not out.capture[stop_at + fade:out.captured].any()


def _play_ring(out, ring: RingBuffer, until) -> None:
    out.start(ring)
    try:
        deadline = time.perf_counter() + 10
        while not until() and time.perf_counter() < deadline:
            time.sleep(0.05)
    finally:
        out.stop()


@pytest.mark.parametrize("native", [True, False], ids=["native callback", "python callback"])
def test_device_gets_the_ring_in_order(jack_output_factory, native):
    """Both callbacks hand the device the ring's samples, in order, on every channel."""
    ring = RingBuffer(4 * 11025)
    ramp = (np.arange(3 * 11025) % 997 / 997).astype(np.float32)
    ring.write(ramp)
    out = jack_output_factory(capture_samples=11025, native=native)
    _play_ring(out, ring, lambda: out.captured >= 11025)
    assert out.native == (native and native_callback() is not None)
    np.testing.assert_array_equal(out.capture, ramp[:11025])
    assert ring.underruns == 0 and ring.read_position >= 11025
    assert out.max_frames == 256


def test_a_sounddevice_without_c_callbacks_falls_back_to_the_python_callback(jack_output_factory, monkeypatch):
    import sounddevice as sd

    original = sd._StreamBase

    class NoCCallbacks(original):
        """An older sounddevice: no C callback (its own stream classes still work)."""

        def __init__(self, *args, wrap_callback=None, **kwargs):
            if wrap_callback is None:
                raise TypeError("_StreamBase() got an unexpected keyword argument 'wrap_callback'")
            original.__init__(self, *args, wrap_callback=wrap_callback, **kwargs)

    monkeypatch.setattr(sd, "_StreamBase", NoCCallbacks)
    ring = RingBuffer(4 * 11025)
    ramp = (np.arange(2 * 11025) % 991 / 991).astype(np.float32)
    ring.write(ramp)
    out = jack_output_factory(capture_samples=4096)
    _play_ring(out, ring, lambda: out.captured >= 4096)
    assert not out.native
    np.testing.assert_array_equal(out.capture, ramp[:4096])


def test_native_callback_keeps_time_while_python_holds_the_gil(jack_output_factory):
    """The native callback never waits for the GIL: while this thread holds it for half a second
    (a switch interval of 10 s: no other Python thread may run), the device keeps being fed."""
    if native_callback() is None:
        pytest.skip("numba is not available: the engine uses the Python callback")
    ring = RingBuffer(4 * 11025)
    ring.write(np.full(3 * 11025, 0.25, np.float32))
    out = jack_output_factory()
    old = sys.getswitchinterval()
    counts = []

    def hold_the_gil() -> bool:
        sys.setswitchinterval(10.0)
        try:
            before = out.callbacks
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 0.5:
                pass
            counts.append(out.callbacks - before)
        finally:
            sys.setswitchinterval(old)
        return True

    _play_ring(out, ring, lambda: out.callbacks > 5 and hold_the_gil())
    assert out.native
    expected = 0.5 * 11025 / 256  # 21.5 periods of JACK's 256 frames
    assert counts and counts[0] >= 0.5 * expected, f"{counts} callbacks while the GIL was held, expected ~{expected:.0f}"
    assert ring.underruns == 0


def test_jack_stream_restarts_after_stop(tmp_path, jack_output_factory):
    bundle = fake_bundle(tmp_path)
    synth = Synth(bundle, controls=Controls(seed=1), loader=fake_loader())
    for _ in range(2):
        out = jack_output_factory()
        assert synth.restart(output=out), synth.status().error
        time.sleep(0.5)
        assert synth.playing and out.callbacks > 5
    synth.stop()
    assert not synth.playing


def test_melsynth_play_json_through_jack(tmp_path, jack_output_factory):
    """``melsynth play --json`` on the JACK device: a summary with the underrun count (a real bundle)."""
    pytest.importorskip("torch")
    import json
    import sys
    from pathlib import Path

    from tests.engine_bundles import shared_tiny_prior_bundle

    bundle = shared_tiny_prior_bundle()
    # a generous lead: this test is about the summary; a stall of the CI machine is not its subject
    out = subprocess.run([sys.executable, "-m", "melsynth.cli", "play", "--seconds", "3", "--json", "--hostapi", "JACK",
                          "--lead-ms", "30", "--bundle", str(bundle)], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["error"] is None
    assert "JACK" in summary["device"] and summary["sample_rate"] == 11025
    assert summary["seconds"] >= 2.9 and summary["callbacks"] >= 100
    assert summary["underruns"] == 0 and summary["lead_ms"] >= 30.0  # --lead-ms was kept
    assert summary["first_underrun_s"] is None and summary["last_underrun_s"] is None  # when, had there been one
    assert summary["native_callback"] == (native_callback() is not None)
