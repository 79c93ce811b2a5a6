"""When the engine's numba kernels come into use: at once (the default), or later on request.

Each user of a numba kernel (the ring, the device callback, the safety stage, the classical
vocoder's magnitude and phase) asks ``deferred()`` when it is built. While deferred it takes
its numpy (or plain Python) path and compiles nothing; its ``use_kernels()`` later switches it
to the compiled path, between two steps. Every compiled path gives the numpy path's output
(bit for bit for the vocoder, within float rounding for the safety stage), so the switch is
inaudible. The app defers: it plays on numpy paths within a second or two while
``engine.stream.warmup`` compiles (or loads from numba's cache) in the background.
"""
from __future__ import annotations

_deferred = False


def defer(on: bool = True) -> None:
    """From now on, kernel users built take their numpy paths (``on``), or compile as usual."""
    global _deferred
    _deferred = bool(on)


def deferred() -> bool:
    """Whether kernel users built now must leave their kernels for later."""
    return _deferred
