"""The device callback's kernel: the native (numba cfunc) callback does what the numpy one does."""
import ctypes

import numpy as np
import pytest

from melsynth.engine.device.callback import (CALLBACKS, CAPTURED, COUNTERS, MAX_FRAMES, STATUS_FLAGS, _fill_block,
                                            control_block, native_callback)
from melsynth.engine.device.ringbuffer import RingBuffer
from tests.paths import REPO


def _native_or_skip():
    compiled = native_callback()
    if compiled is None:
        pytest.skip("numba is not available: the engine uses the Python callback")
    return compiled


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("fade", [0, 48], ids=["hard edges", "declicked"])
def test_native_callback_equals_the_numpy_kernel(channels, fade):
    """Blocks of changing size over a wrapping ring, underruns, host status, a capture that
    fills up and a stop at the end: outputs, ring state and counters match the numpy kernel's
    exactly."""
    compiled = _native_or_skip()
    rng = np.random.default_rng(0)
    rings = [RingBuffer(1000, fade), RingBuffer(1000, fade)]
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
        if i == 36:
            for ring in rings:
                ring.request_stop()
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
    assert rings[0].stop_faded and rings[0].stop_fade_at > 0
    assert rings[0].consumed < pos  # a faded-out stop hands out silence without reading


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


def test_the_cached_callback_is_named_after_the_ring_code_it_runs(tmp_path, monkeypatch):
    """numba checks only the defining file's timestamp: a change to the ring's code must change
    the compiled kernels' cache names, or the callback keeps running the old ring."""
    import melsynth.engine.device.callback as callback
    import melsynth.engine.device.ringbuffer as ringbuffer

    before = callback._sources_digest()
    assert callback._cache_key_named(callback._fill_block).__qualname__ == f"_fill_block_{before}"
    changed = tmp_path / "ringbuffer.py"
    changed.write_bytes(open(ringbuffer.__file__, "rb").read() + b"\n# changed\n")
    monkeypatch.setattr(ringbuffer, "__file__", str(changed))
    assert callback._sources_digest() != before


def test_a_second_process_loads_the_callback_from_the_cache(tmp_path):
    """One cached copy of the native callback, used by every later process (a callback whose
    cache key never matched was compiled again, and stored again, at every start)."""
    _native_or_skip()
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    code = "import melsynth.engine.device.callback as c; assert c.native_callback() is not None"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120,
                       cwd=REPO)
    stored = sorted(p.name for p in tmp_path.rglob("*_callback_*.nbc"))
    assert len(stored) == 1, stored


def test_after_prepare_kernels_a_fake_device_compiles_nothing_in_its_callback():
    """A compile in the first callback holds the GIL for seconds: the producer starves."""
    _native_or_skip()
    from melsynth.engine.device.callback import fill_block, prepare_kernels
    from melsynth.engine.device.output import FakeOutput

    assert prepare_kernels() is not None
    compiled = len(fill_block.signatures)
    out = FakeOutput(48000, 256, channels=2)
    out.start(RingBuffer(1024))
    out.tick()
    out.stop()
    assert out.callbacks == 1 and len(fill_block.signatures) == compiled
