"""Audio output: a sounddevice (PortAudio) stream whose callback only copies from the ring.

Failure is a state, not a crash: a missing PortAudio library, no output device, a
device that refuses to open or one that disappears mid-stream all end up as
``AudioUnavailable`` (when opening) or ``output.error`` (while playing) with a
message a player can act on; the caller keeps running and may ``start`` again.

``sounddevice`` is imported lazily (importing it loads PortAudio, which may be
absent). ``FakeOutput`` implements the same interface with a clock driven by the
caller or by a real-time thread: tests and ``melsynth bench`` use it.

The callback is ``engine.device.callback.fill_block``: count, copy ring -> first channel
(declicked: a short ring's sound falls to silence, an underrun is counted), copy the first channel
to the others, optionally copy into a preallocated capture array (tests). No
allocation, no locks, no I/O, no model calls. On a real device it runs as native
code that never takes Python's GIL (``engine.device.callback.native_callback``), so the
producer and the callback never wait on each other; the fake device calls the same
kernel from its Python thread.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from melsynth.engine import kernels
from melsynth.engine.device.callback import (CALLBACKS, CAPTURED, COUNTERS, MAX_FRAMES, STATUS_FLAGS, control_block,
                                            fill_block, native_callback, plain_fill_block)
from melsynth.engine.device.priority import raise_thread_priority
from melsynth.engine.device.ringbuffer import RingBuffer, counter


class AudioUnavailable(Exception):
    """No audio output can be opened; ``str()`` says why and what to do."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    channels: int
    samplerate: int
    low_latency_s: float


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio shared library missing
        raise AudioUnavailable(f"PortAudio library not found ({exc}); install it, e.g. "
                               "'sudo apt-get install libportaudio2'") from exc
    except ImportError as exc:
        raise AudioUnavailable(f"the sounddevice package is not installed ({exc})") from exc
    return sd


def _port_audio_errors(sd) -> tuple:
    return (OSError, sd.PortAudioError, ValueError)


