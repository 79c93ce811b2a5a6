"""The window over the engine: knobs and paint change what is played; no device / no MIDI still opens.

The synth plays into the engine's ``FakeOutput`` in manual mode: the test ticks the
device clock block by block, so "before" and "after" a gesture are exact sample counts.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from melsynth.engine.stream.controls import latent_point  # noqa: E402
from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)

BLOCK = 256


@pytest.fixture
def playing_window(window_factory, qtbot):
    """A window playing into a manually clocked FakeOutput at the model rate; -> (window, output)."""
    from melsynth.engine.device.output import FakeOutput

    outputs = []

    def make_output():
        outputs.append(FakeOutput(11025, BLOCK, capture_samples=11025 * 12))
        return outputs[-1]

    def start(**kwargs):
        w = window_factory(output_factory=make_output, **kwargs)
        return w, outputs

    return start


def show_active(qtbot, w) -> None:
    """Shown and active: window shortcuts only fire in the active window."""
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)


def tick(qtbot, out, blocks: int) -> None:
    """Advance the device clock by ``blocks`` blocks, each once the producer has it ready."""
    for _ in range(blocks):
        qtbot.waitUntil(lambda: out.ring.fill >= BLOCK, timeout=10000)
        out.tick()


def test_knob_turn_changes_latent_point_and_the_audio_after_it(playing_window, qtbot):
    from melsynth.engine.stream.pipeline import render_offline
    from tests.engine_fakes import fake_loader

    w, outputs = playing_window()
    synth = w.synth
    before = synth.controls
    assert w.play() and synth.playing
    out = outputs[-1]
    tick(qtbot, out, 40)
    heard_before = out.captured

    knob = w.knob_bank.knobs["loudness"]
    knob.dial.setFocus()
    for _ in range(5):  # five PageUp presses on the dial: +5 page steps of 0.1 sigma
        QTest.keyClick(knob.dial, Qt.Key_PageUp)
    assert knob.value == pytest.approx(0.5)
    assert w.knob_bank.knobs["loudness"].readout.text() == "+0.50\u03c3"
    after = synth.controls
    assert after.knobs[0] == pytest.approx(0.5) and after.knobs[1] == 0.0

    d = synth.directions[0]
    z0 = latent_point(before, synth.directions, d.vector.size)
    z1 = latent_point(after, synth.directions, d.vector.size)
    assert np.allclose(z1 - z0, 0.5 * d.sigma * d.vector, atol=1e-5)

    tick(qtbot, out, 60)
    w.stop()
    captured = out.capture[:out.captured]
    # What the device got equals the offline render of the old controls up to the knob turn ...
    old = render_offline(synth.bundle, 0, controls=before, loader=fake_loader(), n_samples=captured.size)
    assert np.allclose(captured[:heard_before], old[:heard_before], atol=1e-5)
    # ... and differs soon after it (within the ring's few blocks plus the knob crossfade).
    late = slice(heard_before + 8 * BLOCK, captured.size)
    assert np.max(np.abs(captured[late] - old[late])) > 1e-3
    assert np.all(np.abs(captured) <= 1.0)


def _send_mouse(widget, kind, pos: QPoint, buttons) -> None:
    button = Qt.LeftButton if kind != QEvent.MouseMove else Qt.NoButton
    ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag_on_canvas(qtbot, view, points) -> None:
    """A real mouse drag over the canvas image through (frame, mel bin) points."""
    viewport = view.graphics.viewport()

    def to_widget(frame, mel_bin):
        scene = view.image.mapToScene(QPointF(frame, mel_bin))
        return view.graphics.mapFromScene(scene)

    pts = [to_widget(f, b) for f, b in points]
    _send_mouse(viewport, QEvent.MouseButtonPress, pts[0], Qt.LeftButton)
    for p in pts[1:]:
        _send_mouse(viewport, QEvent.MouseMove, p, Qt.LeftButton)
        qtbot.wait(5)
    _send_mouse(viewport, QEvent.MouseButtonRelease, pts[-1], Qt.NoButton)


def test_painting_ahead_of_the_playhead_is_heard_on_this_pass(playing_window, qtbot):
    w, outputs = playing_window()
    w.resize(1280, 800)
    w.show()
    qtbot.waitExposed(w)
    w.set_loop_seconds(2.0)
    frames = w.canvas.model.frames
    w.set_source("canvas")
    blank = w.canvas.model.data.copy()
    assert w.play()
    out = outputs[-1]
    tick(qtbot, out, 20)
    assert w.synth.canvas_playhead < 40

    w.canvas.size.setValue(6)
    w.canvas.intensity.setValue(80)
    drag_on_canvas(qtbot, w.canvas, [(50, 110), (56, 112), (62, 114), (68, 116)])
    painted = w.canvas.model.data
    changed = np.argwhere(painted != blank)
    assert changed.size, "the drag painted nothing"
    f0, f1 = changed[:, 1].min(), changed[:, 1].max() + 1
    b0, b1 = changed[:, 0].min(), changed[:, 0].max() + 1
    assert 40 <= f0 and f1 <= 80 and 95 <= b0 and b1 <= 130
    assert painted.max() > blank.max() + 3  # up from silence by thousands of times in magnitude
    for done in range(1, 9):  # the producer applies queued edits at its next steps
        tick(qtbot, out, 1)
        if np.array_equal(w.synth.canvas(), painted):
            break
    np.testing.assert_array_equal(w.synth.canvas(), painted)  # the engine got exactly the edit
    assert w.synth.canvas_playhead < f0  # ... ahead of the playhead

    tick(qtbot, out, frames + 10 - 20 - done)  # the rest of this pass
    w.stop()
    # The mel the engine played (its tap) has the paint at the canvas frames it was painted at.
    _, played = w.synth.tap.frames_since(0)
    first_pass = played[:, :frames]
    np.testing.assert_allclose(first_pass[:, f0:f1], painted[:, f0:f1], atol=1e-5)
    # ... and the audio is loud there and silent elsewhere.
    audio = out.capture[:out.captured]
    hop = w.spec.hop_length
    rms_painted = np.sqrt(np.mean(audio[(f0 + 2) * hop:(f1 - 2) * hop] ** 2))
    rms_silent = np.sqrt(np.mean(audio[10 * hop:(f0 - 4) * hop] ** 2))
    assert rms_painted > 100 * max(rms_silent, 1e-9)


def test_canvas_tools_smooth_erase_clear_and_load(window_factory, tmp_path):
    import soundfile as sf

    w = window_factory()
    m = w.canvas.model
    region = m.dab(30, 128, 8, 1.0, "paint")
    peak = m.data.max()
    assert m.data[128, 30] == pytest.approx(peak, abs=0.5) and peak > m.silence + 4
    before = m.data.copy()
    m.dab(30, 128, 8, 1.0, "smooth")
    assert m.data[128, 30] < before[128, 30]
    m.dab(30, 128, 8, 1.0, "erase")
    m.dab(30, 128, 8, 1.0, "erase")
    assert m.data[128, 30] < before[128, 30] - 2
    w.canvas.clear_button.click()
    np.testing.assert_array_equal(w.synth.canvas(), np.full_like(m.data, m.silence))
    assert region is not None
    # load a real audio file's mel into the canvas (a 440 Hz tone at 22050 Hz: resampled)
    t = np.arange(22050 * 2) / 22050
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 22050)
    w.load_audio_into_canvas(tmp_path / "tone.wav")
    loud_bin = int(np.argmax(m.data[:, 20]))
    assert m.data[loud_bin, 20] > m.silence + 5
    np.testing.assert_allclose(w.synth.canvas(), m.data, atol=1e-6)
    w.load_audio_into_canvas(tmp_path / "missing.wav")
    assert "missing.wav" in w.message.text()


def test_opens_without_audio_device_and_a_device_chosen_later_starts_sound(window_factory, qtbot):
    from melsynth.engine.device.output import FakeOutput

    w = window_factory(device="no-such-device-xyz", output_factory=None, autoplay=True)
    assert not w.synth.playing
    assert w.audio_error and "no-such-device-xyz" in w.audio_error or "no audio" in w.audio_error
    assert "no sound" in w.message.text()
    assert not w.transport.play.isChecked()
    w.knob_bank.knobs["loudness"].set_value(1.0, emit=True)  # the rest works
    assert w.synth.controls.knobs[0] == 1.0
    # the player picks a device (here the fake one) and sound starts
    w.output_factory = lambda: FakeOutput(11025, BLOCK, wait_for_data=True)
    w.choose_device(None, BLOCK)
    assert w.synth.playing and w.transport.play.isChecked()
    qtbot.waitUntil(lambda: w.first_sound_s is not None, timeout=5000)
    w.stop()


def test_opens_without_midi_backend_and_says_why(window_factory, monkeypatch):
    from melsynth.app.midi import MidiInput

    monkeypatch.setenv("JACK_DEFAULT_SERVER", "melsynth-no-such-server")
    midi = MidiInput(apis=["jack"])
    assert not midi.available
    w = window_factory(midi=midi)
    assert "no MIDI backend" in w.midi_panel.state.text() and "jack" in w.midi_panel.state.text()
    assert not w.midi_panel.port.isEnabled()
    w.arm_learn("loudness")  # harmless without MIDI
    assert "MIDI learn armed" in w.message.text()


def test_opens_without_bundle_and_says_why(window_factory, tmp_path):
    w = window_factory(bundle=tmp_path / "no-bundle-here")
    assert w.synth is None and "no model bundle" in w.message.text()
    assert not w.knob_bank.knobs
    assert not w.play()


def test_record_shortcut_records_what_is_heard(playing_window, qtbot, tmp_path):
    import soundfile as sf

    w, outputs = playing_window()
    show_active(qtbot, w)
    w.knob_bank.knobs["loudness"].set_value(2.0, emit=True)
    QTest.keyClick(w, Qt.Key_Space)  # play
    assert w.synth.playing
    out = outputs[-1]
    tick(qtbot, out, 4)
    QTest.keyClick(w, Qt.Key_R)
    assert w.recorder is not None
    path = w.recorder.path
    start = out.captured
    tick(qtbot, out, 80)
    QTest.keyClick(w, Qt.Key_R)
    assert w.recorder is None
    QTest.keyClick(w, Qt.Key_Space)  # stop
    assert not w.synth.playing
    audio, rate = sf.read(path, dtype="float32")
    assert rate == 11025 and audio.shape[0] >= 70 * BLOCK
    assert np.sqrt(np.mean(audio ** 2)) > 1e-3
    # the file is what the device played (16-bit), from a chunk boundary near the start
    heard = out.capture[:out.captured]
    offset = next(o for o in range(max(0, start - 8 * BLOCK), start + 8 * BLOCK)
                  if np.max(np.abs(heard[o:o + 4096] - audio[:4096])) < 1e-3)
    n = min(audio.shape[0], heard.shape[0] - offset)
    assert np.max(np.abs(heard[offset:offset + n] - audio[:n])) < 1e-3


def test_ctrl_s_saves_a_preset(window_factory, qtbot, tmp_path):
    w = window_factory()
    show_active(qtbot, w)
    w.choose_seed(77)
    QTest.keyClick(w, Qt.Key_S, Qt.ControlModifier)
    assert w.preset_path is not None and w.preset_path.is_file()
    from melsynth.app.presets import load_preset

    assert load_preset(w.preset_path).point.seed == 77


def test_installed_pyside_does_not_leak_references_on_signal_emit(qapp):
    """PySide6 6.12.0 drops a reference to True on every emit and the app aborts after minutes."""
    from melsynth.app.main_window import signal_emit_leaks_bool_refs

    assert not signal_emit_leaks_bool_refs(2000)


def test_points_morph_and_note_recall_drive_the_engine(window_factory, qtbot):
    from melsynth.engine.stream.controls import base_point
    from tests.engine_fakes import FakePrior

    w = window_factory()
    size = FakePrior(w.spec).latent_size
    w.choose_seed(5)
    w.knob_bank.knobs["loudness"].set_value(1.0, emit=True)
    w.store_point("A")
    assert not w.latent_panel.morph.isEnabled()  # needs both points
    w.choose_seed(6)
    w.knob_bank.knobs["loudness"].set_value(-1.0, emit=True)
    w.store_point("B")
    assert w.latent_panel.morph.isEnabled()
    w.latent_panel.morph.setValue(250)  # the player drags the A/B slider to 25 %
    c = w.synth.controls
    assert (c.seed, c.seed_b, c.morph) == (5, 6, 0.25)
    assert c.knobs[0] == pytest.approx(0.5)  # knobs morph too, shown on the dials
    assert w.knob_bank.knobs["loudness"].value == pytest.approx(0.5)

    w.store_note(64)  # the morphed point, stored as an explicit vector
    stored = base_point(c, size)
    w.new_point()
    assert w.synth.controls.morph == 0.0 and w.synth.controls.point_b is None
    w.performance.glide_seconds = 0.2
    w.midi.feed([0x90, 64, 100])  # note on: glide back to the stored point
    qtbot.waitUntil(lambda: w.performance.glide is None, timeout=3000)
    final = w.synth.controls
    assert np.allclose(base_point(final, size), stored, atol=1e-5)
    assert final.knobs[0] == pytest.approx(0.5)
    w.midi.feed([0x90, 65, 100])  # no point on that note: nothing happens
    assert w.synth.controls == final


def test_grab_live_and_hot_swap_bundle(playing_window, qtbot, tmp_path):
    from tests.engine_fakes import make_fake_bundle

    w, outputs = playing_window()
    assert not w.grab_live_into_canvas()  # nothing played yet
    w.knob_bank.knobs["loudness"].set_value(2.0, emit=True)
    assert w.play()
    out = outputs[-1]
    tick(qtbot, out, 60)
    assert w.grab_live_into_canvas()
    # the synth plays on while we look: the tap may have moved a few frames past the grab
    grabbed, live = w.canvas.model.data[:, -50:], w.synth.tap.latest(w.canvas.model.frames + 8)
    assert any(np.array_equal(grabbed, live[:, live.shape[1] - 50 - k:live.shape[1] - k]) for k in range(9))
    assert w.canvas.model.data.max() > w.canvas.model.silence + 1

    other = make_fake_bundle(tmp_path / "other-bundle", name="other-bundle")
    w.swap_bundle(str(other))
    for _ in range(200):  # keep the device clock going while the new chain loads and crossfades
        tick(qtbot, out, 1)
        w._status_tick()
        if w.synth.bundle.name == "other-bundle" and not w.synth.status().swapping:
            break
    w._status_tick()
    assert w.synth.playing and w.synth.bundle.name == "other-bundle"
    assert w.status.model.text().startswith("other-bundle")
    assert w.synth.controls.knobs[0] == 2.0  # knob values survive a swap with the same directions
    w.stop()


def test_knob_labels_and_double_click_reset(window_factory, qtbot):
    from melsynth.app.widgets.knobs import knob_specs
    from melsynth.engine.runtime.bundle import Direction

    v = np.zeros(4, dtype=np.float32)
    dirs = [Direction("pc_a", "pca", v, 1.0), Direction("brightness", "named", v, 1.0),
            Direction("pc_b", "pca", v, 1.0)]
    assert [s.label for s in knob_specs(dirs)] == ["PC 1", "Brightness", "PC 2"]

    w = window_factory()
    show_active(qtbot, w)
    knob = w.knob_bank.knobs["brightness"]
    knob.set_value(-2.0, emit=True)
    assert w.synth.controls.knobs[1] == -2.0
    qtbot.mouseDClick(knob.dial, Qt.LeftButton)
    assert knob.value == 0.0 and w.synth.controls.knobs[1] == 0.0
    assert knob.readout.text() == "+0.00\u03c3"


def test_the_live_spectrogram_shows_what_plays_not_what_is_coming(playing_window, qtbot):
    """The newest frames are still in the vocoder's look-ahead and the queue: the view holds
    them back, by the synth's heard lag."""
    w, outputs = playing_window()
    assert w.play() and w.synth.playing
    out = outputs[-1]
    tick(qtbot, out, 40)
    qtbot.wait(300)  # the producer has refilled the queue and waits for the device
    w._ui_tick()
    lag = w.synth.heard_lag_frames()
    assert lag >= 2
    assert w.spectrogram.frames_seen == w.synth.tap.count - lag


