"""The audio device callback's body, as one kernel for the real device and the fake one.

``fill_block`` is everything a callback does: count, copy ring -> first channel
(``engine.device.ringbuffer.read_block``: if the ring is short, the sound falls to silence and
an underrun is counted), copy the first channel to the others, and optionally copy into a preallocated
capture array (tests). No allocation, no locks, no I/O, no model calls.

On a real device PortAudio calls ``native_callback()``: a numba ``cfunc`` with
PortAudio's ``PaStreamCallback`` signature that runs ``fill_block`` as machine code.
It never takes Python's GIL. A Python callback must take the GIL every period, and then
waits whenever the producer holds it (up to ``sys.getswitchinterval()``, 5 ms, while the
producer runs Python code); and the producer waits whenever the callback holds it, for
as long as the OS leaves the callback's thread preempted by other work. With the
native callback neither side waits on the other.

Everything the native callback touches is reached through one int64 control block
(PortAudio's ``userData``), built by ``control_block`` from arrays the caller keeps alive::

    control[0]  address of the ring's state (int64[STATE_SIZE])
    control[1]  address of the ring's data  (float32[control[2]])
    control[3]  channels of the device buffer
    control[4]  address of the output's counters (int64[COUNTERS])
    control[5]  address of the capture array (float32[control[6]]; 0 samples: no capture)

Without numba (or if compiling fails) ``native_callback()`` returns None and the
caller falls back to a Python callback that runs the same ``fill_block`` as numpy.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import FunctionType

import numpy as np

from melsynth.engine import kernels
from melsynth.engine.device import ringbuffer
from melsynth.engine.device.ringbuffer import STATE_SIZE, RingBuffer, plain_python, plain_read_block, read_block

try:
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic
except ImportError:  # pragma: no cover - numba is a dependency; the Python callback still works
    numba = None

# indices into the output's counters
CALLBACKS = 0  # callbacks so far
MAX_FRAMES = 1  # the largest block the device asked for
STATUS_FLAGS = 2  # callbacks where the host reported a problem (e.g. its own output underflow)
CAPTURED = 3  # samples copied into the capture array
COUNTERS = 4

CONTROL_SIZE = 8
_PA_CONTINUE = 0


def _fill_block(state: np.ndarray, data: np.ndarray, out: np.ndarray, counters: np.ndarray,
                capture: np.ndarray, status: int) -> None:
    """One callback: ``out`` is the device buffer, ``(frames, channels)`` float32."""
    frames = out.shape[0]
    counters[CALLBACKS] += 1
    if status != 0:
        counters[STATUS_FLAGS] += 1
    if frames > counters[MAX_FRAMES]:
        counters[MAX_FRAMES] = frames
    first = out[:, 0]
    read_block(state, data, first)
    for c in range(1, out.shape[1]):
        out[:, c] = first
    captured = counters[CAPTURED]
    n = min(frames, capture.shape[0] - captured)
    if n > 0:
        capture[captured:captured + n] = first[:n]
        counters[CAPTURED] = captured + n


def _sources_digest() -> str:
    """A digest of this file and the ring's, which the compiled kernels call into."""
    h = hashlib.sha1()
    for path in (__file__, ringbuffer.__file__):
        h.update(Path(path).read_bytes())
    return h.hexdigest()[:12]


def _cache_key_named(fn: FunctionType) -> FunctionType:
    """``fn`` under a name that carries ``_sources_digest()``, for numba's on-disk cache.

    numba keys a cached function on its own file's timestamp only: a kernel cached from this
    file would keep running the ring's old code after ``engine/device/ringbuffer.py`` changes (seen:
    the native callback skipped a new ring field while the numpy kernel wrote it). numba names
    cache files after the function's qualified name, so a change to either file compiles afresh.
    """
    named = FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    named.__qualname__ = f"{fn.__qualname__}_{_sources_digest()}"
    return named


fill_block = (numba.njit(cache=True, nogil=True)(_cache_key_named(_fill_block)) if numba is not None
              else _fill_block)
# the Python callback's body while numba's kernels are left for later (engine.kernels)
plain_fill_block = plain_python(_fill_block, read_block=plain_read_block)