def list_output_devices() -> list[DeviceInfo]:
    """Every device with output channels. Raises AudioUnavailable if PortAudio is missing."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except _port_audio_errors(sd) as exc:
        raise AudioUnavailable(f"cannot list audio devices: {exc}") from exc
    out = []
    for i, d in enumerate(devices):
        if d["max_output_channels"] > 0:
            out.append(DeviceInfo(i, d["name"], apis[d["hostapi"]]["name"], int(d["max_output_channels"]),
                                  int(round(d["default_samplerate"])), float(d["default_low_output_latency"])))
    return out


def rescan_devices() -> None:
    """Make PortAudio enumerate devices again (it only does so when initialised).

    A device plugged in, or a JACK server started, after ``import sounddevice`` is
    invisible until then. Only call with no stream of this process open.
    """
    sd = _sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except _port_audio_errors(sd) as exc:
        raise AudioUnavailable(f"cannot re-initialise PortAudio: {exc}") from exc


def choose_device(device: str | int | None = None, hostapi: str | None = None, rescan: bool = False) -> DeviceInfo:
    """An output device by index, by (case-insensitive) name substring, or the default.

    ``hostapi`` (e.g. "JACK") restricts the search to one host API. Clear errors
    list what is available. ``rescan``: if nothing matches, re-enumerate once and retry.
    """
    try:
        return _choose_device(device, hostapi)
    except AudioUnavailable:
        if not rescan:
            raise
        rescan_devices()
        return _choose_device(device, hostapi)


def _choose_device(device: str | int | None, hostapi: str | None) -> DeviceInfo:
    devices = list_output_devices()
    if hostapi:
        devices = [d for d in devices if hostapi.lower() in d.hostapi.lower()]
    if not devices:
        where = f" on host API {hostapi!r}" if hostapi else ""
        wanted = f"; asked for {device!r}" if device is not None else ""
        raise AudioUnavailable(f"no audio output device{where}{wanted} (is a sound card or JACK server available?)")
    names = "; ".join(f"{d.index}: {d.name} [{d.hostapi}]" for d in devices)
    if device is None or device == "":
        sd = _sounddevice()
        try:
            default = sd.default.device[1]
        except Exception:  # noqa: BLE001 - any PortAudio trouble means "no default"
            default = -1
        for d in devices:
            if d.index == default:
                return d
        return devices[0]
    if isinstance(device, int) or (isinstance(device, str) and device.strip().lstrip("-").isdigit()):
        idx = int(device)
        for d in devices:
            if d.index == idx:
                return d
        raise AudioUnavailable(f"no output device with index {idx}; available: {names}")
    matches = [d for d in devices if str(device).lower() in d.name.lower()]
    if not matches:
        raise AudioUnavailable(f"no output device matching {device!r}; available: {names}")
    return matches[0]


class OutputBase:
    """What the synth needs from an output: a ring to drain, a rate, a block size, a state."""

    name = "output"
    samplerate: int
    blocksize: int  # 0 = variable (the host decides per callback)
    latency_s: float = 0.0  # the device's reported output latency
    self_clocked = True  # callbacks come on their own (a stop can wait for the device to fade out)

    def __init__(self, capture_samples: int = 0):
        self.ring: RingBuffer | None = None
        self.error: str | None = None
        # written by the callback (engine.device.callback.COUNTERS): read them through the properties
        self.counters = np.zeros(COUNTERS, dtype=np.int64)
        # preallocated capture of what was handed to the device (tests); 0 samples: none
        self._capture = np.zeros(capture_samples, dtype=np.float32)
        self.capture = self._capture if capture_samples else None
        # plain Python until use_kernels() where numba's kernels are left for later (engine.kernels)
        self._fill_block = plain_fill_block if kernels.deferred() else fill_block

    callbacks = counter("counters", CALLBACKS, "Callbacks so far.")
    max_frames = counter("counters", MAX_FRAMES, "The largest block the device asked for so far.")
    status_flags = counter("counters", STATUS_FLAGS,
                           "Callbacks where the host reported a problem (e.g. its own output underflow).")
    captured = counter("counters", CAPTURED, "Samples copied into ``capture``.")

    def _fill(self, out: np.ndarray, status: int = 0) -> None:
        """The callback's body: ``out`` is ``(frames, channels)`` float32."""
        ring = self.ring
        self._fill_block(ring.state, ring.data, out, self.counters, self._capture, status)

    def use_kernels(self) -> None:
        """The compiled callback body from the next callback on (a native callback takes the
        next stream this output opens)."""
        self._fill_block = fill_block

    @property
    def active(self) -> bool:
        raise NotImplementedError

    def start(self, ring: RingBuffer) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class AudioOutput(OutputBase):
    """A PortAudio output stream on a chosen device, at the device's own rate and block size."""

    def __init__(self, device: str | int | None = None, blocksize: int | None = None,
                 samplerate: int | None = None, hostapi: str | None = None, capture_samples: int = 0,
                 channels: int | None = None, rescan: bool = True, native: bool = True):
        """``native=False`` runs the Python callback (the fallback where numba is missing) even
        where the native one is available."""
        super().__init__(capture_samples)
        self.info = choose_device(device, hostapi, rescan=rescan)
        self.name = f"{self.info.name} [{self.info.hostapi}]"
        self.samplerate = int(samplerate or self.info.samplerate)
        self.blocksize = int(blocksize or 0)
        self.channels = int(channels or min(2, self.info.channels))
        self.latency_s = self.info.low_latency_s
        self._stream = None
        self._stopping = False
        self._control: np.ndarray | None = None  # the native callback's userData, alive while streaming
        self._native = native_callback() if native else None  # compiled now, not in start
        self.native = False  # whether the running stream's callback is native (no GIL)

    def _callback(self, outdata, frames, time_info, status) -> None:  # PortAudio's thread, with the GIL
        self._fill(outdata, 1 if status else 0)

    def _finished(self) -> None:  # PortAudio's thread, when the stream ends for any reason
        if not self._stopping and self.error is None:
            self.error = f"audio device {self.name} stopped (disconnected?); restart to continue"

    def start(self, ring: RingBuffer) -> None:
        sd = _sounddevice()
        self.ring = ring
        self.error = None
        self._stopping = False
        compiled = self._native
        settings = dict(device=self.info.index, samplerate=self.samplerate, blocksize=self.blocksize,
                        channels=self.channels, dtype="float32", latency="low", finished_callback=self._finished)
        try:
            self._stream = self._open_native(sd, compiled, settings) if compiled is not None else None
            self.native = self._stream is not None
            if self._stream is None:
                self._stream = sd.OutputStream(callback=self._callback, **settings)
            self._stream.start()
        except _port_audio_errors(sd) as exc:
            self._stream = None
            raise AudioUnavailable(f"cannot open audio device {self.name} at {self.samplerate} Hz: {exc}") from exc
        try:
            self.latency_s = float(self._stream.latency)
        except (TypeError, ValueError):
            pass

    def _open_native(self, sd, compiled, settings: dict):
        """A stream whose callback is the compiled one, or None where this sounddevice cannot
        take a C callback (then the Python callback does the same work)."""
        self._control = control_block(self.ring.state, self.ring.data, self.channels, self.counters, self._capture)
        try:
            return sd._StreamBase(  # documented for library authors: a C callback with userdata
                kind="output", callback=sd._ffi.cast("PaStreamCallback *", compiled.address),
                userdata=sd._ffi.cast("void *", self._control.ctypes.data), wrap_callback=None, **settings)
        except (AttributeError, TypeError):
            self._control = None
            return None

    @property
    def active(self) -> bool:
        s = self._stream
        if s is None:
            return False
        try:
            return bool(s.active)
        except Exception:  # noqa: BLE001 - a vanished device can make any query fail
            return False

    def stop(self) -> None:
        self._stopping = True
        s, self._stream = self._stream, None
        if s is not None:
            try:
                s.stop()
                s.close()
            except Exception:  # noqa: BLE001 - closing a dead stream must not take the app down
                pass
        self._control = None  # after close: PortAudio no longer calls back with it


