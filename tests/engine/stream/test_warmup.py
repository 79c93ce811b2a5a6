"""Kernels left for later (engine.kernels) and switched in while playing (engine.stream.warmup).

The app starts on the engine's numpy paths and switches to the numba kernels once they are
compiled. The switch must be inaudible: a stream that switches mid-way gives the samples of
one that used the kernels (or numpy) throughout.
"""
import time

import numpy as np
import pytest

from melsynth.engine import kernels
from melsynth.engine.device.output import FakeOutput
from melsynth.engine.device.ringbuffer import RingBuffer, plain_read_block, plain_write_block, read_block, write_block
from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.dsp.magnitude import MelMagnitude
from melsynth.engine.dsp.phase import PhaseConfig, StreamingPhase, _verified_kernels
from melsynth.engine.dsp.safety import SafetyStage
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.messages import UseKernels
from melsynth.engine.stream.pipeline import render_offline
from melsynth.engine.stream.synth import Synth
from melsynth.engine.stream.warmup import KernelWarmup, compile_in_child
from tests.engine_fakes import fake_bundle

RATE = 48000


@pytest.fixture
def deferred():
    """Kernel users built in the test leave their kernels for later; the default comes back after."""
    kernels.defer(True)
    yield
    kernels.defer(False)


def classical_loader():
    """The fake prior with the bundle's real classical vocoder (numba magnitude and phase kernels)."""
    from melsynth.engine.runtime.vocoder import load_vocoder
    from tests.engine_fakes import FakePrior

    return lambda bundle, name: (FakePrior(bundle.mel), load_vocoder(bundle, name))


def test_deferred_users_compile_nothing_and_take_their_numpy_paths(deferred, monkeypatch):
    from melsynth.engine.device import callback
    from melsynth.engine.device.callback import native_callback, prepare_kernels

    monkeypatch.setattr(callback, "_native", None)  # as in a fresh process

    spec = MelSpec()
    assert StreamingPhase(spec)._kernels is None
    assert not MelMagnitude(spec).fast
    assert SafetyStage(spec.sample_rate)._kernel is None
    ring = RingBuffer(64)
    assert ring._write_block is plain_write_block and ring._read_block is plain_read_block
    assert FakeOutput(RATE, 256)._fill_block.__name__ == "_fill_block" and prepare_kernels() is None
    assert native_callback() is None


def test_the_plain_ring_gives_the_compiled_rings_counters_and_samples():
    """Writes and reads with a gap (fall and rise), part-filled reads and a stop fade."""
    rng = np.random.default_rng(1)
    rings = [RingBuffer(300, fade_samples=24) for _ in range(2)]
    sides = [(plain_write_block, plain_read_block), (write_block, read_block)]
    outs = [[], []]
    for step in range(60):
        chunk = rng.uniform(-0.5, 0.5, int(rng.integers(0, 90))).astype(np.float32)
        want = int(rng.integers(1, 100))
        if step == 50:
            for ring in rings:
                ring.request_stop()
        for ring, (write, read), got in zip(rings, sides, outs):
            if step % 7 != 3:  # now and then nothing is written: the reader runs short
                write(ring.state, ring.data, chunk)
            out = np.zeros(want, np.float32)
            read(ring.state, ring.data, out)
            got.append(out)
    np.testing.assert_array_equal(rings[0].state, rings[1].state)
    assert rings[0].underruns > 0
    # the fades' raised cosine may round differently in numba's libm: a float32 ulp at most
    np.testing.assert_allclose(np.concatenate(outs[0]), np.concatenate(outs[1]), atol=1.2e-7, rtol=0)


