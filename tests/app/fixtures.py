"""Fixtures for the app tests: a main window over a tiny fake-model bundle, offscreen.

The engine's numpy fakes (tests/engine_fakes.py) stand in for the models so the
window tests run in well under a second each; the CLI tests run the real
command on a tiny exported bundle.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture
def window_factory(qtbot, tmp_path, monkeypatch):
    """``window_factory(**kwargs) -> MainWindow`` (fake bundle, no MIDI, not playing unless asked)."""
    from melsynth.app.main_window import MainWindow
    from melsynth.app.midi import MidiInput
    from melsynth.engine.device.output import FakeOutput
    from tests.engine_fakes import fake_loader, make_fake_bundle

    monkeypatch.setenv("MELSYNTH_RECORDINGS", str(tmp_path / "recordings"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    bundle = make_fake_bundle(tmp_path / "fake-bundle")
    windows = []

    def make(**kwargs):
        kwargs.setdefault("bundle", bundle)
        kwargs.setdefault("loader", fake_loader())
        kwargs.setdefault("autoplay", False)
        kwargs.setdefault("output_factory", lambda: FakeOutput(11025, 256, wait_for_data=True,
                                                              capture_samples=11025 * 20))
        if "midi" not in kwargs:
            kwargs["midi"] = MidiInput(apis=[])
        w = MainWindow(**kwargs)
        qtbot.addWidget(w)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()
