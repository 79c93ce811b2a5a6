"""``melsynth bench``: throughput, knob-to-sound latency, CPU use and underruns of the engine.

Figures (all models on 1 intra-op + 1 inter-op thread):

* ``prior_rtf``            prior streaming, one latent step per call, x real time
* ``vocoder_offline_rtf``  vocoder offline path (one graph pass) on a whole mel
* ``vocoder_stream_rtf``   vocoder streaming at 1 frame per push
* ``chain_stream_rtf``     the whole pipeline (latent walk -> prior -> vocoder -> safety ->
                           resampler to 48 kHz) at the engine's step size, x real time
* each ``*_rtf`` also as ``*_rtf_cpu``: audio time / the thread's CPU time, which other
  processes on a shared machine cannot inflate (the wall-clock figure is the honest
  one on an idle machine; ``load_average`` says how idle it was)
* ``latency_ms_median/max`` knob-to-sound latency over ``moves`` random knob moves while
  playing into a 48 kHz device with 256-sample blocks (a real-time fake device: wall
  clock ticks, real scheduling). For each move: from ``set_controls`` to the callback
  that hands the first sample computed with it to the device (ring position of the
  step that applied it, plus the resampler's pending samples), plus the device's
  reported output latency::

      set_controls(t0) -> producer drains it at a step, output lands at ring position P
      device callback k covers ring [pos_k, pos_k + 256): first k with pos_k + 256 > P
      latency = t_k - t0 + device_latency

* ``latency_ms_frame_heard_median`` the median plus the vocoder's own latency: when the first
  mel frame made with the move is centred in what plays (the classical vocoder's RTISI-LA
  look-ahead is most of it)
* ``latency_lead_ms_end`` / ``soak_lead_ms_end``: how long before the device would find the
  ring short the producer starts a vocoder-only step, at the end of the run (its slowest
  recent step plus its slowest recent wake-up, and 4 ms per underrun; ``engine.stream.schedule``)
* ``latency_near_misses`` / ``soak_near_misses``: steps delivered with under a quarter block
  period to spare; ``*_device_bursts``: the device took two blocks within one period
* ``cpu_producer`` producer busy time / audio time; ``cpu_process`` process CPU / wall
  (all threads: producer, fake device, this one) while playing.
* ``soak_underruns`` callbacks that found the ring short during ``--soak`` seconds on a
  real device (``--device``) or the fake real-time device; ``--hog`` runs a busy process
  (a spinning Python loop) beside it; ``--gil-load`` holds the GIL in this process for 10 ms
  of every 40 ms (a busy GUI thread); ``--python-callback`` runs a real device's Python
  callback instead of the native one. ``soak_host_status_flags``: callbacks where the host
  reported trouble of its own (e.g. a JACK xrun: the callback itself came late).
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np

from melsynth.engine.device.output import AudioOutput, FakeOutput
from melsynth.engine.runtime.bundle import ModelBundle
from melsynth.engine.stream.chain import load_models
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.messages import SetControls
from melsynth.engine.stream.pipeline import Pipeline, as_bundle
from melsynth.engine.stream.synth import Synth

BENCH_RATE = 48000
BENCH_BLOCK = 256


def _rtf(audio_seconds: float, wall: float) -> float:
    return audio_seconds / wall if wall > 0 else float("inf")


class _Timer:
    """Wall time and this thread's CPU time of a block (CPU time is what a shared machine cannot inflate)."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.thread_time() - self.cpu0


def _both(out: dict, key: str, audio_seconds: float, timer: _Timer) -> None:
    out[key] = _rtf(audio_seconds, timer.wall)
    out[key + "_cpu"] = _rtf(audio_seconds, timer.cpu)