def test_the_window_hands_its_engine_settings_to_the_synth(window_factory):
    """``melsynth app --lead-ms``: the window's synth runs with the config it was given."""
    from melsynth.engine.stream.config import SynthConfig

    w = window_factory(synth_config=SynthConfig(target_ms=25.0))
    assert w.synth.config.target_ms == 25.0
    assert window_factory().synth.config.target_ms == SynthConfig().target_ms


def test_the_engine_panel_sets_the_lead_while_playing(window_factory, qtbot):
    """Engine panel "lead": a chosen lead reaches the playing synth and its status."""
    w = window_factory(autoplay=True)
    assert w.status.lead.currentText() == "auto" and w.synth.config.target_ms == 0.0
    i = w.status.lead.findData(20.0)
    w.status.lead.setCurrentIndex(i)
    w.status.lead.activated.emit(i)
    assert w.synth.config.target_ms == 20.0 and w.synth.status().lead_ms >= 20.0
    w.set_lead_ms(-1.0)  # refused, with a message; the lead stays
    assert w.synth.config.target_ms == 20.0 and "lead not changed" in w.status.message.text()
    assert w.synth_config.target_ms == 20.0  # kept for a bundle loaded later


def test_a_lead_from_the_command_line_shows_in_the_panel(window_factory):
    from melsynth.engine.stream.config import SynthConfig

    w = window_factory(synth_config=SynthConfig(target_ms=15.0))
    assert w.status.lead.currentData() == 15.0 and "15 ms" in w.status.lead.currentText()