class FakeOutput(OutputBase):
    """A device without hardware: ``tick()`` runs one callback of ``blocksize`` frames.

    Modes:
      * manual: the caller calls ``tick()`` (deterministic clock: block i is at time i * blocksize / rate)
      * ``realtime=True``: a thread ticks every ``blocksize / samplerate`` seconds of wall time
        (bench: real scheduling, underruns are real)
      * ``wait_for_data=True`` (realtime off): a thread ticks as soon as the ring holds a whole
        block, so capture never has a gap however slow the machine (stream-equals-offline tests)

    ``times``/``positions`` (preallocated, ``log_blocks`` entries) record each tick's wall time
    and the ring read position before it, for the knob-latency bench.
    """

    def __init__(self, samplerate: int = 48000, blocksize: int = 256, channels: int = 2,
                 realtime: bool = False, wait_for_data: bool = False, capture_samples: int = 0,
                 latency_s: float | None = None, log_blocks: int = 0, name: str = "fake device"):
        super().__init__(capture_samples)
        self.name = name
        self.samplerate = int(samplerate)
        self.blocksize = int(blocksize)
        self.channels = channels
        self.realtime = realtime
        self.wait_for_data = wait_for_data
        self.latency_s = self.blocksize / self.samplerate if latency_s is None else latency_s
        self._buf = np.zeros((self.blocksize, channels), dtype=np.float32)
        self.times = np.zeros(log_blocks, dtype=np.float64)
        self.positions = np.zeros(log_blocks, dtype=np.int64)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._running = False

    @property
    def clock_s(self) -> float:
        """Deterministic device time: blocks played so far."""
        return self.callbacks * self.blocksize / self.samplerate

    def tick(self) -> np.ndarray:
        i = self.callbacks
        if i < self.times.shape[0]:
            self.times[i] = time.perf_counter()
            self.positions[i] = self.ring.read_position
        self._fill(self._buf)
        return self._buf

    def start(self, ring: RingBuffer) -> None:
        self.ring = ring
        self.error = None
        self._running = True
        if self.realtime or self.wait_for_data:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="fake-audio-device", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        raise_thread_priority()  # as a sound card's callback thread would be
        period = self.blocksize / self.samplerate
        next_t = time.perf_counter()
        while not self._stop.is_set():
            if self.realtime:
                next_t += period
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self.tick()
            else:
                if self.ring.fill >= self.blocksize:
                    self.tick()
                else:
                    time.sleep(0.0005)

    @property
    def active(self) -> bool:
        return self._running

    @property
    def self_clocked(self) -> bool:
        """Manual mode ticks only when the caller says so."""
        return self.realtime or self.wait_for_data

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._running = False
