"""The streaming synth: mel source -> prior -> vocoder -> safety -> resampler -> ring -> device.

Public API (the Qt app builds on this; everything here is thread-safe unless noted)::

    from melsynth.engine.stream.controls import Controls
    from melsynth.engine.stream.synth import Synth, SynthConfig, render_offline

    synth = Synth(bundle=None, vocoder=None, config=SynthConfig(), controls=Controls())
        # bundle: folder / bundle.json / ModelBundle; None = $MELSYNTH_BUNDLE or models/default.
        # Loads the ONNX sessions now (so play() is quick); raises BundleError on a bad bundle.

    # transport ----------------------------------------------------------------
    synth.play(device=None, blocksize=None) -> bool
        # device: name substring or index (engine.device.output.list_output_devices()); None = default.
        # Opens the device at ITS rate and block size, pre-fills the ring, starts the producer.
        # False (and status().error says why) when PortAudio/the device is unavailable: nothing
        # raises, the process keeps running, call play()/restart() again later.
    synth.stop()                       # the device fades out (SynthConfig.declick_ms), then stream
                                       # and producer stop; the pipeline keeps its state, and the
                                       # next play() fades back in
    synth.restart(device=None, blocksize=None) -> bool   # stop + play (device choice/recovery)
    synth.playing -> bool

    # control (GUI / MIDI threads; never blocks on inference) ------------------
    synth.set_controls(controls: Controls)   # immutable snapshot, see engine.stream.controls
    synth.controls -> Controls               # the latest snapshot submitted
    synth.update_controls(**changes)         # = set_controls(dataclasses.replace(controls, ...))
    synth.set_canvas(log_mel)                # (256, N) log10 mel; N frames = loop length
    synth.edit_canvas(start_frame, values, bin_start=0)  # values (bins, k): write into the canvas
                                             # (wraps around the loop); heard on this pass if ahead
    synth.canvas() -> np.ndarray             # a copy of the canvas as the producer sees it
    synth.canvas_playhead -> int             # frame index of the canvas playhead
    synth.load_file(path) -> int             # decode + mel in the CALLER's thread, then hand to the
                                             # file source; returns its frame count
    synth.swap_bundle(bundle, vocoder=None, wait=False)  # load in a background thread, then crossfade
                                             # from the old chain to the new one (no click, no gap)
    synth.set_vocoder(name)                  # = swap_bundle(current bundle, vocoder=name)
    synth.set_lead_ms(ms)                    # least lead of each step (SynthConfig.target_ms): fewer
                                             # clicks on a stalling machine, as much more knob latency
    synth.bundle -> ModelBundle; synth.vocoder_name -> str; synth.directions -> tuple[Direction]

    # observation ----------------------------------------------------------------
    synth.status() -> SynthStatus            # frozen: playing, device, sample_rate, blocksize,
                                             # underruns, latency_ms (ring + resampler + device now),
                                             # cpu_load (producer busy time / audio time), error
                                             # (str | None), bundle, vocoder, source, frames_produced,
                                             # swapping, nonfinite_samples, listener_errors, lead_ms
    synth.tap.frames_since(counter, lag) -> (new_counter, (256, k) log10 mel)  # live spectrogram
    synth.heard_lag_frames() -> int          # the newest frames not heard yet (the lag above)
    synth.output_latency_s() -> float        # ring + resampler + device: output to ear, now
    synth.tap.latest(n) -> (256, n)          # the newest n frames (oldest first)
    synth.tap.level() -> (peak_dbfs, rms_dbfs)   # of the newest output audio (level meter)
    synth.add_listener(fn) / remove_listener(fn)
        # fn(chunk: float32 (n,), sample_rate: int) called in the PRODUCER thread with every chunk
        # written to the ring (what will be heard, device rate): the recorder hook. fn must be
        # quick (e.g. queue.put to a writer thread); exceptions are caught and reported in status.

    # offline ---------------------------------------------------------------------
    render_offline(bundle, seconds, controls=Controls(), events=(), vocoder=None,
                   config=SynthConfig(), sample_rate=None) -> np.ndarray   # (samples,) float32
        # The SAME pipeline, driven without a device: events are (frame_index, command) pairs,
        # e.g. synth.event_log() of a streamed session, replayed at the same frames.
    synth.event_log() -> list[(frame_index, command)]   # when SynthConfig(record_events=True)

    # devices and tests ------------------------------------------------------------
    engine.device.output.list_output_devices() -> [DeviceInfo(index, name, hostapi, channels, samplerate, ...)]
        # raises engine.device.output.AudioUnavailable (clear message) when PortAudio is missing
    synth.play(output=FakeOutput(48000, 256, ...))   # any OutputBase: tests, bench, offscreen app
    Synth(..., loader=fn)                    # fn(bundle, vocoder_name) -> (prior | None, vocoder);
                                             # tests pass tests.engine_fakes.fake_loader()

Threads: GUI/MIDI threads submit commands into a deque; the producer thread drains it at the
start of each step, runs the models, and writes the ring; the audio callback only copies out of
the ring (engine.device.ringbuffer), as native code that never takes the GIL (engine.device.callback). Nothing
the callback touches is locked by inference. While playing, the GIL's switch interval is 1 ms, so
the producer waits less for it behind a GUI thread running Python.

When to step: the producer follows the device's read clock (engine.stream.schedule) and starts a
step when the time left before the device would find the ring short falls under what that
step needs (its kind's slowest recent time, plus the producer's slowest recent wake-up): as
late as is safe, so a knob move waits behind as little queued audio as the machine allows.

This module is the live part (the producer thread, the device, the transport). What one
step computes is ``engine.stream.pipeline.Pipeline`` (shared with ``render_offline``), built of
``engine.stream.chain`` (a bundle's generators), ``engine.dsp.resample`` and ``engine.stream.tap`` (the GUI's
view of what was made); commands are ``engine.stream.messages``, settings ``engine.stream.config``.
"""
from __future__ import annotations

