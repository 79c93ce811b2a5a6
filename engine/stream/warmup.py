"""The numba kernels made ready in the background while a synth plays on its numpy paths.

    kernels.defer()                      # before the Synth is built (engine.kernels)
    synth = Synth(...); synth.play()     # numpy paths and the Python device callback: sound at once
    KernelWarmup(synth, on_ready).start()

The warm-up thread first has a child process compile every kernel into numba's on-disk
cache (``python -m melsynth.engine.stream.warmup``, at a lower priority): compiling takes
seconds of Python work, which in this process would hold the GIL against the producer. With
the cache warm the child only loads. Then the thread loads the kernels here (a few tenths of
a second), checks each against its numpy path, ends the deferral and switches the synth
over (``Synth.use_kernels``): the sound goes on unchanged. A device stream opened later runs
the native callback; the one already open keeps its Python callback, now with the compiled
body.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time
from typing import Callable

from melsynth.engine import kernels
from melsynth.engine.dsp.features import MelSpec

CHILD_TIMEOUT_S = 300.0
LOAD_LEAD_MS = 80.0  # the producer's least lead while this process loads the kernels
CHILD_NICE = 5  # below the app's threads: the child must not take the producer's core


def defer_kernels() -> None:
    """Synths built from now on play on numpy paths until a ``KernelWarmup`` switches them."""
    kernels.defer(True)


def compile_all(spec: MelSpec, magnitude_iterations: tuple[int, ...] = ()) -> None:
    """Compile (or load from numba's cache) every kernel a synth of ``spec`` uses, and check
    each against its numpy path (the checks are cached per process)."""
    from melsynth.engine.device.callback import compile_kernels
    from melsynth.engine.dsp import magnitude, phase, safety

    compile_kernels()
    safety._kernel_works()
    for iterations in magnitude_iterations:
        magnitude._kernel_matches(spec, iterations)
    phase._scipy_matches_numpy(spec.n_fft)
    phase._verified_kernels(spec)


def magnitude_iterations_of(synth) -> tuple[int, ...]:
    """The magnitude iterations of the synth's classical vocoders (their kernels' checks)."""
    pipe = synth._pipeline
    found = set()
    for chain in (pipe.chain, pipe.old_chain):
        magnitude = getattr(getattr(chain, "vocoder", None), "magnitude", None)
        if magnitude is not None:
            found.add(int(magnitude.iterations))
    return tuple(sorted(found))


_children: set = set()  # compilers running now: ended with this process (see _end_children)


@atexit.register
def _end_children() -> None:
    """A compiler outliving the app would take a core from whatever runs next."""
    for child in list(_children):
        child.kill()


def compile_in_child(spec: MelSpec, magnitude_iterations: tuple[int, ...],
                     timeout_s: float = CHILD_TIMEOUT_S) -> str | None:
    """``compile_all`` in a child process (it fills numba's cache); None, or why it failed."""
    cmd = [sys.executable, "-m", "melsynth.engine.stream.warmup", json.dumps(spec.to_dict()),
           *map(str, magnitude_iterations)]
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        return f"cannot start the kernel compiler: {exc}"
    _children.add(child)
    try:
        os.setpriority(os.PRIO_PROCESS, child.pid, CHILD_NICE)
    except (OSError, AttributeError):
        pass
    try:
        _, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return f"the kernel compiler took over {timeout_s:.0f} s"
    finally:
        _children.discard(child)
    if child.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        return f"the kernel compiler failed: {lines[-1] if lines else f'exit status {child.returncode}'}"
    return None


class KernelWarmup:
    """Makes ``synth``'s kernels ready in a daemon thread, then switches it to them.

    ``on_ready(seconds)`` is called in that thread once the synth uses them (seconds since
    ``start``). ``ready`` is set then; ``error`` says why the child failed (the kernels then
    compile in this process, which still works, only competing with the producer for the GIL).
    """

    def __init__(self, synth, on_ready: Callable[[float], None] | None = None, use_child: bool = True):
        self.synth = synth
        self.on_ready = on_ready
        self.use_child = use_child
        self.ready = threading.Event()
        self.started = False
        self.error: str | None = None
        self.seconds: float | None = None
        self.ready_at: float | None = None  # time.monotonic() when the synth switched
        self._thread = threading.Thread(target=self._run, name="melsynth-kernel-warmup", daemon=True)

    def start(self) -> "KernelWarmup":
        self.started = True
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self.ready.wait(timeout)

    def _run(self) -> None:
        spec = self.synth.spec
        iterations = magnitude_iterations_of(self.synth)
        if self.use_child:
            self.error = compile_in_child(spec, iterations)
        # Loading the kernels holds the GIL for stretches the producer's usual lead does not
        # cover (one underrun in three warm starts): a longer lead while it runs.
        lead_ms = self.synth.config.target_ms
        loading_ms = max(lead_ms, LOAD_LEAD_MS)
        self.synth.set_lead_ms(loading_ms)
        try:
            compile_all(spec, iterations)
            kernels.defer(False)
            self.synth.use_kernels()
        finally:
            if self.synth.config.target_ms == loading_ms:  # unless the player chose another meanwhile
                self.synth.set_lead_ms(lead_ms)
        self.ready_at = time.monotonic()
        self.seconds = self.ready_at - self._t0
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready(self.seconds)


def main(argv: list[str]) -> int:
    """The child: ``python -m melsynth.engine.stream.warmup SPEC_JSON [MAGNITUDE_ITERATIONS...]``."""
    spec = MelSpec.from_dict(json.loads(argv[0]))
    compile_all(spec, tuple(int(a) for a in argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
