"""MIDI ports: choosing a port never loses melsynth's virtual port; an unknown --midi-port is refused."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from melsynth.app.midi import MidiInput, MidiPortError, jack_server_running  # noqa: E402
from tests.app.fixtures import window_factory  # noqa: E402,F401  (fixture)
from tests.paths import REPO  # noqa: E402

needs_jack = pytest.mark.skipif(not jack_server_running(),
                                reason="no JACK server running (start: jackd --no-realtime -d dummy -r 11025 -p 256 &)")


class FakeMidiIn:
    """rtmidi.MidiIn's surface as MidiInput uses it; python-rtmidi's rule included: a virtual port,
    once closed, cannot be opened again on the same MidiIn."""

    ports = ["keys:out", "pads:out 1"]

    def __init__(self, api=None, name=""):
        self.name, self.open, self.virtual_closed, self.callback = name, None, False, None

    def ignore_types(self, **_kw):
        pass

    def open_virtual_port(self, name):
        if self.virtual_closed:
            import rtmidi

            raise rtmidi.SystemError("cannot reopen a closed virtual port")
        self.open = ("virtual", name)

    def open_port(self, index, name=""):
        self.open = ("port", self.ports[index])

    def close_port(self):
        if self.open and self.open[0] == "virtual":
            self.virtual_closed = True
        self.open = None

    def get_ports(self):
        return list(self.ports) + ["melsynth:midi in"]

    def set_callback(self, fn):
        self.callback = fn

    def cancel_callback(self):
        self.callback = None

    def delete(self):
        self.open = None


@pytest.fixture
def fake_midi(monkeypatch, qapp):
    """A MidiInput over FakeMidiIn clients (no MIDI backend needed); -> (midi, clients made)."""
    import rtmidi

    made = []

    def make(*args, **kw):
        made.append(FakeMidiIn(*args, **kw))
        return made[-1]

    monkeypatch.setattr(rtmidi, "MidiIn", make)
    monkeypatch.setattr("melsynth.app.midi.jack_server_running", lambda: True)
    midi = MidiInput(apis=["jack"] if rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api() else ["alsa"])
    assert midi.available, midi.unavailable_reason
    yield midi, made
    midi.close()


def test_choosing_a_port_and_back_keeps_the_virtual_port_open(fake_midi):
    midi, made = fake_midi
    virtual = made[0]
    assert virtual.open == ("virtual", "midi in")
    assert midi.ports() == ["keys:out", "pads:out 1"]  # not its own port
    assert midi.choose_port("pads") == "MIDI in: pads:out 1 (and melsynth:midi in)"
    assert virtual.open == ("virtual", "midi in") and virtual.callback is not None
    assert made[-1].open == ("port", "pads:out 1") and made[-1].callback is not None
    assert midi.choose_port("keys:out").startswith("MIDI in: keys:out")
    assert made[-2].open is None  # the previous connection is closed
    assert midi.choose_port(None) == f"MIDI in: {midi.virtual_label}"
    assert made[-1].open is None and virtual.open == ("virtual", "midi in")
    assert "virtual input melsynth:midi in open" in midi.describe() and "connected" not in midi.describe()


def test_an_unknown_port_names_the_ports_and_changes_nothing(fake_midi):
    midi, made = fake_midi
    midi.choose_port("keys")
    with pytest.raises(MidiPortError, match="'drums'.*available: keys:out, pads:out 1"):
        midi.find_port("drums")
    text = midi.choose_port("drums")
    assert "no MIDI output port matches 'drums'" in text and "keys:out" in text
    assert midi.port_label == "keys:out" and made[-1].open == ("port", "keys:out")
    assert "connected from keys:out" in midi.describe()


def test_the_window_port_box_follows_the_choice(fake_midi, window_factory):
    midi, made = fake_midi
    w = window_factory(midi=midi)
    box = w.midi_panel.port
    assert [box.itemText(i) for i in range(box.count())][1:] == ["keys:out", "pads:out 1"]
    box.setCurrentIndex(2)
    box.activated.emit(2)
    assert box.currentText() == "pads:out 1" and "pads:out 1" in w.message.text()
    box.setCurrentIndex(0)
    box.activated.emit(0)
    assert box.currentText() == midi.virtual_name and "cannot" not in w.message.text()
    assert made[0].open == ("virtual", "midi in")


def test_without_a_midi_backend_the_window_says_why_and_runs(window_factory, monkeypatch):
    if os.path.exists("/dev/snd/seq"):
        pytest.skip("this machine has an ALSA sequencer")
    midi = MidiInput(apis=["alsa"])
    assert not midi.available and "alsa" in midi.unavailable_reason
    w = window_factory(midi=midi)
    assert "alsa" in w.midi_panel.state.text()
    w.choose_midi_port("keys")  # harmless
    assert "no MIDI backend" in w.message.text()
    assert w.play()
    w.stop()


@pytest.mark.jack
@needs_jack
def test_ports_through_real_jack_keep_the_virtual_port(window_factory, qtbot):
    import rtmidi

    client = f"melsynth-test-{uuid.uuid4().hex[:6]}"
    midi = MidiInput(apis=["jack"], client_name=client)
    w = window_factory(midi=midi)
    name = list(w.knob_bank.knobs)[0]
    keys = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"{client}-keys")
    other = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=f"{client}-other")
    try:
        keys.open_virtual_port("out")
        qtbot.waitUntil(lambda: f"{client}-keys:out" in midi.ports(), timeout=5000)

        def virtual_listed() -> bool:
            return f"{client}:midi in" in other.get_ports()

        w.choose_midi_port(f"{client}-keys:out")
        assert midi.port_label == f"{client}-keys:out" and virtual_listed()
        w.arm_learn(name)
        keys.send_message([0xB0, 21, 127])  # through the connection
        qtbot.waitUntil(lambda: w.knob_bank.knobs[name].value == 3.0, timeout=5000)

        w.choose_midi_port(None)  # back to the virtual port alone: it is still there and receives
        assert "cannot" not in w.message.text() and virtual_listed()
        other.open_port(other.get_ports().index(f"{client}:midi in"))
        other.send_message([0xB0, 21, 0])
        qtbot.waitUntil(lambda: w.knob_bank.knobs[name].value == -3.0, timeout=5000)
        keys.send_message([0xB0, 21, 127])  # the connection is closed: nothing arrives from it
        qtbot.wait(200)
        assert w.knob_bank.knobs[name].value == -3.0
    finally:
        for port in (keys, other):
            port.close_port()
        del keys, other
        time.sleep(0.05)


@pytest.mark.jack
@needs_jack
def test_app_refuses_an_unknown_midi_port_listing_the_ports(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               JACK_NO_START_SERVER="1", MELSYNTH_MIDI_APIS="jack")
    r = subprocess.run([sys.executable, "-m", "melsynth.cli", "app", "--midi-port", "no-such-port-xyz",
                        "--no-play", "--quit-after", "1"], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if "leaked" not in ln and "nanobind" not in ln and ln.strip()]
    assert len(lines) == 1 and "no-such-port-xyz" in lines[0] and "available:" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_app_without_a_midi_backend_says_so_and_runs(tmp_path):
    if os.path.exists("/dev/snd/seq"):
        pytest.skip("this machine has an ALSA sequencer")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"),
               JACK_NO_START_SERVER="1", MELSYNTH_MIDI_APIS="alsa")
    r = subprocess.run([sys.executable, "-m", "melsynth.cli", "app", "--midi-port", "keys", "--bundle",
                        str(tmp_path / "no-bundle"), "--no-play", "--quit-after", "0.5"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    midi_line = next(ln for ln in r.stdout.splitlines() if ln.startswith("midi:"))
    assert "no MIDI backend" in midi_line and "alsa" in midi_line
    assert "Traceback" not in r.stderr
