"""MIDI: decoding (malformed/unknown counted), learn, note recall with glide, a real JACK port."""
from __future__ import annotations

import os
import time
import uuid

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from melsynth.app.midi import (ControlChange, MidiCounters, MidiMap, NoteOff, NoteOn, cc_to_sigma,  # noqa: E402
                               decode_message, jack_server_running)
from melsynth.app.performance import Performance  # noqa: E402
from melsynth.app.presets import LatentPoint  # noqa: E402
from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)


def test_decode_valid_messages():
    c = MidiCounters()
    assert decode_message([0xB3, 74, 100], c) == ControlChange(3, 74, 100)
    assert decode_message([0x90, 60, 90], c) == NoteOn(0, 60, 90)
    assert decode_message([0x9F, 60, 0], c) == NoteOff(15, 60)  # velocity 0 is a note off
    assert decode_message([0x81, 61, 10], c) == NoteOff(1, 61)
    assert c["received"] == 4 and c["malformed"] == 0 and c["ignored"] == 0


@pytest.mark.parametrize("message", [
    [], [0xB0, 74], [0xB0, 74, 100, 3], [0x40, 1, 2], [0xB0, 200, 1], [0x90, 60, -1],
    None, "abc", [0xB0, 7.5, 1], [True, 1, 2], [0xF0, 1, 2],
])
def test_malformed_messages_are_counted_not_raised(message):
    c = MidiCounters()
    assert decode_message(message, c) is None
    assert c["malformed"] == 1 and c["ignored"] == 0


@pytest.mark.parametrize("message", [[0xF8], [0xFE], [0xC0, 5], [0xE0, 0, 64], [0xD0, 3], [0xA0, 60, 3],
                                     [0xF0, 0x7E, 0x01, 0xF7]])
def test_unused_messages_are_ignored_and_counted(message):
    c = MidiCounters()
    assert decode_message(message, c) is None
    assert c["ignored"] == 1 and c["malformed"] == 0


def test_cc_range_maps_to_sigma():
    assert cc_to_sigma(0) == -3.0 and cc_to_sigma(127) == 3.0
    assert abs(cc_to_sigma(64)) < 0.03


def test_learn_binds_next_controller_and_rebinding_moves_it():
    m = MidiMap()
    assert m.handle_cc(ControlChange(0, 10, 127)) is None  # nothing bound, nothing armed
    m.arm("brightness")
    assert m.handle_cc(ControlChange(1, 20, 127)) == ("brightness", 3.0)
    assert m.armed is None
    assert m.handle_cc(ControlChange(1, 20, 0)) == ("brightness", -3.0)
    assert m.handle_cc(ControlChange(0, 20, 0)) is None  # another channel is another controller
    m.arm("brightness")
    m.handle_cc(ControlChange(0, 30, 64))
    assert m.bindings == {(0, 30): "brightness"}
    assert MidiMap.from_json(m.to_json()) == m


def test_note_on_glides_to_stored_point_without_jumps():
    perf = Performance(["loudness", "brightness"], latent_size=8)
    perf.new_point(1)
    perf.glide_seconds = 0.5
    start = perf.base_vector()
    perf.notes[60] = LatentPoint(seed=2, knobs={"loudness": 2.0})
    assert not perf.note_on(61, now=10.0)  # nothing stored there
    assert perf.note_on(60, now=10.0)
    path = []
    for t in np.linspace(10.0, 10.6, 61):
        perf.tick(t)
        path.append((perf.base_vector(t), perf.knobs["loudness"]))
    assert np.allclose(path[0][0], start) and path[0][1] == 0.0
    target = LatentPoint(seed=2).base(8)
    assert np.allclose(path[-1][0], target, atol=1e-6) and path[-1][1] == 2.0
    steps = [np.linalg.norm(b - a) for (a, _), (b, _) in zip(path, path[1:])]
    # smooth: no step takes more than a tenth of the way (a jump would take all of it)
    assert max(steps) < 0.1 * np.linalg.norm(target - start)
    assert perf.glide is None and perf.seed == 2


def test_midi_cc_moves_learned_knob_in_window(window_factory, qtbot):
    """Through the window's handler (no backend needed): learn, then CC moves knob and engine."""
    w = window_factory()
    name = list(w.knob_bank.knobs)[1]
    w.arm_learn(name)
    w.midi.feed([0xB0, 74, 127])
    qtbot.waitUntil(lambda: w.knob_bank.knobs[name].value == 3.0, timeout=2000)
    assert w.synth.controls.knobs[1] == 3.0
    before = w.midi.counters["malformed"]
    w.midi.feed([0xB0, 74])  # malformed: ignored, counted, nothing moves
    w.midi.feed([0xB0, 75, 0])  # unbound controller: nothing moves
    qtbot.wait(50)
    assert w.midi.counters["malformed"] == before + 1
    assert w.synth.controls.knobs[1] == 3.0
    assert "1 malformed" in w.midi_panel.counters.text()


@pytest.mark.jack
def test_cc_through_real_jack_port_moves_learned_knob(window_factory, qtbot):
    if not jack_server_running():
        pytest.skip("no JACK server running (start: jackd --no-realtime -d dummy -r 11025 -p 256 &)")
    import rtmidi

    from melsynth.app.midi import MidiInput

    client = f"melsynth-test-{uuid.uuid4().hex[:6]}"
    midi = MidiInput(apis=["jack"], client_name=client)
    assert midi.available, midi.unavailable_reason
    w = window_factory(midi=midi)
    assert client in w.midi_panel.state.text()
    name = list(w.knob_bank.knobs)[0]
    w.arm_learn(name)
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"{client}-sender")
    try:
        ports = out.get_ports()
        target = [i for i, p in enumerate(ports) if p.startswith(f"{client}:")]
        assert target, f"app port not found among {ports}"
        out.open_port(target[0])
        out.send_message([0xB2, 21, 127])
        qtbot.waitUntil(lambda: w.knob_bank.knobs[name].value == 3.0, timeout=5000)
        assert w.performance.midi_map.bindings == {(2, 21): name}
        assert w.synth.controls.knobs[0] == 3.0
        out.send_message([0xB2, 21, 0])
        qtbot.waitUntil(lambda: w.synth.controls.knobs[0] == -3.0, timeout=5000)
        out.send_message([0xB2, 22, 0])  # another controller: not bound
        out.send_message([0xC0, 5])  # program change: ignored and counted
        qtbot.waitUntil(lambda: w.midi.counters["ignored"] >= 1, timeout=5000)
        assert w.synth.controls.knobs[0] == -3.0
        assert w.knob_bank.knobs[name].binding.text() == "ch3 CC21"
    finally:
        out.close_port()
        del out
        time.sleep(0.05)
