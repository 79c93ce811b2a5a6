"""The device callback's kernel: the native (numba cfunc) callback does what the numpy one does."""
import ctypes

import numpy as np
import pytest

from engine.callback import CALLBACKS, CAPTURED, COUNTERS, MAX_FRAMES, STATUS_FLAGS, _fill_block, control_block, \
    native_callback
from engine.ringbuffer import RingBuffer


def _native_or_skip():
    compiled = native_callback()
    if compiled is None:
        pytest.skip("numba is not available: the engine uses the Python callback")
    return compiled


@pytest.mark.parametrize("channels", [1, 2])
def test_native_callback_equals_the_numpy_kernel(channels):
    """Blocks of changing size over a wrapping ring, an underrun, host status and a capture that
    fills up: outputs, ring state and counters match the numpy kernel's exactly."""
    compiled = _native_or_skip()
    rng = np.random.default_rng(0)
    rings = [RingBuffer(1000), RingBuffer(1000)]
    counters = [np.zeros(COUNTERS, np.int64), np.zeros(COUNTERS, np.int64)]
    captures = [np.zeros(1500, np.float32), np.zeros(1500, np.float32)]
    control = control_block(rings[0].state, rings[0].data, channels, counters[0], captures[0])
    call = compiled.ctypes
    pos = 0
    for i in range(40):
        chunk = rng.standard_normal(int(rng.integers(0, 300))).astype(np.float32)
        for ring in rings:
            ring.write(chunk)
        frames = int(rng.integers(1, 400))
        status = int(i % 7 == 3)
        native = np.full((frames, channels), np.nan, np.float32)
        assert call(None, native.ctypes.data, frames, None, status, control.ctypes.data) == 0
        numpy_out = np.full((frames, channels), np.nan, np.float32)
        _fill_block(rings[1].state, rings[1].data, numpy_out, counters[1], captures[1], status)
        np.testing.assert_array_equal(native, numpy_out)
        np.testing.assert_array_equal(rings[0].state, rings[1].state)
        pos += frames
    np.testing.assert_array_equal(counters[0], counters[1])
    np.testing.assert_array_equal(captures[0], captures[1])
    assert counters[0][CALLBACKS] == 40 and counters[0][STATUS_FLAGS] == 6
    assert counters[0][MAX_FRAMES] > 200 and counters[0][CAPTURED] == 1500 < pos
    assert rings[0].underruns > 0  # the sequence did run the ring dry
    assert rings[0].consumed == pos


def test_control_block_names_a_wrong_array():
    ring = RingBuffer(16)
    counters = np.zeros(COUNTERS, np.int64)
    with pytest.raises(ValueError, match="capture"):
        control_block(ring.state, ring.data, 2, counters, np.zeros(4, np.float64))
    with pytest.raises(ValueError, match="counters"):
        control_block(ring.state, ring.data, 2, np.zeros(COUNTERS + 1, np.int64), np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="ring data"):
        control_block(ring.state, np.zeros((4, 4), np.float32), 2, counters, np.zeros(0, np.float32))


def test_control_block_points_at_the_arrays():
    ring = RingBuffer(16)
    counters = np.zeros(COUNTERS, np.int64)
    capture = np.zeros(5, np.float32)
    block = control_block(ring.state, ring.data, 2, counters, capture)
    addresses = [ctypes.addressof(ctypes.c_char.from_buffer(a)) for a in (ring.state, ring.data, counters, capture)]
    assert [block[0], block[1], block[4], block[5]] == addresses
    assert (block[2], block[3], block[6]) == (16, 2, 5)
