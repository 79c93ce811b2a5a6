"""MIDI input: decoding, MIDI learn, note-to-latent-point recall, the rtmidi port.

Three layers, each testable alone::

    rtmidi thread          MidiInput._on_raw(bytes)        (python-rtmidi callback thread)
         |                      decode_message() -> ControlChange | NoteOn | NoteOff | None
         v  Qt queued signal                                (counted: malformed, ignored)
    GUI thread             MidiInput.event(obj) -> MainWindow -> MidiMap.handle_cc(...)

``decode_message`` and ``MidiMap`` are pure Python (no rtmidi, no Qt). ``MidiInput``
opens a virtual input port ("melsynth:midi in") on JACK when a JACK server runs,
otherwise on ALSA; other programs connect to it, or the player picks an existing
output port to connect from. With no backend it keeps ``unavailable_reason`` and
the rest of the app works without MIDI.

The virtual port stays open for the life of the app: python-rtmidi cannot open a
virtual port again on a MidiIn whose port was closed. A chosen output port is
connected through a second MidiIn (client "melsynth-connect"), opened and closed
as the player chooses.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

CLIENT_NAME = "melsynth"
VIRTUAL_PORT_NAME = "midi in"
CONNECTION_SUFFIX = "-connect"  # the client that connects from a chosen output port
KNOB_RANGE_SIGMA = 3.0  # CC 0..127 maps onto -3..+3 sigma


# --------------------------------------------------------------------------- decoding
@dataclass(frozen=True)
class ControlChange:
    channel: int  # 0..15
    controller: int  # 0..127
    value: int  # 0..127


@dataclass(frozen=True)
class NoteOn:
    channel: int
    note: int
    velocity: int  # 1..127 (velocity 0 is decoded as NoteOff, as the MIDI spec says)


@dataclass(frozen=True)
class NoteOff:
    channel: int
    note: int


MidiEvent = ControlChange | NoteOn | NoteOff

# Data-byte counts of channel voice messages, by high nibble of the status byte.
_CHANNEL_MESSAGE_LENGTH = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}


class MidiCounters(Counter):
    """``received``, ``malformed`` (bad length, bad bytes) and ``ignored`` (valid but unused)."""

    def summary(self) -> str:
        return (f"{self['received']} received, {self['malformed']} malformed, "
                f"{self['ignored']} ignored")


def decode_message(message: Any, counters: MidiCounters | None = None) -> MidiEvent | None:
    """One raw MIDI message (a sequence of ints) -> an event, or ``None`` (counted).

    Anything that is not a well-formed note on/off or control change is dropped:
    malformed input (wrong length, status/data bytes out of range, not a list of
    ints) counts as ``malformed``; well-formed messages melsynth does not use
    (program change, pitch bend, clock, sysex, ...) count as ``ignored``.
    """
    counters = counters if counters is not None else MidiCounters()
    counters["received"] += 1
    try:
        data = [int(b) for b in message]
        if any(isinstance(b, bool) or not isinstance(b, int) for b in message):
            raise TypeError("not integers")
    except (TypeError, ValueError):
        counters["malformed"] += 1
        return None
    if data and data[0] == 0xF0:  # sysex: F0, data bytes, F7
        ok = len(data) >= 2 and data[-1] == 0xF7 and all(0 <= b <= 0x7F for b in data[1:-1])
        counters["ignored" if ok else "malformed"] += 1
        return None
    # A message starts with a status byte; data bytes have the top bit clear.
    if not data or not 0x80 <= data[0] <= 0xFF or any(not 0 <= b <= 0x7F for b in data[1:]):
        counters["malformed"] += 1
        return None
    status = data[0]
    if status >= 0xF0:  # system common / realtime: clock, start, stop, active sensing, ...
        counters["ignored"] += 1
        return None
    kind, channel = status & 0xF0, status & 0x0F
    if len(data) != _CHANNEL_MESSAGE_LENGTH[kind]:
        counters["malformed"] += 1
        return None
    if kind == 0xB0:
        return ControlChange(channel, data[1], data[2])
    if kind == 0x90:
        return NoteOn(channel, data[1], data[2]) if data[2] > 0 else NoteOff(channel, data[1])
    if kind == 0x80:
        return NoteOff(channel, data[1])
    counters["ignored"] += 1
    return None


def cc_to_sigma(value: int, span: float = KNOB_RANGE_SIGMA) -> float:
    """CC value 0..127 -> -span..+span; 64 is (almost) the centre, so map 0..127 linearly."""
    return float(-span + 2.0 * span * (min(max(value, 0), 127) / 127.0))


# --------------------------------------------------------------------------- learn / map
class MidiMap:
    """Bindings (channel, controller) -> knob name, and the MIDI-learn state.

    ``arm(knob)`` then the next control change binds that controller to the knob
    (replacing any previous binding of the controller or of the knob).
    """

    def __init__(self, bindings: dict[tuple[int, int], str] | None = None):
        self.bindings: dict[tuple[int, int], str] = dict(bindings or {})
        self.armed: str | None = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MidiMap) and other.bindings == self.bindings

    __hash__ = None  # mutable

    def arm(self, knob: str | None) -> None:
        self.armed = knob

    def handle_cc(self, cc: ControlChange) -> tuple[str, float] | None:
        """-> (knob name, sigma) for a bound or just-learned controller, else None."""
        key = (cc.channel, cc.controller)
        if self.armed is not None:
            self.bind(key, self.armed)
            self.armed = None
        knob = self.bindings.get(key)
        if knob is None:
            return None
        return knob, cc_to_sigma(cc.value)

    def bind(self, key: tuple[int, int], knob: str) -> None:
        for k in [k for k, v in self.bindings.items() if v == knob]:
            del self.bindings[k]
        self.bindings[key] = knob

    def controller_of(self, knob: str) -> tuple[int, int] | None:
        for k, v in self.bindings.items():
            if v == knob:
                return k
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [{"channel": ch, "controller": cc, "knob": knob}
                for (ch, cc), knob in sorted(self.bindings.items())]

    @classmethod
    def from_json(cls, items: Any, where: str = "midi_map") -> "MidiMap":
        """Raises ``ValueError`` naming the entry that is wrong."""
        if not isinstance(items, list):
            raise ValueError(f"{where}: expected a list, got {type(items).__name__}")
        bindings = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValueError(f"{where}[{i}]: expected an object")
            ch, cc, knob = item.get("channel"), item.get("controller"), item.get("knob")
            for name, value, hi in (("channel", ch, 15), ("controller", cc, 127)):
                if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
                    raise ValueError(f"{where}[{i}].{name}: need an integer 0..{hi}, got {value!r}")
            if not isinstance(knob, str) or not knob:
                raise ValueError(f"{where}[{i}].knob: need a knob name, got {knob!r}")
            bindings[(ch, cc)] = knob
        return cls(bindings)


# --------------------------------------------------------------------------- rtmidi port
def jack_server_running() -> bool:
    """Whether a JACK server answers, checked without creating a client (which could start one).

    JACK2 on Linux listens on ``/dev/shm/jack_<server>_<uid>_0``; a stale socket left by
    a killed server refuses the connection.
    """
    import socket

    server = os.environ.get("JACK_DEFAULT_SERVER", "default")
    candidates = [f"/dev/shm/jack_{server}_{os.getuid()}_0", f"/tmp/jack_{server}_{os.getuid()}_0"]
    for path in candidates:
        if not os.path.exists(path):
            continue
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect(path)
            return True
        except OSError:
            continue
        finally:
            sock.close()
    return False


def backend_order() -> list[str]:
    """APIs to try, from ``$MELSYNTH_MIDI_APIS`` ("jack,alsa", "none") or the default order."""
    env = os.environ.get("MELSYNTH_MIDI_APIS")
    if env is not None:
        return [a.strip().lower() for a in env.split(",") if a.strip() and a.strip().lower() != "none"]
    return ["jack", "alsa"]


class MidiPortError(ValueError):
    """No output port matches the name asked for (the message lists the ports there are)."""


class MidiInput(QObject):
    """The app's MIDI input port; emits decoded events on the GUI thread.

    ``event`` carries ControlChange / NoteOn / NoteOff objects. rtmidi calls
    ``_on_raw`` on its own thread; the signal is delivered queued to receivers
    living in the GUI thread.
    """

    event = Signal(object)
    countersChanged = Signal()

    def __init__(self, parent: QObject | None = None, apis: list[str] | None = None,
                 client_name: str = CLIENT_NAME):
        """``apis``: backends to try in order ("jack", "alsa"); default ``backend_order()``."""
        super().__init__(parent)
        self.apis = backend_order() if apis is None else list(apis)
        self.client_name = client_name
        self.counters = MidiCounters()
        self.midi_in = None  # the virtual input port's client
        self.connection = None  # the client connected from a chosen output port, if any
        self.api_name: str | None = None
        self.unavailable_reason: str | None = None
        self.port_label: str | None = None
        self._open_backend()

    # backend --------------------------------------------------------------
    def _open_backend(self) -> None:
        # Never let a JACK client start a server behind the player's back.
        os.environ.setdefault("JACK_NO_START_SERVER", "1")
        try:
            import rtmidi
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            self.unavailable_reason = f"python-rtmidi is not importable: {exc}"
            return
        apis = {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}
        compiled = set(rtmidi.get_compiled_api())
        reasons = []
        order = self.apis
        if not order:
            self.unavailable_reason = ("MIDI disabled ($MELSYNTH_MIDI_APIS=none)"
                                       if os.environ.get("MELSYNTH_MIDI_APIS") is not None else "MIDI disabled")
            return
        for name in order:
            api = apis.get(name)
            if api is None:
                reasons.append(f"{name}: unknown MIDI API (use jack or alsa)")
                continue
            if api not in compiled:
                reasons.append(f"{name}: not compiled into python-rtmidi")
                continue
            if name == "jack" and not jack_server_running():
                reasons.append("jack: no JACK server running")
                continue
            try:
                midi_in = rtmidi.MidiIn(api, name=self.client_name)
                midi_in.ignore_types(sysex=False, timing=True, active_sense=True)
                midi_in.open_virtual_port(VIRTUAL_PORT_NAME)
                midi_in.set_callback(self._on_raw)
            except rtmidi.RtMidiError as exc:
                reasons.append(f"{name}: {str(exc).strip()}")
                continue
            self.midi_in, self.api_name = midi_in, name
            self.port_label = self.virtual_label
            return
        self.unavailable_reason = "no MIDI backend: " + "; ".join(reasons)

    @property
    def virtual_name(self) -> str:
        return f"{self.client_name}:{VIRTUAL_PORT_NAME}"

    @property
    def virtual_label(self) -> str:
        return f"{self.client_name}:{VIRTUAL_PORT_NAME} (virtual input, others connect here)"

    @property
    def available(self) -> bool:
        return self.midi_in is not None

    def ports(self) -> list[str]:
        """Output ports of other programs that the app can connect from (not its own)."""
        if self.midi_in is None:
            return []
        own = {self.client_name, self.client_name + CONNECTION_SUFFIX}
        try:
            return [p for p in self.midi_in.get_ports() if p.split(":", 1)[0] not in own]
        except Exception:  # a backend that vanished: no ports rather than a crash
            return []

    def find_port(self, name: str) -> str:
        """The output port named ``name`` (exactly, else the first containing it, any case).
        MidiPortError listing the ports when none matches."""
        ports = self.ports()
        matches = [p for p in ports if p == name] or [p for p in ports if name.lower() in p.lower()]
        if not matches:
            raise MidiPortError(f"no MIDI output port matches {name!r}; available: "
                                f"{', '.join(ports) or 'none'} (or leave it out for melsynth's own "
                                f"virtual port {self.client_name}:{VIRTUAL_PORT_NAME})")
        return matches[0]

    def choose_port(self, name: str | None) -> str:
        """Connect from the named port, or ``None`` for the app's own virtual port alone. -> status text.

        The virtual port stays open either way; a port that cannot be found or opened leaves
        the current connection as it was.
        """
        if self.midi_in is None:
            return self.unavailable_reason or "no MIDI"
        if name is None:
            self._close_connection()
            self.port_label = self.virtual_label
            return f"MIDI in: {self.port_label}"
        import rtmidi

        try:
            port = self.find_port(name)
        except MidiPortError as exc:
            return str(exc)
        self._close_connection()
        try:
            connection = rtmidi.MidiIn(self._api_id(), name=self.client_name + CONNECTION_SUFFIX)
            connection.ignore_types(sysex=False, timing=True, active_sense=True)
            index = connection.get_ports().index(port)
            connection.open_port(index, name=VIRTUAL_PORT_NAME)
            connection.set_callback(self._on_raw)
        except (rtmidi.RtMidiError, ValueError) as exc:  # ValueError: the port left meanwhile
            self.port_label = self.virtual_label
            return f"cannot open MIDI port {port!r}: {str(exc).strip() or 'gone'}"
        self.connection = connection
        self.port_label = port
        return f"MIDI in: {port} (and {self.client_name}:{VIRTUAL_PORT_NAME})"

    def describe(self) -> str:
        """What is open now, e.g. for the start-up report."""
        if self.midi_in is None:
            return self.unavailable_reason or "no MIDI"
        text = f"{self.api_name.upper()}: virtual input {self.client_name}:{VIRTUAL_PORT_NAME} open"
        return text + (f"; connected from {self.port_label}" if self.connection is not None else "")

    def _api_id(self) -> int:
        import rtmidi

        return {"jack": rtmidi.API_UNIX_JACK, "alsa": rtmidi.API_LINUX_ALSA}[self.api_name]

    def _close_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            _delete_midi_in(connection)

    def close(self) -> None:
        self._close_connection()
        midi_in, self.midi_in = self.midi_in, None
        if midi_in is not None:
            _delete_midi_in(midi_in)

    # rtmidi thread ----------------------------------------------------------
    def _on_raw(self, message_and_delta, _data=None) -> None:
        try:
            message = message_and_delta[0]
        except (TypeError, IndexError):
            self.counters["received"] += 1
            self.counters["malformed"] += 1
            return
        self.feed(message)

    def feed(self, message: Any) -> None:
        """Decode one raw message (any thread) and emit the event if there is one."""
        ev = decode_message(message, self.counters)
        if ev is not None:
            self.event.emit(ev)
        self.countersChanged.emit()


def _delete_midi_in(midi_in) -> None:
    """Stop callbacks, close the port and free the client (a backend that vanished: ignored)."""
    try:
        midi_in.cancel_callback()
        midi_in.close_port()
        midi_in.delete()
    except Exception:  # noqa: BLE001 - shutting a port down never takes the app down
        pass


# --------------------------------------------------------------------------- panel
from PySide6.QtCore import Qt  # noqa: E402  (the panel is the only Qt widget code here)
from PySide6.QtWidgets import (QComboBox, QGroupBox, QHBoxLayout, QLabel, QToolButton,  # noqa: E402
                               QVBoxLayout, QWidget)


PORT_HINT = "Connect from this MIDI output port (or let others connect to melsynth's own port)"


class MidiPanel(QGroupBox):
    """Port chooser, learn state, counters; says why when there is no MIDI backend."""

    portChosen = Signal(object)  # port name, or None for the app's own virtual port

    def __init__(self, midi: MidiInput, parent: QWidget | None = None):
        super().__init__("MIDI", parent)
        self.midi = midi
        self.port = QComboBox()
        self.port.setToolTip(PORT_HINT)
        self.port.setMinimumContentsLength(10)
        self.port.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.refresh = QToolButton(text="Rescan")
        self.refresh.setFocusPolicy(Qt.NoFocus)
        self.state = QLabel("")
        self.state.setWordWrap(True)
        self.counters = QLabel("")
        self.learn = QLabel("Right-click a knob: MIDI learn. Notes recall points stored to them.")
        self.learn.setWordWrap(True)
        self.learn.setStyleSheet("color: gray;")
        row = QHBoxLayout()
        row.addWidget(self.port, 1)
        row.addWidget(self.refresh)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.state)
        lay.addWidget(self.counters)
        lay.addWidget(self.learn)
        self.refresh.clicked.connect(self.rescan)
        self.port.activated.connect(lambda _i: self.portChosen.emit(self.port.currentData()))
        midi.countersChanged.connect(self.show_counters)
        self.rescan()
        self.show_counters()

    def rescan(self) -> None:
        self.port.blockSignals(True)
        self.port.clear()
        if not self.midi.available:
            self.port.addItem("(no MIDI)", None)
            self.port.setEnabled(False)
            self.refresh.setEnabled(False)
            self.state.setText(self.midi.unavailable_reason or "no MIDI")
            self.state.setStyleSheet("color: #e0a040;")
        else:
            # short names in the box (a long one would be clipped); the whole story in the tooltips
            self.port.addItem(self.midi.virtual_name, None)
            self.port.setItemData(0, self.midi.virtual_label, Qt.ToolTipRole)
            for p in self.midi.ports():
                self.port.addItem(p, p)
                self.port.setItemData(self.port.count() - 1, p, Qt.ToolTipRole)
            i = self.port.findData(self.midi.port_label) if self.midi.connection is not None else 0
            self.port.setCurrentIndex(max(i, 0))
            self.port.setToolTip(f"{self.port.itemData(self.port.currentIndex(), Qt.ToolTipRole)}\n{PORT_HINT}")
            widest = max(self.port.fontMetrics().horizontalAdvance(self.port.itemText(k))
                         for k in range(self.port.count()))
            self.port.view().setMinimumWidth(widest + 24)  # the list shows whole names
            self.state.setText(f"{self.midi.api_name.upper()} MIDI: {self.midi.port_label}")
            self.state.setStyleSheet("")
        self.port.blockSignals(False)

    def show_learning(self, knob_label: str | None) -> None:
        self.learn.setText(f"Learning: move a controller for {knob_label}" if knob_label else
                           "Right-click a knob: MIDI learn. Notes recall points stored to them.")

    def show_counters(self) -> None:
        self.counters.setText(self.midi.counters.summary())
