"""The Engine panel's phase quality: each preset with its CPU cost, swapped into the playing synth."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)


def _recording_loader(seen: list):
    from tests.engine_fakes import fake_loader

    fake = fake_loader()

    def load(bundle, vocoder_name, quality=None):
        seen.append(quality)
        return fake(bundle, vocoder_name)

    return load


def test_phase_quality_choices_show_their_cpu_cost(window_factory):
    from melsynth.engine.dsp.quality import QUALITIES

    w = window_factory()
    box = w.status.quality
    assert [box.itemData(i) for i in range(box.count())] == list(QUALITIES)
    assert box.currentData() == "realtime"
    for i in range(box.count()):
        assert "of a core" in box.itemText(i), box.itemText(i)
    assert "12 iterations, look-ahead 8" in box.itemText(box.findData("high"))


def test_choosing_a_phase_quality_swaps_the_playing_synth(window_factory, qtbot):
    seen: list = []
    w = window_factory(loader=_recording_loader(seen))
    assert seen == [None]  # the synth starts at the bundle's own settings
    box = w.status.quality
    box.setCurrentIndex(box.findData("high"))
    box.activated.emit(box.currentIndex())
    qtbot.waitUntil(lambda: "high" in seen, timeout=5000)
    assert w.synth.phase_quality == "high" and "phase quality high" in w.status.message.text()
    # the next swap (another vocoder) keeps the choice
    w.set_vocoder("other")
    qtbot.waitUntil(lambda: len(seen) == 3, timeout=5000)
    assert seen[-1] == "high"
