"""RingBuffer: order, wrap-around, underruns, no allocation in the reader, SPSC under threads."""
import threading
import tracemalloc

import numpy as np
import pytest

from engine.ringbuffer import RingBuffer


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
    from engine.ringbuffer import STATE_SIZE, _read_block, _write_block

    # compiled afresh: the engine's kernels come from numba's disk cache, which keeps no IR
    state, data = np.zeros(STATE_SIZE, np.int64), np.zeros(8, np.float32)
    for body in (_read_block, _write_block):
        kernel = numba.njit(body)
        kernel(state, data, np.ones(4, np.float32))
        ir = "\n".join(kernel.inspect_llvm().values())
        assert "fence acquire" in ir and "fence release" in ir, body.__name__