def bench_models(bundle: ModelBundle, vocoder: str | None = None, seconds: float = 10.0,
                 loader=load_models) -> dict:
    """Per-stage throughput of the prior and the vocoder, x real time."""
    spec = bundle.mel
    name = vocoder or bundle.default_vocoder
    prior, voc = loader(bundle, name)
    frames = max(8, int(seconds * spec.frame_rate))
    rng = np.random.default_rng(0)
    out: dict = {"vocoder": name, "vocoder_kind": getattr(voc, "kind", "?"), "seconds_per_stage": seconds}
    if prior is not None:
        steps = max(2, frames // prior.latent_frames)
        z = rng.standard_normal((steps, prior.latent_size)).astype(np.float32)
        prior.reset()
        prior.step(z[0])
        with _Timer() as t:
            mels = [prior.step(zk) for zk in z]
        _both(out, "prior_rtf", steps * prior.latent_frames / spec.frame_rate, t)
        mel = spec.denormalize(np.concatenate(mels, axis=1)).astype(np.float32)
    else:
        out["prior_rtf"] = None
        mel = rng.uniform(-4, 0, (spec.n_mels, frames)).astype(np.float32)
    audio_s = mel.shape[1] / spec.frame_rate
    voc.offline(mel[:, :8])  # warm up
    with _Timer() as t:
        voc.offline(mel)
    _both(out, "vocoder_offline_rtf", audio_s, t)
    voc.reset()
    with _Timer() as t:
        for i in range(mel.shape[1]):
            voc.push(mel[:, i:i + 1])
    _both(out, "vocoder_stream_rtf", audio_s, t)
    voc.flush()
    out["vocoder_latency_ms"] = 1e3 * voc.latency_samples / spec.sample_rate
    return out


def bench_chain(bundle: ModelBundle, vocoder: str | None = None, seconds: float = 10.0,
                config: SynthConfig = SynthConfig(), loader=load_models) -> dict:
    """The whole streaming pipeline into a 48 kHz device rate, x real time."""
    controls = Controls(seed=1, walk_seed=1, walk_speed=0.2, walk_spread=1.0)
    pipe = Pipeline(bundle, vocoder, config, controls, BENCH_RATE, loader)
    pipe.step()
    n = 0
    with _Timer() as t:
        while n < seconds * BENCH_RATE:
            n += pipe.step().size
    out = {"frames_per_step": config.frames_per_step}
    _both(out, "chain_stream_rtf", n / BENCH_RATE, t)
    return out


class KnobLatencyProbe:
    """Knob-to-sound latency of the moves made while ``synth`` plays into ``out`` (a FakeOutput
    with ``log_blocks``): from ``submit`` (just before ``set_controls``) to the callback that
    hands the device the first sample computed with the move, plus the device's reported
    output latency (see the module docstring)."""

    def __init__(self, synth: Synth, out: FakeOutput):
        self.synth, self.out = synth, out
        self.submitted: dict[int, float] = {}
        self.applied: dict[int, int] = {}
        self._keep: list = []  # the snapshots stay alive, so their id()s stay unique
        synth.on_apply = self._on_apply

    def submit(self, controls: Controls) -> None:
        self._keep.append(controls)
        self.submitted[id(controls)] = time.perf_counter()

    def _on_apply(self, cmd, frame, ring_pos) -> None:
        key = id(cmd.controls) if isinstance(cmd, SetControls) else None
        if key in self.submitted and key not in self.applied:
            self.applied[key] = ring_pos + int(np.ceil(self.synth._pipeline.resampler.delay_samples))

    def latencies_ms(self) -> np.ndarray:
        out = self.out
        blocks = out.callbacks
        times, positions = out.times[:blocks], out.positions[:blocks]
        lat = []
        for key, t0 in self.submitted.items():
            pos = self.applied.get(key)
            if pos is None:
                continue
            k = int(np.searchsorted(positions + out.blocksize, pos, side="right"))
            if k < blocks:
                lat.append(times[k] - t0 + out.latency_s)
        return 1e3 * np.asarray(lat)


def latency_figures(lat_ms: np.ndarray) -> dict:
    """``latency_ms_median`` / ``_p90`` / ``_max`` and ``latency_moves`` of some latencies."""
    have = lat_ms.size > 0
    return {
        "latency_ms_median": float(np.median(lat_ms)) if have else None,
        "latency_ms_p90": float(np.percentile(lat_ms, 90)) if have else None,
        "latency_ms_max": float(np.max(lat_ms)) if have else None,
        "latency_moves": int(lat_ms.size),
    }


def bench_latency(bundle: ModelBundle, vocoder: str | None = None, moves: int = 200,
                  config: SynthConfig = SynthConfig(), loader=load_models, seed: int = 0) -> dict:
    """Knob-to-sound latency on the engine's own timeline (see the module docstring)."""
    rng = np.random.default_rng(seed)
    controls = Controls(seed=1, walk_seed=1, walk_speed=0.2, walk_spread=1.0)
    synth = Synth(bundle, vocoder, config, controls, loader)
    n_dirs = max(1, len(synth.directions))
    mean_gap = 0.035
    duration = moves * mean_gap * 1.6 + 2.0
    out = FakeOutput(BENCH_RATE, BENCH_BLOCK, realtime=True,
                     log_blocks=int(duration * BENCH_RATE / BENCH_BLOCK) + 1000, name="fake 48 kHz / 256")
    probe = KnobLatencyProbe(synth, out)
    if not synth.play(output=out):
        raise RuntimeError(synth.status().error)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        time.sleep(0.3)
        c = controls
        for _ in range(moves):
            time.sleep(float(rng.uniform(0.4, 1.6) * mean_gap))
            c = c.with_knob(int(rng.integers(0, n_dirs)), float(rng.uniform(-2.5, 2.5)))
            probe.submit(c)
            synth.set_controls(c)
        time.sleep(0.3)
    finally:
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        status = synth.status()
        synth.close()   # frees soxr now: nanobind reports native state alive at exit as leaked
    return {
        **latency_figures(probe.latencies_ms()),
        "latency_device_ms": 1e3 * out.latency_s,
        "latency_device": f"{out.name}: one block reported as output latency",
        "latency_underruns": synth.ring.underruns,
        "latency_near_misses": synth.near_misses,
        "latency_device_bursts": synth.device_bursts,
        "latency_lead_ms_end": status.lead_ms,
        "cpu_producer": status.cpu_load,
        "cpu_process": cpu,
    }


def start_hog() -> subprocess.Popen:
    """A busy process for the other core (a spinning Python loop)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


GIL_LOAD_S = (0.010, 0.040)  # --gil-load: this thread runs Python for 10 ms of every 40 ms


def _hold_gil(seconds: float) -> None:
    """Pure Python for ``seconds``: holds the GIL as a busy GUI thread does (painting, layout)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def bench_soak(bundle: ModelBundle, seconds: float, vocoder: str | None = None, device=None, hog: bool = False,
               config: SynthConfig = SynthConfig(), loader=load_models, hostapi: str | None = None,
               gil_load: bool = False, python_callback: bool = False) -> dict:
    """Play ``seconds`` with a walking latent and a knob move a second; count underruns.

    ``gil_load``: meanwhile this thread holds the GIL for 10 ms of every 40 ms, as the app's GUI
    thread may. ``python_callback``: a real device runs the Python callback (the fallback where
    numba is missing) instead of the native one, for comparison.
    """
    controls = Controls(seed=2, walk_seed=2, walk_speed=0.3, walk_spread=1.0)
    synth = Synth(bundle, vocoder, config, controls, loader)
    if device is not None or hostapi:
        output = AudioOutput(device, hostapi=hostapi, native=False) if python_callback else None
    else:
        output = FakeOutput(BENCH_RATE, BENCH_BLOCK, realtime=True, name="fake 48 kHz / 256")
    hog_proc = start_hog() if hog else None
    rng = np.random.default_rng(1)
    busy, idle = GIL_LOAD_S
    try:
        if not synth.play(device, output=output, hostapi=hostapi):
            return {"soak_seconds": 0, "soak_error": synth.status().error}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        c = controls
        next_move = wall0 + 1.0
        while time.perf_counter() - wall0 < seconds:
            if gil_load:
                _hold_gil(busy)
                time.sleep(idle - busy)
            else:
                time.sleep(max(0.0, next_move - time.perf_counter()))
            if time.perf_counter() < next_move:
                continue
            next_move += 1.0
            c = c.with_knob(int(rng.integers(0, max(1, len(synth.directions)))), float(rng.uniform(-2, 2)))
            synth.set_controls(c)
            if not synth.playing:
                break
        wall = time.perf_counter() - wall0
        cpu = (time.process_time() - cpu0) / wall
        st = synth.status()
        ring = synth.ring
        at = ring.underrun_seconds(st.sample_rate)
        dev = synth.output
        flags = dev.status_flags if dev is not None else 0
        native = bool(getattr(dev, "native", False))
        synth.close()
    finally:
        if hog_proc is not None:
            hog_proc.kill()
            hog_proc.wait()
    return {"soak_seconds": wall, "soak_underruns": st.underruns, "soak_host_status_flags": flags,
            "soak_device": st.device, "soak_rate": st.sample_rate, "soak_blocksize": st.blocksize,
            "soak_hog": hog, "soak_gil_load": gil_load, "soak_native_callback": native, "soak_lead_ms_end": st.lead_ms, "soak_near_misses": synth.near_misses,
            "soak_device_bursts": synth.device_bursts, "soak_cpu_producer": st.cpu_load,
            "soak_cpu_process": cpu, "soak_error": st.error,
            # when, in seconds of audio played (None: no underrun): start-up gap or later stall?
            **{f"soak_{k}_underrun_s": v for k, v in at.items()}}


def run_bench(bundle=None, vocoder: str | None = None, seconds: float = 10.0, moves: int = 200,
              soak: float = 0.0, hog: bool = False, device=None, hostapi: str | None = None,
              config: SynthConfig = SynthConfig(), loader=load_models, gil_load: bool = False,
              python_callback: bool = False) -> dict:
    bundle = as_bundle(bundle)
    import os

    out: dict = {"bundle": str(bundle.root), "bundle_name": bundle.name,
                 "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    out.update(bench_models(bundle, vocoder, seconds, loader))
    out.update(bench_chain(bundle, vocoder, seconds, config, loader))
    out.update(bench_latency(bundle, vocoder, moves, config, loader))
    if out.get("latency_ms_median") is not None:
        # latency_ms_* ends at the first sample computed with the move; the vocoder's look-ahead
        # (its latency_samples) passes before the first frame made with it is centred in what plays
        out["latency_ms_frame_heard_median"] = out["latency_ms_median"] + out["vocoder_latency_ms"]
    if soak > 0:
        out.update(bench_soak(bundle, soak, vocoder, device, hog, config, loader, hostapi, gil_load, python_callback))
    out["config"] = asdict(config)
    return out