import collections
import gc
import math
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from melsynth.engine.device.callback import prepare_kernels
from melsynth.engine.device.priority import raise_thread_priority
from melsynth.engine.device.ringbuffer import RingBuffer
from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.runtime.bundle import BundleError, ModelBundle
from melsynth.engine.stream.chain import Chain, ModelLoader, load_models, quality_loader
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.messages import (EditCanvas, SetCanvas, SetControls, SetFile, SwapChain, UseKernels,
                                              frozen_copy)
from melsynth.engine.stream.pipeline import Pipeline, as_bundle, render_offline
from melsynth.engine.stream.schedule import DeviceClock, RecentMax, RecentQuantile
from melsynth.engine.stream.sources import file_log_mel
from melsynth.engine.stream.tap import MelTap

# The public API (module docstring) names these from here; they live in their own modules.
__all__ = ["Synth", "SynthConfig", "SynthStatus", "render_offline", "freeze_heap"]

DEFAULT_DEVICE_RATE = 48000
# The slowest-step memories keep the last 256 to 512 steps of a kind (6 to 12 s of audio at one
# frame a step): a spike (the machine got busy, a cache went cold) makes the producer start its
# steps earlier for a while, not for ever.
_STEP_WINDOW = 256
_WAKE_SLACK_S = 0.001  # the least slack allowed for the producer's sleep overshooting
# The producer's wake-up lateness memory, in sleeps (a few hundred a second: 8 to 30 s).
_WAKE_WINDOW = 4096
# The start-up assumptions below stand for this many steps (about 1.5 s).
_START_STEPS = 64
# Assumed slowest step when playing starts, before any is timed: the first seconds (the GUI
# drawing its first frames, caches warming up) are the likeliest to stall. It stands for the
# first _START_STEPS steps.
_STEP_S_AT_START = 0.010
# Queued on top of the lead before the device's first read. Starting is the likeliest time to
# stall (caches cold, the GUI drawing its first frames): with the native callback reading from
# the first period, an app start without it clicks 25 ms in (4 starts in 4). The extra drains
# within a frame or two, as the producer waits for the queue to fall to the lead.
_PREFILL_EXTRA_S = 0.020
# The longest the producer sleeps between looks at the ring.
_POLL_MAX_S = 0.002
# Python's GIL switch interval while playing (``Synth.play``). When another thread (the GUI)
# runs Python code, the producer waits up to this long for the GIL at each of its many
# re-acquisitions in a step; CPython's default of 5 ms doubled the lead (21 against 11 ms)
# under a 10-in-40 ms Python load, at no measurable cost in CPU.
_SWITCH_INTERVAL_S = 0.001
# Assumed usual cost of the prior's work (a knob's re-run, a latent step) before any is timed. Low,
# because it only decides whether that work fits before the next step; the first one timed
# replaces it.
_PREPARE_S_AT_START = 0.003


