"""Presets: JSON round trip (file and window), atomic writes, clear errors, factory presets load."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from melsynth.app.midi import MidiMap  # noqa: E402
from melsynth.app.performance import Performance  # noqa: E402
from melsynth.app.presets import (LatentPoint, Preset, PresetError, factory_presets, load_preset,  # noqa: E402
                                  save_preset)
from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)


def full_preset() -> Preset:
    return Preset(
        name="Everything", point=LatentPoint(seed=None, vector=(0.5, -1.25, 2.0), knobs={"loudness": 0.75}),
        point_a=LatentPoint(seed=3, knobs={"brightness": -1.0}), point_b=LatentPoint(seed=4),
        note_points={60: LatentPoint(seed=9, knobs={"loudness": 1.5}), 72: LatentPoint(vector=(1.0, 2.0, 3.0))},
        morph=0.25, walk_speed=0.1, walk_spread=1.5, glide_seconds=0.8, source="canvas", file="x.flac",
        loop_seconds=6.5, midi_map=MidiMap({(0, 74): "brightness", (9, 1): "loudness"}))


def test_preset_file_round_trip(tmp_path):
    preset = full_preset()
    path = save_preset(tmp_path / "sub" / "p.json", preset)
    assert load_preset(path) == preset
    # nothing but the file itself is left behind by the atomic write
    assert [p.name for p in path.parent.iterdir()] == ["p.json"]


def test_atomic_save_keeps_old_file_when_write_fails(tmp_path, monkeypatch):
    path = save_preset(tmp_path / "p.json", Preset(name="Old"))
    bad = full_preset().with_(name="New")

    def fail(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)  # the new text is written, then the sync fails
    with pytest.raises(OSError, match="disk full"):
        save_preset(path, bad)
    monkeypatch.undo()
    assert load_preset(path).name == "Old"
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.update(melsynth_preset=2), "melsynth_preset"),
    (lambda d: d.update(source="radio"), "source"),
    (lambda d: d["walk"].update(speed=float("nan")), "walk.speed"),
    (lambda d: d["point"].update(knobs={"loudness": "loud"}), "point.knobs.loudness"),
    (lambda d: d["points"]["notes"].update({"200": {"seed": 1}}), "points.notes.200"),
    (lambda d: d["midi_map"].append({"channel": 16, "controller": 1, "knob": "x"}), "midi_map"),
    (lambda d: d["points"].update(A={"knobs": {}}), "points.A"),
])
def test_bad_preset_names_file_and_field(tmp_path, mutate, field):
    data = full_preset().to_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PresetError) as err:
        load_preset(path)
    assert str(path) in str(err.value) and field in str(err.value)


def test_invalid_json_and_missing_file(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(PresetError, match="invalid JSON"):
        load_preset(tmp_path / "x.json")
    with pytest.raises(PresetError, match="does not exist"):
        load_preset(tmp_path / "nope.json")


def test_factory_presets_load_and_apply():
    paths = factory_presets()
    assert len(paths) >= 3
    perf = Performance(["loudness", "brightness"], latent_size=8)
    for path in paths:
        preset = load_preset(path)
        perf.apply_preset(preset)
        z = perf.controls().knobs
        assert len(z) == 2 and all(np.isfinite(z))


def test_performance_preset_round_trip_keeps_unknown_knobs():
    perf = Performance(["loudness", "brightness"], latent_size=8)
    missing = perf.apply_preset(full_preset())
    assert missing == []
    assert perf.knobs == {"loudness": 0.75, "brightness": 0.0}
    other = Performance(["loudness"], latent_size=8)
    assert other.apply_preset(Preset(point=LatentPoint(seed=1, knobs={"loudness": 1.0, "register": -2.0}))) \
        == ["register"]
    # a bundle without "register" still saves it back
    assert other.to_preset().point.knobs == {"loudness": 1.0, "register": -2.0}


def test_window_preset_round_trip(window_factory, tmp_path):
    """Set knobs, points, walk, source, loop and a MIDI binding; save; change all; load: all back."""
    w = window_factory()
    names = list(w.knob_bank.knobs)
    w.knob_bank.knobs[names[0]].set_value(1.25, emit=True)
    w.choose_seed(1234)
    w.store_point("A")
    w.knob_bank.knobs[names[1]].set_value(-0.5, emit=True)
    w.store_point("B")
    w.store_note(62)
    w.latent_panel.walk_speed.setValue(30)
    w.latent_panel.walk_spread.setValue(150)
    w.transport.loop.setValue(3.0)
    w.set_source("canvas")
    w.performance.midi_map.bind((2, 21), names[1])
    path = w.save_preset(tmp_path / "mine.json")
    saved_controls = w.performance.controls()

    w.choose_seed(99)
    w.knob_bank.knobs[names[0]].reset()
    w.latent_panel.walk_speed.setValue(0)
    w.transport.loop.setValue(5.0)
    w.set_source("latent")
    w.performance.midi_map.bindings.clear()
    assert w.performance.controls() != saved_controls

    assert w.load_preset_file(path)
    assert w.performance.controls() == saved_controls
    assert w.synth.controls == saved_controls
    assert w.knob_bank.values() == pytest.approx({names[0]: 1.25, names[1]: -0.5})
    assert w.performance.midi_map.bindings == {(2, 21): names[1]}
    assert set(w.performance.notes) == {62}
    assert w.performance.point_a.seed == 1234 and w.performance.point_b.knobs[names[1]] == -0.5
    assert w.transport.loop.value() == 3.0 and w.canvas.model.frames == round(3.0 * w.spec.frame_rate)
    assert w.synth.canvas().shape[1] == w.canvas.model.frames
    assert w.transport.source.currentData() == "canvas"
