"""The Rec button over the recorder: every failure shows in the window and the button goes back to idle."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)


def mean_colour(widget) -> np.ndarray:
    """Mean RGB of the widget as drawn."""
    image = widget.grab().toImage()
    pixels = [image.pixelColor(x, y) for x in range(0, image.width(), 2) for y in range(0, image.height(), 2)]
    return np.mean([(c.red(), c.green(), c.blue()) for c in pixels], axis=0)


def test_a_recordings_folder_that_cannot_be_created_shows_and_rec_returns_to_idle(window_factory, tmp_path,
                                                                                monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("MELSYNTH_RECORDINGS", str(blocker / "takes"))
    w = window_factory()
    w.transport.record.click()
    assert w.recorder is None
    assert not w.transport.record.isChecked()
    assert "cannot record" in w.message.text() and "not-a-folder" in w.message.text()
    w.stop()


def test_a_disk_error_during_a_take_shows_and_rec_returns_to_idle(window_factory, qtbot):
    w = window_factory()
    w.transport.record.click()
    rec = w.recorder
    assert rec is not None and w.transport.record.isChecked()

    def full(_block):
        raise OSError(28, "No space left on device")

    rec._file.write = full
    qtbot.waitUntil(lambda: rec.error is not None, timeout=5000)
    w._status_tick()
    assert w.recorder is None and not w.transport.record.isChecked()
    assert "No space left" in w.message.text() and rec.path.name in w.message.text()
    w.stop()


def test_the_rec_button_is_red_while_recording(window_factory):
    w = window_factory()
    w.show()
    idle = mean_colour(w.transport.record)
    w.transport.record.click()
    assert w.recorder is not None
    r, g, b = mean_colour(w.transport.record)
    assert r > 120 and r > 2 * g and r > 2 * b, (r, g, b)
    assert not (idle[0] > 2 * idle[1])  # idle is not red
    w.transport.record.click()
    assert w.recorder is None
    assert np.allclose(mean_colour(w.transport.record), idle, atol=3)
