"""The window's smaller promises: a dBFS scale on the meter, messages that keep the panels in place,
a MIDI port box that shows its port, a bundle box that names the bundle playing."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionComboBox  # noqa: E402

from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)
from tests.app.test_midi_ports import fake_midi  # noqa: E402,F401  (fixture)


def settle(w) -> None:
    for _ in range(10):
        QApplication.processEvents()


def test_the_level_meter_has_a_dbfs_scale(qapp):
    from melsynth.app.widgets.spectrogram import LevelMeter

    meter = LevelMeter()
    meter.resize(meter.width(), 300)
    ticks = meter.scale_ticks()
    dbs, ys = [d for d, _ in ticks], [y for _, y in ticks]
    assert dbs[0] == 0 and dbs[-1] == meter.FLOOR_DB and ys == sorted(ys) and len(set(ys)) == len(ys)
    fm = meter.fontMetrics()
    assert all(fm.horizontalAdvance(str(d)) <= meter.scale_width - 3 for d in dbs)  # no label clipped
    image = meter.grab().toImage()
    column = range(0, meter.scale_width - 3)
    for db, y in ticks:  # light text left of the bar at each mark
        rows = range(max(y - 3, 0), min(y + 4, image.height()))
        assert max(image.pixelColor(x, r).lightness() for x in column for r in rows) > 100, db
    between = (ys[3] + ys[4]) // 2  # and dark between the marks
    assert max(image.pixelColor(x, between).lightness() for x in column) < 60


def test_a_long_engine_message_keeps_the_midi_panel_in_place(window_factory):
    w = window_factory()
    w.resize(1280, 800)
    w.show()
    settle(w)
    top, width = w.midi_panel.geometry().top(), w.width()
    message = "cannot switch model: " + " ".join(f"reason{i}" for i in range(400))
    w.show_message(message)
    settle(w)
    assert w.midi_panel.geometry().top() == top and w.width() == width
    shown = w.status.message.shown_text()
    assert len(shown.splitlines()) <= w.status.message.lines and shown.endswith("\u2026")
    assert w.status.message.toolTip() == message and w.status.message.text() == message
    assert w.message.toolTip() == message and len(w.message.shown_text().splitlines()) == 1
    w.show_message("short")
    settle(w)
    assert w.status.message.shown_text() == "short" and w.midi_panel.geometry().top() == top


def test_the_midi_port_box_shows_its_port_unclipped(fake_midi, window_factory):
    midi, _ = fake_midi
    w = window_factory(midi=midi)
    w.resize(1280, 800)
    w.show()
    settle(w)
    box = w.midi_panel.port
    for i in range(box.count()):
        box.setCurrentIndex(i)
        opt = QStyleOptionComboBox()
        box.initStyleOption(opt)
        field = box.style().subControlRect(QStyle.CC_ComboBox, opt, QStyle.SC_ComboBoxEditField, box)
        assert box.fontMetrics().horizontalAdvance(box.currentText()) <= field.width(), box.currentText()
    assert "others connect here" in box.itemData(0, 3)  # Qt.ToolTipRole: the whole story


def test_after_a_failed_bundle_switch_the_box_names_the_bundle_playing(window_factory, qtbot, tmp_path):
    w = window_factory()
    playing = str(w.synth.bundle.root)
    assert w.status.bundle.currentData() == playing
    broken = tmp_path / "broken-bundle"
    broken.mkdir()
    (broken / "bundle.json").write_text("{not json")
    box = w.status.bundle
    box.addItem(broken.name, str(broken))
    box.setCurrentIndex(box.count() - 1)
    box.activated.emit(box.count() - 1)  # the player picks it
    qtbot.waitUntil(lambda: not w.synth.status().swapping, timeout=10000)
    w._status_tick()
    assert "broken-bundle" in w.message.text() or "cannot" in w.message.text()
    assert str(w.synth.bundle.root) == playing and box.currentData() == playing
    assert box.currentText() == w.synth.bundle.root.name


def test_without_a_bundle_the_box_names_none(window_factory, tmp_path):
    w = window_factory(bundle=tmp_path / "no-bundle-here")
    assert w.synth is None and w.status.bundle.currentIndex() == -1
    assert w.status.bundle.currentText() == "" and w.status.bundle.placeholderText() == "none"
