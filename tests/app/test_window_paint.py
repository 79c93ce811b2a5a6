"""Painting is heard: a brush stroke makes the canvas the source; the canvas says when it is not heard."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)
from tests.app.test_window import drag_on_canvas  # noqa: E402


def banner_shown(w) -> bool:
    return w.canvas.not_heard.isVisibleTo(w)


def test_a_stroke_switches_the_source_to_paint_and_says_so(window_factory, qtbot):
    w = window_factory()
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    assert w.performance.source == "latent" and w.synth.controls.source == "latent"
    assert banner_shown(w) and "Latent" in w.canvas.not_heard_label.text()
    w.set_loop_seconds(2.0)
    w.canvas.intensity.setValue(80)
    qtbot.wait(100)  # the plot lays out its new range before the drag maps points onto it
    blank = w.canvas.model.data.copy()

    drag_on_canvas(qtbot, w.canvas, [(50, 110), (56, 112), (62, 114)])
    assert not np.array_equal(w.canvas.model.data, blank)
    assert w.performance.source == "canvas" and w.synth.controls.source == "canvas"
    assert w.transport.source.currentData() == "canvas"
    assert not banner_shown(w)
    assert "Paint" in w.message.text()


def test_the_banner_switches_with_one_click_and_follows_the_source(window_factory, qtbot):
    w = window_factory()
    w.show()
    qtbot.waitExposed(w)
    w.canvas.hear_button.click()
    assert w.performance.source == "canvas" and w.synth.controls.source == "canvas"
    assert not banner_shown(w)
    w.transport.source.setCurrentIndex(w.transport.source.findData("latent"))
    assert w.performance.source == "latent" and banner_shown(w)


def test_load_grab_and_blur_fill_the_canvas_without_changing_the_source(window_factory, qtbot, tmp_path):
    import soundfile as sf

    w = window_factory()
    t = np.arange(11025 * 2) / 11025
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 11025)
    w.load_audio_into_canvas(tmp_path / "tone.wav")
    m = w.canvas.model
    assert m.data.max() > m.silence + 5
    np.testing.assert_allclose(w.synth.canvas(), m.data, atol=1e-6)
    before = m.data.copy()
    w.canvas.smooth_button.click()
    assert not np.array_equal(m.data, before)
    np.testing.assert_allclose(w.synth.canvas(), m.data, atol=1e-6)
    assert w.performance.source == "latent" and banner_shown(w)

    w.knob_bank.knobs["loudness"].set_value(2.0, emit=True)
    assert w.play()
    qtbot.waitUntil(lambda: w.synth.tap.count > 40, timeout=10000)
    assert w.grab_live_into_canvas()
    assert m.data.max() > m.silence + 1
    assert w.performance.source == "latent" and banner_shown(w)
    w.stop()