def freeze_heap() -> int:
    """Take every object alive now out of the cyclic garbage collector's walks (``gc.freeze``).

    A full collection walks every tracked object with the GIL held, stopping the producer
    and the callback: 80 ms for the 158,000 objects of a loaded synth, eight ring targets
    of silence, every few minutes of play. (It is not the only cause of the rare soak
    underrun: in one seeded soak that underrun comes at 107 s with collections and at
    218 s without.) Frozen objects are still freed by reference counting,
    which frees models and buffers; only reference cycles among objects alive now would
    stay. Returns how many objects are frozen.
    """
    gc.freeze()
    return gc.get_freeze_count()


@dataclass(frozen=True)
class SynthStatus:
    playing: bool
    device: str | None
    sample_rate: int
    blocksize: int
    underruns: int
    latency_ms: float  # ring fill + resampler + device output latency, now
    cpu_load: float  # producer busy time / audio time produced (fraction of one core)
    error: str | None
    bundle: str
    vocoder: str
    source: str
    frames_produced: int
    swapping: bool
    nonfinite_samples: int
    listener_errors: int
    lead_ms: float  # how long before the device would run short a step starts now (grows after underruns)


class Synth:
    """The live engine; see the module docstring for the API."""

    def __init__(self, bundle=None, vocoder: str | None = None, config: SynthConfig = SynthConfig(),
                 controls: Controls | None = None, loader: ModelLoader = load_models,
                 device_rate: int = DEFAULT_DEVICE_RATE):
        self.config = config
        self._loader = loader
        self.phase_quality = "realtime"  # engine.dsp.quality; set_phase_quality swaps to another
        self._controls = controls or Controls()
        self._pipeline = Pipeline(as_bundle(bundle), vocoder, config, self._controls, device_rate, loader)
        prepare_kernels()  # compiled (or loaded from numba's cache) now, not in a device's first callback
        self._commands: collections.deque = collections.deque()  # GUI/MIDI -> producer, never blocks
        self.ring = RingBuffer(int(config.ring_seconds * 192000))
        self._output = None
        self._output_live = False  # the output was started (its death then stops the producer)
        self._underruns_seen = 0
        self._target_extra_ms = 0.0  # grown by underruns (adaptive ring target)
        self.near_misses = 0  # steps delivered under a quarter block period before a click
        self._clock = DeviceClock(device_rate)
        # slowest recent producer steps: vocoder-only ones and those that run the prior or two
        # chains (see _lead_s)
        self._step_s = RecentMax(_STEP_WINDOW, _STEP_S_AT_START, _START_STEPS)
        self._heavy_step_s = RecentMax(_STEP_WINDOW)
        self._wake_late = RecentMax(_WAKE_WINDOW)  # the producer's slowest recent wake-ups
        # the prior's work done ahead (_prepare_ahead): its usual cost, which decides whether it
        # fits before the next step, or in it (a knob move that came late)
        self._prepare_s = RecentQuantile(64, 0.9, _PREPARE_S_AT_START)
        self._prepare_busy = 0.0  # seconds spent in _prepare_ahead (counted in cpu_load)
        self._producer: threading.Thread | None = None
        self._stop_producer = threading.Event()
        self._error: str | None = None
        self._cpu_load = 0.0
        self._listeners: tuple = ()
        self._listener_errors = 0
        self._swap_pending = 0
        self._lock = threading.Lock()  # guards play/stop/swap bookkeeping (never the callback)
        self._switch_interval_before: float | None = None  # set while playing (see _SWITCH_INTERVAL_S)
        self.on_apply: Callable[[Any, int, int], None] | None = None  # bench: (cmd, frame, ring pos)

    # ---------------------------------------------------------------- properties
    @property
    def bundle(self) -> ModelBundle:
        return self._pipeline.chain.bundle

    @property
    def vocoder_name(self) -> str:
        return self._pipeline.chain.vocoder_name

    @property
    def directions(self) -> tuple:
        return self._pipeline.chain.directions

    @property
    def spec(self) -> MelSpec:
        return self._pipeline.spec

    @property
    def controls(self) -> Controls:
        return self._controls

    @property
    def tap(self) -> MelTap:
        return self._pipeline.tap

    @property
    def playing(self) -> bool:
        return self._producer is not None and self._producer.is_alive()

    @property
    def output(self):
        return self._output

    @property
    def device_bursts(self) -> int:
        """Times the device took two blocks or more within one block period (``DeviceClock``)."""
        return self._clock.bursts

    @property
    def canvas_playhead(self) -> int:
        return self._pipeline.canvas.playhead

    def canvas(self) -> np.ndarray:
        return self._pipeline.canvas.frames()

    def event_log(self) -> list:
        return list(self._pipeline.events)

    # ---------------------------------------------------------------- commands (any thread)
    def _submit(self, cmd) -> None:
        self._commands.append(cmd)
        if not self.playing:  # nobody drains the queue: apply now (under the bookkeeping lock)
            with self._lock:
                if not self.playing:
                    self._drain()

    def set_controls(self, controls: Controls) -> None:
        if not isinstance(controls, Controls):
            raise TypeError(f"set_controls needs a Controls snapshot, got {type(controls).__name__}")
        self._controls = controls
        self._submit(SetControls(controls))

    def update_controls(self, **changes) -> Controls:
        new = self._controls.replace(**changes)
        self.set_controls(new)
        return new

    def set_source(self, source: str) -> None:
        self.update_controls(source=source)

    def set_canvas(self, log_mel: np.ndarray) -> None:
        arr = np.asarray(log_mel)
        if arr.ndim != 2 or arr.shape[0] != self.spec.n_mels or arr.shape[1] < 1:
            raise ValueError(f"canvas must be ({self.spec.n_mels}, N>=1) log10 mel, got shape {arr.shape}")
        self._submit(SetCanvas(frozen_copy(arr)))

    def edit_canvas(self, start_frame: int, values: np.ndarray, bin_start: int = 0) -> None:
        vals = np.asarray(values)
        if vals.ndim == 1:
            vals = vals[:, None]
        if vals.ndim != 2:
            raise ValueError(f"canvas edit values must be (bins, frames), got shape {vals.shape}")
        self._submit(EditCanvas(int(start_frame), frozen_copy(vals), int(bin_start)))

    def load_file(self, path) -> int:
        mel = file_log_mel(path, self.spec)
        self._submit(SetFile(frozen_copy(mel), str(path)))
        return mel.shape[1]

    def swap_bundle(self, bundle=None, vocoder: str | None = None, wait: bool = False) -> threading.Thread:
        """Load ``bundle`` (default: the current one) with ``vocoder`` off-thread, then crossfade to it.

        Errors while loading land in ``status().error``; the old chain keeps playing.
        """
        def work():
            try:
                b = as_bundle(bundle) if bundle is not None else self.bundle
                quality = self.phase_quality
                chain = Chain.build(b, vocoder, self._controls, self.config, quality_loader(self._loader, quality))
                freeze_heap()  # the new models too (a collection would stall the playing chain)
                if b.mel != self.spec:
                    raise BundleError(b.json_path, "mel", "hot-swap needs the same MelSpec as the playing bundle")
                self._submit(SwapChain(b, chain.vocoder_name, chain, quality))
            except Exception as exc:  # noqa: BLE001 - reported, the old chain keeps playing
                self._error = f"cannot switch model: {exc}"
            finally:
                self._swap_pending -= 1

        self._swap_pending += 1
        t = threading.Thread(target=work, name="synth-bundle-loader", daemon=True)
        t.start()
        if wait:
            t.join()
        return t

    def set_vocoder(self, name: str, wait: bool = False) -> threading.Thread:
        return self.swap_bundle(None, vocoder=name, wait=wait)

    def set_phase_quality(self, quality: str, wait: bool = False) -> threading.Thread:
        """The classical vocoder's phase quality (``engine.dsp.quality``: "realtime", "high", "max")
        for this chain, by a crossfaded hot-swap to the same vocoder rebuilt at it, and for every
        later swap. More quality costs CPU and adds its look-ahead to the latency."""
        from melsynth.engine.dsp.quality import check_quality

        self.phase_quality = check_quality(quality)
        return self.swap_bundle(None, vocoder=self.vocoder_name, wait=wait)

    def set_lead_ms(self, ms: float) -> None:
        """The least lead of every step (``SynthConfig.target_ms``; 0 = adaptive only), now, playing
        or not. ValueError (the config's) for a lead the ring cannot hold."""
        # the producer reads self.config at each look at the ring: one reference, swapped whole
        self.config = replace(self.config, target_ms=float(ms))

    def use_kernels(self) -> None:
        """From numpy paths to the numba kernels (``engine.kernels``), once they are compiled
        (``engine.stream.warmup``): the ring and the device callback at their next call, the
        vocoder and the safety stage between two steps. The sound goes on unchanged."""
        self.ring.use_kernels()
        out = self._output
        if out is not None:
            out.use_kernels()
        self._submit(UseKernels())

    def add_listener(self, fn: Callable[[np.ndarray, int], None]) -> None:
        self._listeners = self._listeners + (fn,)

    def remove_listener(self, fn) -> None:
        self._listeners = tuple(f for f in self._listeners if f is not fn)

    # ---------------------------------------------------------------- producer side
    def _drain(self) -> None:
        pipe = self._pipeline
        while True:
            try:
                cmd = self._commands.popleft()
            except IndexError:
                return
            try:
                pipe.apply(cmd)
            except Exception as exc:  # noqa: BLE001 - a bad command must not stop the music
                self._error = f"command {type(cmd).__name__} failed: {exc}"
                continue
            hook = self.on_apply
            if hook is not None:
                hook(cmd, pipe.frame_index, self.ring.written)

    def _produce_one(self, apply_commands: bool = True) -> np.ndarray:
        if apply_commands:
            self._drain()
        return self._pipeline.step()

    def _device_block(self) -> int:
        """Samples the device takes per callback (256 before a device is open)."""
        out = self._output
        return max(out.blocksize, out.max_frames, 1) if out is not None else 256

    def _period_s(self) -> float:
        """Seconds between the device's reads."""
        return self._device_block() / self._pipeline.out_rate

    def _lead_s(self, heavy: bool) -> float:
        """How long before the device would run short the next step must start: the slowest
        recent step of its kind, the producer's slowest recent wake-up (a busy machine wakes it
        late), the configured floor and what underruns added; more before the device's first
        read (``_PREFILL_EXTRA_S``)."""
        step = self._step_s.value
        if heavy:
            # timed heavy steps where there are any; otherwise a step plus the prior's work,
            # as _prepare_ahead times it (heavy steps are rare: that work is mostly done ahead)
            step = max(self._heavy_step_s.value, step + self._prepare_s.value)
        lead = step + max(_WAKE_SLACK_S, self._wake_late.value)
        if self._clock.phase == math.inf:  # the device has not read yet: fill for the start
            lead += _PREFILL_EXTRA_S
        return max(lead, 1e-3 * self.config.target_ms) + 1e-3 * self._target_extra_ms

    def _plan(self, to_dry: float) -> tuple[bool, bool, bool, float]:
        """``(step now, apply waiting commands in it, heavy step, lead)`` with ``to_dry`` seconds left.

        A waiting command (a knob move: the prior re-runs) makes the step heavy. It goes into
        the step when a heavy step fits in the time left; otherwise this frame plays as
        computed, the command is applied right after it (``_prepare_ahead``), a frame later,
        rather than risk a click. Work ahead (``_prepare_ahead``) takes most moves before either.
        """
        heavy = self._pipeline.heavy_step_due()
        lead = self._lead_s(heavy)
        if not self._commands or heavy:
            return to_dry < lead, True, heavy, lead
        # awake already, so no wake-up slack: the step's and the prior's usual worst, and a margin
        if to_dry >= self._step_s.value + self._prepare_s.value + _WAKE_SLACK_S:
            heavy_lead = self._lead_s(True)
            return to_dry < heavy_lead, True, True, heavy_lead
        return to_dry < lead, False, False, lead

    def _time_to_dry(self, now: float) -> float:
        """Seconds until the device would find the ring short (``engine.stream.schedule``)."""
        ring = self.ring
        consumed = ring.consumed
        block = self._device_block()
        self._clock.observe(now, consumed, block)
        return self._clock.time_to_dry(now, consumed, ring.fill, block)

    def _sleep(self, seconds: float) -> None:
        """Sleep, and remember how late the producer woke (``_lead_s`` adds it)."""
        t0 = time.perf_counter()
        time.sleep(seconds)
        self._wake_late.update(time.perf_counter() - t0 - seconds)

    def _note_near_miss(self, time_to_dry_at_delivery: float) -> None:
        """Count steps that delivered with under a quarter block period to spare before the device
        would have found the ring short: how close to a click it runs. Counted, not acted on."""
        if time_to_dry_at_delivery < 0.25 * self._period_s():
            self.near_misses += 1

    def _adapt_target(self) -> None:
        """After an underrun, keep more audio queued: this machine needs more slack than planned."""
        seen = self.ring.underruns
        if seen > self._underruns_seen:
            self._underruns_seen = seen
            room = self.config.target_max_ms
            if room > 0:
                self._target_extra_ms = min(room, self._target_extra_ms + 4.0)

    def _deliver(self, chunk: np.ndarray, rate: int) -> None:
        done = self.ring.write(chunk)
        while done < chunk.size and not self._stop_producer.is_set():
            time.sleep(0.001)  # ring full: cannot happen at sane targets, but never drop audio
            done += self.ring.write(chunk[done:])
        for fn in self._listeners:
            try:
                fn(chunk, rate)
            except Exception as exc:  # noqa: BLE001
                self._listener_errors += 1
                self._error = f"audio listener failed: {exc}"

    def _prepare_ahead(self, spare_s: float) -> bool:
        """While the next step is not due, apply waiting commands and run the prior work of the
        next step (a knob's re-run, the next latent step), if there are ``spare_s`` seconds for it.

        That work then no longer lengthens the step that must deliver in time, so that step
        can start later and a knob move waits behind less audio. The output is the same as
        doing it in the step (``LatentSource.prepare``).
        """
        if spare_s < self._prepare_s.value:
            return False
        t0 = time.perf_counter()
        self._drain()
        worked = self._pipeline.prepare()
        took = time.perf_counter() - t0
        if worked:
            self._prepare_s.update(took)
        self._prepare_busy += took
        return worked

    def _producer_loop(self) -> None:
        raise_thread_priority()
        rate = self._pipeline.out_rate
        out = self._output
        busy = 0.0
        produced = 0
        window_start = time.perf_counter()
        while not self._stop_producer.is_set():
            if out is not None and self._output_live and not out.active:
                self._error = out.error or "audio output stopped"
                return
            self._adapt_target()
            now = time.perf_counter()
            to_dry = self._time_to_dry(now)
            step, apply, heavy, lead = self._plan(to_dry)
            if step:
                t0 = time.perf_counter()
                try:
                    chunk = self._produce_one(apply)
                except Exception as exc:  # noqa: BLE001 - keep the process alive, say why
                    self._error = f"synth pipeline failed: {exc}"
                    return
                t1 = time.perf_counter()
                took = t1 - t0
                busy += took
                (self._heavy_step_s if heavy else self._step_s).update(took)
                produced += chunk.size
                self._note_near_miss(self._time_to_dry(t1))
                self._deliver(chunk, rate)
            elif self._prepare_ahead(to_dry - self._lead_s(False)):
                pass  # the prior ran ahead; look at the ring again
            else:
                # wake when the step is due, or soon after the device's next read (each read
                # seen promptly keeps the clock's estimate tight), whichever is first
                wait = to_dry - lead
                next_read = self._clock.next_read_in(now, self.ring.consumed)
                if next_read >= 0:
                    wait = min(wait, next_read + 1e-4)
                self._sleep(min(_POLL_MAX_S, max(1e-4, wait)))
            now = time.perf_counter()
            if now - window_start > 0.5 and produced:
                busy += self._prepare_busy
                self._prepare_busy = 0.0
                self._cpu_load = busy / (produced / rate)
                busy, produced, window_start = 0.0, 0, now

    # ---------------------------------------------------------------- transport
    def play(self, device: str | int | None = None, blocksize: int | None = None, output=None,
             hostapi: str | None = None, prefill_timeout_s: float = 5.0) -> bool:
        """Start sound; False (with ``status().error``) when no device can play. Never raises for audio."""
        from melsynth.engine.device.output import AudioOutput, AudioUnavailable

        with self._lock:
            if self.playing:
                return True
            self._error = None
            try:
                out = output if output is not None else AudioOutput(device, blocksize, hostapi=hostapi)
            except AudioUnavailable as exc:
                self._error = str(exc)
                return False
            self._output = out
            self._drain()
            self._pipeline.set_out_rate(out.samplerate)
            freeze_heap()  # models, sessions, modules: no collector walks them while audio runs
            if self._switch_interval_before is None:
                self._switch_interval_before = sys.getswitchinterval()
                sys.setswitchinterval(min(self._switch_interval_before, _SWITCH_INTERVAL_S))
            # a sound that played before resumes mid-waveform: it fades in
            self.ring.reset(self._declick_samples(out.samplerate), fade_in=self._pipeline.samples_out > 0)
            self._underruns_seen = 0
            self._target_extra_ms = 0.0
            self.near_misses = 0
            self._clock = DeviceClock(out.samplerate)
            self._step_s.reset(_STEP_S_AT_START)
            self._heavy_step_s.reset()
            self._wake_late.reset()
            self._prepare_s.reset(_PREPARE_S_AT_START)
            self._stop_producer.clear()
            self._producer = threading.Thread(target=self._producer_loop, name="synth-producer", daemon=True)
            self._producer.start()
            # before the device reads, the clock takes a read as due now: this fills the ring
            # with what the first steps need, then the producer waits for the device
            deadline = time.perf_counter() + prefill_timeout_s
            while (self._clock.time_to_dry(0.0, 0, self.ring.fill, self._device_block()) < self._lead_s(True)
                   and time.perf_counter() < deadline):
                if not self._producer.is_alive():
                    break
                time.sleep(0.001)
            try:
                out.start(self.ring)
            except AudioUnavailable as exc:
                self._error = str(exc)
                self._stop_locked()
                return False
            self._output_live = True
            return True

    def _declick_samples(self, rate: int) -> int:
        return int(round(1e-3 * self.config.declick_ms * rate))

    def _fade_out(self, out) -> None:
        """Let the device fade to silence (``RingBuffer.request_stop``) before its stream stops:
        a stream cut mid-waveform clicks. The producer keeps the ring filled meanwhile."""
        self.ring.request_stop()
        deadline = time.perf_counter() + self.ring.fade_samples / out.samplerate + 4 * self._period_s() + 0.02
        while not self.ring.stop_faded and out.active and time.perf_counter() < deadline:
            time.sleep(0.001)

    def _stop_locked(self) -> None:
        out = self._output
        if out is not None and self._output_live and out.self_clocked and out.active:
            self._fade_out(out)
        self._output_live = False
        out, self._output = self._output, None
        if out is not None:
            out.stop()
            self._last_output = out
        self._stop_producer.set()
        if self._producer is not None:
            self._producer.join(timeout=5)
            self._producer = None
        if self._switch_interval_before is not None:
            sys.setswitchinterval(self._switch_interval_before)
            self._switch_interval_before = None

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def restart(self, device: str | int | None = None, blocksize: int | None = None, **kw) -> bool:
        self.stop()
        return self.play(device, blocksize, **kw)

    def close(self) -> None:
        """Stop, and free native state (soxr) now rather than at interpreter exit; ``play`` still works."""
        self.stop()
        self._pipeline.resampler.close()

    def __enter__(self) -> "Synth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- observation
    def output_latency_s(self) -> float:
        """From a sample leaving the pipeline to the device playing it: the queued ring, the
        resampler's delay and the device's own output latency."""
        out = self._output
        pipe = self._pipeline
        return (self.ring.fill + pipe.resampler.delay_samples) / pipe.out_rate + (out.latency_s if out else 0.0)

    def heard_lag_frames(self) -> int:
        """How many of the newest mel frames (``tap``) are not heard yet: the vocoder's own
        latency (93 ms for the classical one) plus ``output_latency_s``. A live view that holds
        them back (``tap.frames_since(counter, lag)``) shows what plays, not what is coming."""
        spec = self.spec
        vocoder_s = self._pipeline.chain.vocoder.latency_samples / spec.sample_rate
        return int(round((vocoder_s + self.output_latency_s()) * spec.frame_rate))

    def status(self) -> SynthStatus:
        out = self._output
        pipe = self._pipeline
        rate = pipe.out_rate
        err = self._error
        if out is not None and out.error and not err:
            err = out.error
        if not err and pipe.chain.last_error:
            err = pipe.chain.last_error
        latency = self.output_latency_s()
        return SynthStatus(
            playing=self.playing, device=out.name if out is not None else None, sample_rate=rate,
            blocksize=(out.blocksize or out.max_frames) if out is not None else 0,
            underruns=self.ring.underruns, latency_ms=1e3 * latency, cpu_load=self._cpu_load, error=err,
            bundle=self.bundle.name, vocoder=self.vocoder_name, source=pipe.source,
            frames_produced=pipe.frame_index, swapping=pipe.old_chain is not None or self._swap_pending > 0,
            nonfinite_samples=pipe.safety.nonfinite_samples, listener_errors=self._listener_errors,
            lead_ms=1e3 * self._lead_s(False))
