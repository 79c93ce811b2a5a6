"""RingBuffer: order, wrap-around, underruns, no allocation in the reader, SPSC under threads."""
import threading
import tracemalloc

import numpy as np
import pytest

from melsynth.engine.device.ringbuffer import RingBuffer
from tests.engine_fakes import declick_fall as fall


def test_fifo_order_across_wraparound():
    ring = RingBuffer(10)
    out = np.empty(4, dtype=np.float32)
    seq = np.arange(100, dtype=np.float32)
    got, pos = [], 0
    while pos < seq.size or ring.fill:
        pos += ring.write(seq[pos:pos + 7])
        n = ring.read_into(out)
        got.extend(out[:n])
    np.testing.assert_array_equal(np.array(got), seq)
    assert ring.written == 100 and ring.read_position == 100


def test_write_never_overwrites_unread_samples():
    ring = RingBuffer(8)
    assert ring.write(np.ones(5, np.float32)) == 5
    assert ring.write(np.full(5, 2.0, np.float32)) == 3  # only 3 free
    assert ring.fill == 8 and ring.free == 0
    out = np.empty(8, np.float32)
    assert ring.read_into(out) == 8
    np.testing.assert_array_equal(out, [1, 1, 1, 1, 1, 2, 2, 2])
    assert ring.underruns == 0


def test_underrun_zero_fills_and_counts():
    ring = RingBuffer(16)
    ring.write(np.full(11, 0.5, np.float32))
    out = np.full(8, 9.0, np.float32)
    assert ring.read_into(out) == 8 and ring.first_underrun_at == -1
    assert ring.underrun_seconds(8) == {"first": None, "last": None}
    assert ring.read_into(out) == 3
    np.testing.assert_array_equal(out, [0.5, 0.5, 0.5, 0, 0, 0, 0, 0])
    assert ring.underruns == 1 and ring.underrun_samples == 5
    assert ring.read_into(out) == 0
    assert not out.any()
    assert ring.underruns == 2 and ring.underrun_samples == 13
    assert (ring.first_underrun_at, ring.last_underrun_at) == (11, 11)  # where playback stood
    ring.write(np.ones(2, np.float32))
    ring.read_into(out)
    assert (ring.first_underrun_at, ring.last_underrun_at) == (11, 13)
    assert ring.underrun_seconds(4) == {"first": 2.75, "last": 3.25}  # in seconds played at 4 Hz
    ring.reset()
    assert (ring.first_underrun_at, ring.last_underrun_at, ring.underruns) == (-1, -1, 0)


def test_reads_into_a_strided_channel_view():
    ring = RingBuffer(32)
    ring.write(np.arange(6, dtype=np.float32))
    block = np.zeros((4, 2), np.float32)
    ring.read_into(block[:, 0])
    np.testing.assert_array_equal(block[:, 0], [0, 1, 2, 3])
    assert not block[:, 1].any()


def test_read_into_allocates_no_sample_buffers():
    ring = RingBuffer(1 << 16)
    out = np.zeros((4096, 2), np.float32)
    chunk = np.ones(4096, np.float32)
    ring.write(chunk)
    ring.read_into(out[:, 0])  # warm up
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(200):
            ring.write(chunk)  # producer side is allowed to allocate; it does not either
            ring.read_into(out[:, 0])
        ring.read_into(out[:, 0])  # an underrun path too
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one 4096-sample float32 buffer would be 16 KiB; view objects are ~100 bytes
    assert peak - base < 4096, f"reader allocated {peak - base} bytes"


def test_spsc_threads_keep_order():
    ring = RingBuffer(1000)
    total = 200_000
    errors = []

    def producer():
        pos = 0
        while pos < total:
            n = ring.write(np.arange(pos, min(pos + 333, total), dtype=np.float32))
            pos += n
            if n == 0:
                threading.Event().wait(0.0001)

    got = np.empty(total, np.float32)
    t = threading.Thread(target=producer)
    t.start()
    buf = np.empty(256, np.float32)
    pos = 0
    while pos < total:
        n = ring.read_into(buf)
        got[pos:pos + n] = buf[:n]
        pos += n
    t.join()
    np.testing.assert_array_equal(got, np.arange(total, dtype=np.float32))
    assert not errors


def test_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(0)


def test_consumed_counts_zero_fills_as_the_device_clock_does():
    ring = RingBuffer(1024)
    ring.write(np.ones(300, np.float32))
    block = np.empty(256, np.float32)
    ring.read_into(block)
    ring.read_into(block)  # 44 real samples, 212 zeros: the device still took a whole block
    assert ring.read_position == 300
    assert ring.consumed == 512


def test_the_compiled_sides_fence_around_their_counters():
    """Producer and device callback run on different cores without a lock: each fences after
    reading the other's counter and before publishing its own (a ``dmb`` on ARM)."""
    numba = pytest.importorskip("numba")
    from melsynth.engine.device.ringbuffer import STATE_SIZE, _read_block, _write_block

    # compiled afresh: the engine's kernels come from numba's disk cache, which keeps no IR
    state, data = np.zeros(STATE_SIZE, np.int64), np.zeros(8, np.float32)
    for body in (_read_block, _write_block):
        kernel = numba.njit(body)
        kernel(state, data, np.ones(4, np.float32))
        ir = "\n".join(kernel.inspect_llvm().values())
        assert "fence acquire" in ir and "fence release" in ir, body.__name__


# ---------------------------------------------------------------- declicking (fade_samples > 0)
def _read(ring: RingBuffer, n: int) -> np.ndarray:
    out = np.full(n, 9.0, np.float32)
    ring.read_into(out)
    return out


