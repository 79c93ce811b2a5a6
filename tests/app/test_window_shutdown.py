"""Closing the window frees the engine's native objects then, not at interpreter exit."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import weakref

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)
from tests.paths import REPO  # noqa: E402

PLAY_AND_CLOSE = textwrap.dedent("""
    import os, sys, tempfile, time
    from pathlib import Path
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from melsynth.app.main_window import MainWindow
    from melsynth.app.midi import MidiInput
    from melsynth.engine.device.output import FakeOutput
    from tests.engine_fakes import fake_loader, make_fake_bundle
    bundle = make_fake_bundle(Path(tempfile.mkdtemp()) / "fake-bundle")
    # a device rate other than the model's: the synth resamples through soxr
    w = MainWindow(bundle=bundle, loader=fake_loader(), midi=MidiInput(apis=[]),
                   output_factory=lambda: FakeOutput(48000, 256, wait_for_data=True))
    deadline = time.monotonic() + 10
    while w.first_sound_s is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert w.first_sound_s is not None, "no sound"
    kept = w.synth  # held past the close, as the window's kernel warm-up holds it
    w.close()
    print("closed", flush=True)
""")


def test_playing_resampled_then_closing_leaves_no_native_leaks_at_exit(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               MELSYNTH_RECORDINGS=str(tmp_path / "rec"))
    r = subprocess.run([sys.executable, "-c", PLAY_AND_CLOSE], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "closed" in r.stdout, r.stderr
    assert "leaked" not in r.stderr, r.stderr


def test_closing_the_window_releases_the_synth(window_factory, qtbot):
    w = window_factory()
    assert w.play()
    qtbot.waitUntil(lambda: w.first_sound_s is not None, timeout=10000)
    synth = weakref.ref(w.synth)
    w.close()
    assert w.synth is None and synth() is None
