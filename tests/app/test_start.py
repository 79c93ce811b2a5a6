"""The app's start: heavy modules stay unloaded until needed; "preparing" shows while the engine's
kernels compile, and clears once the sound runs on them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.app.fixtures import window_factory  # noqa: F401  (fixture)
from tests.paths import REPO

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# What a start must not import: each cost the app's first sound a few tenths of a second or more.
HEAVY = ("scipy.signal", "scipy.sparse", "scipy.fft", "scipy.linalg", "librosa")


def test_the_window_and_a_deferred_synth_load_no_heavy_module():
    """In a fresh process: the app's window module, and a synth on the default bundle built the
    way the app builds it (kernels left for later) and stepped once, import none of ``HEAVY``."""
    code = textwrap.dedent(f"""
        import sys
        import melsynth.app.main_window
        import melsynth.app.cli
        from melsynth.engine import Synth, defer_kernels
        defer_kernels()
        synth = Synth()
        synth._produce_one()
        print(",".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_without_deferral_the_same_synth_does_load_them():
    """The check above can fail: the compiled paths' checks do import scipy's FFT."""
    code = textwrap.dedent(f"""
        import sys
        from melsynth.engine import Synth
        Synth()
        print(",".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "scipy.fft" in out.stdout


@pytest.fixture
def kernels_restored():
    from melsynth.engine import kernels

    yield
    kernels.defer(False)


def test_preparing_shows_while_the_kernels_compile_and_clears_after(window_factory, qtbot, kernels_restored):
    from melsynth.app.main_window import MainWindow
    from melsynth.engine.stream.warmup import KernelWarmup
    from tests.engine.stream.test_warmup import classical_loader

    started = []

    def start(self):  # no child process in a unit test: the kernels load in this process
        self.use_child = False
        started.append(self)
        return start_real(self)

    start_real = KernelWarmup.start
    w = window_factory(loader=classical_loader(), autoplay=True, kernels_later=True, start_engine=False)
    assert isinstance(w, MainWindow) and w.synth is None
    KernelWarmup.start = start
    try:
        w.show()
        w.start_engine()
        assert not w.preparing.isHidden() and w.preparing.text().startswith("preparing")
        vocoder = w.synth._pipeline.chain.vocoder
        assert vocoder.phase._kernels is None  # plays on numpy meanwhile
        qtbot.waitUntil(lambda: bool(started) and started[0].ready.is_set(), timeout=120000)
        qtbot.waitUntil(w.preparing.isHidden, timeout=5000)
    finally:
        KernelWarmup.start = start_real
    assert w.synth.playing
    qtbot.waitUntil(lambda: vocoder.magnitude.fast, timeout=5000)  # applied by the producer between steps