def test_a_gap_continues_the_sound_falling_to_silence_then_the_sound_rises_back():
    ring = RingBuffer(64, fade_samples=8)
    line = (0.1 + 0.02 * np.arange(12)).astype(np.float32)
    ring.write(line)
    _read(ring, 4)
    a = _read(ring, 16)  # 8 real samples, then the ring is dry
    np.testing.assert_array_equal(a[:8], line[4:])
    k = np.arange(1, 9)
    # the line goes on (same value, same slope) under a fall to silence: no corner, no step
    np.testing.assert_allclose(a[8:], (line[-1] + 0.02 * k) * fall(k, 8), rtol=1e-6, atol=1e-7)
    assert a[-1] == 0.0
    assert ring.underruns == 1 and ring.underrun_samples == 8
    assert not _read(ring, 16).any()  # still dry: silence
    ring.write(np.full(32, -0.5, np.float32))
    b = _read(ring, 16)
    np.testing.assert_allclose(b[:8], -0.5 * (1 - fall(k, 9)), rtol=1e-6)  # up from silence
    np.testing.assert_allclose(b[8:], -0.5)
    sound = np.concatenate([line[:4], a, np.zeros(16), b])
    assert np.abs(np.diff(sound)).max() < 0.5 * np.pi / 9


def test_a_gap_shorter_than_the_fall_crossfades_into_the_returning_sound():
    ring = RingBuffer(64, fade_samples=8)
    ring.write(np.full(16, 0.4, np.float32))
    _read(ring, 16)
    a = _read(ring, 4)  # a short gap: the held sound falls for 4 samples
    np.testing.assert_allclose(a, 0.4 * fall(np.arange(1, 5), 8), rtol=1e-6)
    ring.write(np.full(16, 0.4, np.float32))
    b = _read(ring, 8)
    j = np.arange(8)
    # the rest of the fall sounds on under the rise: a dip, not a step
    np.testing.assert_allclose(b, 0.4 * (1 - fall(j + 1, 9)) + 0.4 * fall(j + 5, 8), rtol=1e-6)
    sound = np.concatenate([[0.4], a, b, [0.4]])
    assert np.abs(np.diff(sound)).max() < 0.4 * np.pi / 8 and sound.min() > 0.1


def test_a_continued_sound_never_goes_beyond_full_scale():
    ring = RingBuffer(64, fade_samples=8)
    ring.write(np.array([0.9, -0.9] * 8, np.float32))  # reflection: 2 e - x reaches 2.7
    _read(ring, 16)
    a = _read(ring, 8)
    assert np.abs(a).max() <= 1.0 and (np.abs(a) == 1.0).any()


def test_stop_fades_out_without_counting_an_underrun_and_then_reads_nothing():
    ring = RingBuffer(64, fade_samples=8)
    ring.write(np.ones(20, np.float32))
    _read(ring, 4)
    ring.request_stop()
    assert not ring.stop_faded
    a = _read(ring, 6)
    assert ring.stop_fade_at == 4
    np.testing.assert_allclose(a, fall(np.arange(6), 8), rtol=1e-6)
    b = _read(ring, 6)  # the fade ends inside this block
    np.testing.assert_allclose(b, fall(np.arange(6, 12), 8), rtol=1e-6, atol=1e-7)
    assert ring.stop_faded and ring.read_position == 16
    assert not _read(ring, 6).any() and ring.read_position == 16  # silence, the ring untouched
    assert ring.underruns == 0
    ring.reset(8)
    assert not ring.stop_faded and ring.stop_fade_at == -1
    ring.write(np.ones(4, np.float32))
    np.testing.assert_array_equal(_read(ring, 4), 1.0)  # playing again


def test_stop_with_a_dry_ring_still_falls_smoothly_and_counts_no_underrun():
    ring = RingBuffer(64, fade_samples=8)
    ring.write(np.ones(6, np.float32))
    _read(ring, 4)
    ring.request_stop()
    a = _read(ring, 8)
    # 2 real samples, then the held sound: under the stop's fall, and under the gap's too
    expected = fall(np.arange(8), 8) * np.concatenate([[1, 1], fall(np.arange(1, 7), 8)])
    np.testing.assert_allclose(a, expected, rtol=1e-6, atol=1e-7)
    assert ring.underruns == 0 and ring.stop_faded


def test_a_resumed_start_rises_and_a_fresh_one_does_not():
    ring = RingBuffer(64, fade_samples=4)
    ring.reset(4, fade_in=True)
    ring.write(np.ones(8, np.float32))
    np.testing.assert_allclose(_read(ring, 8), np.concatenate([1 - fall(np.arange(1, 5), 5), np.ones(4)]),
                               rtol=1e-6)
    ring.reset(4)
    ring.write(np.ones(8, np.float32))
    np.testing.assert_array_equal(_read(ring, 8), 1.0)
    with pytest.raises(ValueError, match="fade_samples"):
        ring.reset(-1)


def test_declicked_output_stays_finite_and_within_full_scale():
    """Random sound, random gaps and block sizes, a stop near the end."""
    rng = np.random.default_rng(3)
    ring = RingBuffer(512, fade_samples=24)
    for i in range(300):
        ring.write(rng.uniform(-1, 1, int(rng.integers(0, 200))).astype(np.float32))
        if i == 250:
            ring.request_stop()
        out = _read(ring, int(rng.integers(1, 300)))
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert ring.underruns > 10 and ring.stop_faded