def control_block(state: np.ndarray, data: np.ndarray, channels: int, counters: np.ndarray,
                  capture: np.ndarray) -> np.ndarray:
    """The native callback's ``userData`` (see the module docstring). The caller keeps every
    array (and the returned block) alive for as long as the stream runs."""
    for name, a, dtype, size in (("ring state", state, np.int64, STATE_SIZE), ("ring data", data, np.float32, None),
                                 ("counters", counters, np.int64, COUNTERS), ("capture", capture, np.float32, None)):
        if a.dtype != dtype or a.ndim != 1 or not a.flags.c_contiguous or (size and a.shape[0] != size):
            raise ValueError(f"{name}: need a contiguous 1-D {np.dtype(dtype).name} array"
                             f"{f' of {size}' if size else ''}, got {a.dtype} {a.shape}")
    block = np.zeros(CONTROL_SIZE, np.int64)
    block[:7] = (state.ctypes.data, data.ctypes.data, data.shape[0], int(channels), counters.ctypes.data,
                 capture.ctypes.data, capture.shape[0])
    return block


_native = None


def native_callback():
    """The compiled ``PaStreamCallback`` (a numba ``cfunc``), or None where numba is missing or
    fails, or while kernels are deferred (``engine.kernels``). Compiled once per process (cached
    on disk), never while audio runs."""
    global _native
    if _native is None and kernels.deferred():
        return None
    if _native is None:
        _native = _compile() if numba is not None else False
    return _native or None


def prepare_kernels():
    """Compile (or load from numba's cache) everything a device runs, before any device does;
    returns ``native_callback()``.

    The fake device and the Python callback call ``fill_block`` with a Python int status, the
    native callback with an unsigned long: two compiled versions. Left to the first callback,
    the second one compiled there, for seconds, with the GIL held (seen: 146 underruns in a
    latency bench after a source change had emptied the cache).

    While kernels are deferred (``engine.kernels``) it compiles nothing and returns None.
    """
    if kernels.deferred():
        return None
    return compile_kernels()


def compile_kernels():
    """``prepare_kernels()`` whether or not kernels are deferred (``engine.stream.warmup``)."""
    global _native
    if _native is None:
        _native = _compile() if numba is not None else False
    compiled = _native or None
    ring = RingBuffer(4)
    ring.write(np.zeros(1, np.float32))
    ring.read_into(np.zeros(1, np.float32))
    fill_block(ring.state, ring.data, np.zeros((1, 1), np.float32), np.zeros(COUNTERS, np.int64),
               np.zeros(0, np.float32), 0)
    return compiled


if numba is not None:
    @intrinsic
    def _as_pointer(typingctx, address):
        """An int64 address as a ``void *`` (the control block stores addresses as integers)."""
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], ir.IntType(8).as_pointer())
        return types.voidptr(types.int64), codegen


def _callback(input_, output, frames, time_info, status, user):
    """``PaStreamCallback``: ``fill_block`` on the arrays the control block points at.

    Module-level and free of closure variables: numba keys a cached function on its closure's
    contents too, and an intrinsic defined per call never matched, so every process compiled
    the callback again and appended another copy to the cache.
    """
    control = numba.carray(user, (CONTROL_SIZE,), np.int64)
    state = numba.carray(_as_pointer(control[0]), (STATE_SIZE,), np.int64)
    data = numba.carray(_as_pointer(control[1]), (control[2],), np.float32)
    out = numba.carray(output, (frames, control[3]), np.float32)
    counters = numba.carray(_as_pointer(control[4]), (COUNTERS,), np.int64)
    capture = numba.carray(_as_pointer(control[5]), (control[6],), np.float32)
    fill_block(state, data, out, counters, capture, status)
    return _PA_CONTINUE


def _compile():
    # int callback(const void *input, void *output, unsigned long frames,
    #              const PaStreamCallbackTimeInfo *time, PaStreamCallbackFlags status, void *user)
    signature = types.int32(types.voidptr, types.voidptr, types.ulong, types.voidptr, types.ulong, types.voidptr)
    try:
        return numba.cfunc(signature, nopython=True, cache=True)(_cache_key_named(_callback))
    except Exception:  # noqa: BLE001 - any compiler trouble: the Python callback does the same job
        return False
