"""A streamed session, captured at a fake device, equals the offline render of the same inputs.

The fake device's clock is virtual: block i is at i * 256 / 48000 s and a block is
taken as soon as the ring holds one, so the capture never has a gap however busy
the machine. Commands (knob moves, walk, canvas, source switches, a vocoder
hot-swap) arrive from this thread while the producer runs; the synth logs the
frame at which each was applied, and ``render_offline`` replays that log.
"""
import time

import numpy as np
import pytest

from melsynth.engine.device.output import FakeOutput
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.messages import SetControls
from melsynth.engine.stream.pipeline import render_offline
from melsynth.engine.stream.synth import Synth
from tests.engine_fakes import fake_bundle, fake_loader

RATE = 48000


def wait_captured(out, n, timeout=20.0):
    deadline = time.time() + timeout
    while out.captured < n:
        if time.time() > deadline:
            raise AssertionError(f"device captured {out.captured} of {n} samples")
        time.sleep(0.002)


def capture_stream(synth, total, drive):
    """Play ``synth`` into a fake device that takes blocks as soon as they are there (no gaps,
    however slow the machine), run ``drive(out)`` while it plays, and stop after ``total``
    captured samples; returns the device (its ``capture``)."""
    out = FakeOutput(RATE, 256, wait_for_data=True, capture_samples=total)
    assert synth.play(output=out)
    try:
        drive(out)
        wait_captured(out, total)
    finally:
        synth.stop()
    return out


def classical_loader():
    """The fake prior with the bundle's real classical vocoder (engine.runtime.vocoder, RTISI-LA phase)."""
    from melsynth.engine.runtime.vocoder import load_vocoder
    from tests.engine_fakes import FakePrior

    return lambda bundle, name: (FakePrior(bundle.mel), load_vocoder(bundle, name))


@pytest.fixture(scope="module")
def tiny_onnx_bundle():
    pytest.importorskip("torch")
    from melsynth.engine.runtime.bundle import load_bundle
    from tests.engine_bundles import shared_tiny_prior_bundle

    return load_bundle(shared_tiny_prior_bundle())


@pytest.mark.parametrize("frames_per_step,models", [(1, "fake"), (3, "fake"), (1, "classical"), (1, "onnx")])
def test_streamed_capture_equals_offline_render(tmp_path, request, frames_per_step, models):
    """``onnx``: the real engine Prior (toy ONNX prior) and Vocoders, hot-swapping classical -> amplitude-phase."""
    if models == "onnx":
        from melsynth.engine.stream.chain import load_models

        bundle = request.getfixturevalue("tiny_onnx_bundle")
        make_loader, swap_to = (lambda: load_models), "ap"
    else:
        bundle = fake_bundle(tmp_path)
        make_loader = fake_loader if models == "fake" else classical_loader
        swap_to = "other"
    cfg = SynthConfig(record_events=True, frames_per_step=frames_per_step, target_ms=15)
    start = Controls(seed=11, walk_speed=0.2, walk_spread=0.8, walk_seed=3, gain=0.5)
    total = int(2.5 * RATE)
    synth = Synth(bundle, config=cfg, controls=start, loader=make_loader())

    def drive(out):
        rng = np.random.default_rng(0)
        c = start
        canvas = np.full((256, 60), -4.0, np.float32)
        canvas[40:80, ::3] = 0.5
        synth.set_canvas(canvas)
        for i, mark in enumerate(np.linspace(0.1, 2.2, 16)):
            wait_captured(out, int(mark * RATE))
            c = c.with_knob(int(rng.integers(0, 2)), float(rng.normal() * 2))
            if i == 4:
                c = c.replace(source="canvas")
            if i == 6:
                synth.edit_canvas(int(synth.canvas_playhead) + 3, np.full((30, 4), 1.0), bin_start=100)
            if i == 8:
                c = c.replace(source="latent", morph=0.5, seed_b=99)
            if i == 10:
                synth.set_vocoder(swap_to, wait=True)  # loads off the producer thread; music goes on
            if i == 12:
                c = c.replace(walk_speed=0.9, gain=0.8)
            synth.set_controls(c)

    out = capture_stream(synth, total, drive)
    events = synth.event_log()
    assert synth.ring.underruns == 0
    assert len(events) >= 18
    kinds = {type(cmd).__name__ for _, cmd in events}
    assert {"SetControls", "SetCanvas", "EditCanvas", "SwapChain"} <= kinds, synth.status().error
    assert events[-1][0] > events[0][0]  # applied across the session, not all at once
    offline = render_offline(bundle, 0, start, events, config=cfg, sample_rate=RATE, loader=make_loader(),
                             n_samples=total)
    np.testing.assert_array_equal(out.capture, offline)
    assert np.abs(offline).max() > 0.05  # not a silent comparison


def test_offline_render_without_the_event_log_differs(tmp_path):
    """The replay matters: the same session rendered without its commands is different audio."""
    bundle = fake_bundle(tmp_path)
    cfg = SynthConfig(record_events=True)
    start = Controls(seed=11)
    synth = Synth(bundle, config=cfg, controls=start, loader=fake_loader())

    def drive(out):
        wait_captured(out, RATE // 3)
        synth.set_controls(start.with_knob(0, 2.5))

    out = capture_stream(synth, RATE, drive)
    replay = render_offline(bundle, 0, start, synth.event_log(), config=cfg, sample_rate=RATE,
                            loader=fake_loader(), n_samples=RATE)
    plain = render_offline(bundle, 0, start, (), config=cfg, sample_rate=RATE, loader=fake_loader(),
                           n_samples=RATE)
    np.testing.assert_array_equal(out.capture, replay)
    assert np.abs(out.capture - plain).max() > 1e-3


def test_knob_moves_held_back_a_frame_replay_at_the_frames_they_were_applied(tmp_path, monkeypatch):
    """Moves that come too late for a prior re-run wait for the next step (Synth._plan): the event
    log has the frames they were applied at, so the offline replay still equals the stream."""
    plan = Synth._plan

    def hold_back(self, to_dry):
        if self._commands and not self._pipeline.heavy_step_due():
            lead = self._lead_s(False)
            return to_dry < lead, False, False, lead
        return plan(self, to_dry)

    monkeypatch.setattr(Synth, "_plan", hold_back)
    bundle = fake_bundle(tmp_path)
    cfg = SynthConfig(record_events=True)
    start = Controls(seed=5, walk_speed=0.3, walk_spread=0.8, walk_seed=2)
    total = int(1.5 * RATE)
    synth = Synth(bundle, config=cfg, controls=start, loader=fake_loader())

    def drive(out):
        rng = np.random.default_rng(1)
        c = start
        for mark in np.linspace(0.1, 1.3, 12):
            wait_captured(out, int(mark * RATE))
            c = c.with_knob(int(rng.integers(0, 2)), float(rng.normal() * 2))
            synth.set_controls(c)

    out = capture_stream(synth, total, drive)
    events = synth.event_log()
    assert sum(isinstance(cmd, SetControls) for _, cmd in events) == 12
    offline = render_offline(bundle, 0, start, events, config=cfg, sample_rate=RATE, loader=fake_loader(),
                             n_samples=total)
    np.testing.assert_array_equal(out.capture, offline)