def test_phase_switched_between_frames_gives_the_bits_of_either_path(deferred):
    spec = MelSpec()
    kernels.defer(False)
    if _verified_kernels(spec)[0] is None:
        pytest.skip("numba kernels do not match numpy here: the phase keeps to numpy anyway")
    mag = np.random.default_rng(0).gamma(0.5, 1.0, (spec.n_freqs, 40)).astype(np.float32)
    config = PhaseConfig()
    numpy_only = StreamingPhase(spec, config, fast=False).push(mag)
    kernels_only = StreamingPhase(spec, config).push(mag)
    kernels.defer(True)
    switched = StreamingPhase(spec, config)
    assert switched._kernels is None
    head = switched.push(mag[:, :17])
    switched.use_kernels()
    assert switched._kernels is not None
    tail = switched.push(mag[:, 17:])
    np.testing.assert_array_equal(np.concatenate([head, tail]), kernels_only)
    np.testing.assert_array_equal(kernels_only, numpy_only)


def test_a_stream_that_switches_to_the_kernels_mid_way_equals_either_render(tmp_path, deferred):
    """The synth plays on numpy paths, the warm-up switches it while the fake device takes blocks,
    and the capture equals the offline render on kernels throughout, and the one on numpy
    throughout (the safety stage's two paths round differently, within 2e-6)."""
    bundle = fake_bundle(tmp_path)
    cfg = SynthConfig(record_events=True, target_ms=15)
    start = Controls(seed=5, walk_speed=0.3, walk_spread=0.7, walk_seed=2, gain=0.6)
    synth = Synth(bundle, vocoder="classical", config=cfg, controls=start, loader=classical_loader())
    vocoder = synth._pipeline.chain.vocoder
    assert vocoder.phase._kernels is None and not vocoder.magnitude.fast
    total = int(2.0 * RATE)
    out = FakeOutput(RATE, 256, capture_samples=total)  # manual clock: this test ticks it

    def tick_until(samples):
        while out.captured < samples:
            deadline = time.monotonic() + 20
            while out.ring.fill < 256:  # each block once the producer has it ready: no gap
                assert time.monotonic() < deadline, "the producer stalled"
                time.sleep(0.0005)
            out.tick()

    assert synth.play(output=out)
    try:
        tick_until(RATE // 2)  # half a second on numpy paths first
        warmup = KernelWarmup(synth, use_child=False).start()
        assert warmup.wait(120), "kernels never came"
        tick_until(total)  # the switch comes at the producer's next step, well before the end
    finally:
        synth.stop()
    assert synth.ring.underruns == 0
    switches = [frame for frame, cmd in synth.event_log() if isinstance(cmd, UseKernels)]
    assert len(switches) == 1 and 0 < switches[0]
    heard_frames = total / RATE * bundle.mel.frame_rate
    assert switches[0] < heard_frames - 10, "the switch came after the capture: nothing was compared"
    if vocoder.phase._kernels is None:
        pytest.skip("numba kernels do not match numpy here: nothing switched")
    assert vocoder.magnitude.fast and synth._pipeline.safety._kernel is not None
    assert synth.ring._write_block is write_block
    assert synth.config.target_ms == cfg.target_ms  # the longer lead while loading is given back

    others = [(f, c) for f, c in synth.event_log() if not isinstance(c, UseKernels)]
    on_kernels = render_offline(bundle, 0, start, others, vocoder="classical", config=cfg, sample_rate=RATE,
                                loader=classical_loader(), n_samples=total)
    kernels.defer(True)
    on_numpy = render_offline(bundle, 0, start, others, vocoder="classical", config=cfg, sample_rate=RATE,
                              loader=classical_loader(), n_samples=total)
    assert np.abs(on_kernels).max() > 0.05  # not a silent comparison
    np.testing.assert_allclose(out.capture, on_kernels, atol=2e-6, rtol=0)
    np.testing.assert_allclose(out.capture, on_numpy, atol=2e-6, rtol=0)


def test_the_child_compiler_fills_the_cache_and_exits_cleanly():
    assert compile_in_child(MelSpec(), (3,)) is None


def test_a_failing_child_is_reported_in_one_line(monkeypatch):
    import sys

    from melsynth.engine.stream import warmup

    monkeypatch.setattr(sys, "executable", "/bin/false")
    why = warmup.compile_in_child(MelSpec(), (3,))
    assert why is not None and "kernel compiler failed" in why and "\n" not in why
