"""``Pipeline``: source -> prior -> vocoder -> safety -> resampler, one deterministic step at a
time; ``render_offline`` drives it without a device (``engine.stream.synth.Synth`` with one)."""
from __future__ import annotations

import collections
from typing import Any

import numpy as np

from melsynth.engine import kernels
from melsynth.engine.dsp.features import MelSpec
from melsynth.engine.dsp.resample import StreamResampler
from melsynth.engine.dsp.safety import SafetyStage
from melsynth.engine.runtime.bundle import BundleError, ModelBundle, default_bundle_path, load_bundle
from melsynth.engine.stream.chain import Chain, ModelLoader, load_models, quality_loader
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.messages import EditCanvas, SetCanvas, SetControls, SetFile, SwapChain, UseKernels
from melsynth.engine.stream.sources import CanvasSource, FileSource
from melsynth.engine.stream.tap import MelTap


def _raised_cosine(start: int, n: int, length: int) -> np.ndarray:
    """Weights of samples ``start .. start+n-1`` of a 0 -> 1 raised-cosine fade of ``length``."""
    t = (np.arange(start, start + n, dtype=np.float64) + 1.0) / length
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(t, 0.0, 1.0))


class Pipeline:
    """source -> prior -> vocoder -> safety -> resampler: deterministic, single-threaded.

    The producer thread and ``render_offline`` both drive exactly this class, so a
    streamed session and its offline replay produce the same samples::

        step():  apply commands due -> mel (256, k) from the source(s) -> vocoder(s)
                 -> crossfades -> safety -> resample -> (k * hop * out/in,) device samples

    Crossfades: a source switch blends the two sources' log-mel frames over
    ``source_crossfade_frames`` (one vocoder, no phase problems); a hot-swap runs the
    old and the new chain side by side and blends their audio with a raised cosine
    over ``swap_crossfade_ms``, after which the old chain is dropped.
    """

    def __init__(self, bundle: ModelBundle, vocoder: str | None = None, config: SynthConfig = SynthConfig(),
                 controls: Controls | None = None, out_rate: int | None = None,
                 loader: ModelLoader = load_models, chain: Chain | None = None):
        self.config = config
        self.controls = controls or Controls()
        self._gain = self.controls.safe_gain
        self.loader = loader
        self.chain = chain or Chain.build(bundle, vocoder, self.controls, config, loader)
        self.chain.used = True
        self.spec: MelSpec = self.chain.bundle.mel
        self.old_chain: Chain | None = None
        self._swap_pos = 0
        self._swap_len = max(1, int(round(config.swap_crossfade_ms * 1e-3 * self.spec.sample_rate)))
        self.canvas = CanvasSource(self.spec)
        self.file = FileSource(self.spec)
        self.source = self.controls.source
        self._prev_source: str | None = None
        self._source_fade_pos = 0
        self.safety = SafetyStage(self.spec.sample_rate, config.dc_cutoff_hz, config.limiter_threshold)
        self.out_rate = int(out_rate or self.spec.sample_rate)
        self.resampler = StreamResampler(self.spec.sample_rate, self.out_rate)
        self.tap = MelTap(self.spec.n_mels, config.tap_frames)
        self.frame_index = 0
        self.samples_out = 0
        self.events: list[tuple[int, Any]] = []

    # ---------------------------------------------------------------- commands
    def set_out_rate(self, rate: int) -> None:
        if int(rate) != self.out_rate:
            self.out_rate = int(rate)
            self.resampler = StreamResampler(self.spec.sample_rate, self.out_rate)

    def apply(self, cmd) -> None:
        if self.config.record_events:
            self.events.append((self.frame_index, cmd))
        if isinstance(cmd, SetControls):
            self._set_controls(cmd.controls)
        elif isinstance(cmd, EditCanvas):
            self.canvas.edit(cmd.start_frame, cmd.values, cmd.bin_start)
        elif isinstance(cmd, SetCanvas):
            self.canvas.set_frames(cmd.log_mel)
        elif isinstance(cmd, SetFile):
            self.file.set_frames(cmd.log_mel, keep_playhead=False)
            self.file.path = cmd.path
        elif isinstance(cmd, SwapChain):
            self._swap(cmd)
        elif isinstance(cmd, UseKernels):
            self.use_kernels()
        else:
            raise TypeError(f"unknown synth command {cmd!r}")

    def _set_controls(self, controls: Controls) -> None:
        self.controls = controls
        self._gain = controls.safe_gain
        self.chain.latent.set_controls(controls)
        if self.old_chain is not None:
            self.old_chain.latent.set_controls(controls)
        if controls.source != self.source:
            if self._prev_source is not None and self._prev_source == controls.source:
                # switching back mid-fade: reverse the fade from where it is
                self._source_fade_pos = max(0, self.config.source_crossfade_frames - self._source_fade_pos - 1)
            else:
                self._source_fade_pos = 0
            self._prev_source = self.source
            self.source = controls.source

    def use_kernels(self) -> None:
        """The numba kernels from the next step on (``engine.kernels``)."""
        for chain in (self.chain, self.old_chain):
            if chain is not None:
                chain.use_kernels()
        self.safety.use_kernels()

    def _swap(self, cmd: SwapChain) -> None:
        chain = cmd.loaded
        if chain is None or chain.used:  # replay, or a command applied twice: build afresh
            chain = Chain.build(cmd.bundle, cmd.vocoder, self.controls, self.config,
                                quality_loader(self.loader, cmd.quality))
        chain.used = True
        if not kernels.deferred():  # built while deferred, swapped in after the kernels came
            chain.use_kernels()
        chain.latent.set_controls(self.controls)
        if chain.bundle.mel != self.spec:
            raise BundleError(chain.bundle.json_path, "mel",
                              "hot-swap needs the same MelSpec as the playing bundle")
        # a swap during a swap: the chain fading out is dropped, the current one fades out
        self.old_chain = self.chain
        self.chain = chain
        self._swap_pos = 0

    # ---------------------------------------------------------------- one step
    def _mel(self, chain: Chain, shared: dict, k: int) -> np.ndarray:
        def frames(name: str) -> np.ndarray:
            if name == "latent":
                return chain.latent.next_frames(k)
            if name not in shared:
                shared[name] = (self.canvas if name == "canvas" else self.file).next_frames(k)
            return shared[name]

        cur = frames(self.source)
        if self._prev_source is None:
            return cur
        prev = frames(self._prev_source)
        n = self.config.source_crossfade_frames
        w = ((self._source_fade_pos + np.arange(k) + 1.0) / (n + 1.0)).clip(0.0, 1.0).astype(np.float32)
        return prev + (cur - prev) * w[None, :]

    def heavy_step_due(self) -> bool:
        """Whether the next step runs the prior (a latent step, a knob's re-run) or two chains
        (a hot-swap): such a step takes several times a vocoder-only one."""
        if self.old_chain is not None:
            return True
        if self.source != "latent" and self._prev_source != "latent":
            return False
        return self.chain.latent.prior_due(self.config.frames_per_step)

    def prepare(self) -> bool:
        """Prior work of the next step, done ahead (``LatentSource.prepare``); True if there was any.

        Only while the latent source is being heard: a source that is not pulled must not
        advance, or a later switch back would start elsewhere than an offline replay does.
        """
        if self.source != "latent" and self._prev_source != "latent":
            return False
        return self.chain.latent.prepare()

    def step(self) -> np.ndarray:
        """One producer step: ``frames_per_step`` mel frames -> device-rate float32 samples."""
        k = self.config.frames_per_step
        shared: dict = {}
        mel = self._mel(self.chain, shared, k)
        audio = self.chain.push(mel)
        if self.old_chain is not None:
            old = self.old_chain.push(self._mel(self.old_chain, shared, k))
            w = _raised_cosine(self._swap_pos, audio.size, self._swap_len)
            audio = old + (audio - old) * w
            self._swap_pos += audio.size
            if self._swap_pos >= self._swap_len:
                self.old_chain = None
        if self._prev_source is not None:
            self._source_fade_pos += k
            if self._source_fade_pos >= self.config.source_crossfade_frames:
                self._prev_source = None
        safe = self.safety.process(audio, self._gain)
        out = self.resampler.process(safe)
        self.tap.push(mel, out)
        self.frame_index += k
        self.samples_out += out.size
        return out


def as_bundle(bundle) -> ModelBundle:
    if isinstance(bundle, ModelBundle):
        return bundle
    return load_bundle(bundle if bundle is not None else default_bundle_path())


def render_offline(bundle, seconds: float, controls: Controls | None = None, events=(),
                   vocoder: str | None = None, config: SynthConfig = SynthConfig(),
                   sample_rate: int | None = None, loader: ModelLoader = load_models,
                   n_samples: int | None = None) -> np.ndarray:
    """Run the streaming pipeline without a device: ``-> (samples,)`` float32 in [-1, 1].

    ``events``: ``(frame_index, command)`` pairs (e.g. ``Synth.event_log()``), applied
    at the start of the step that begins at that frame, in order. ``sample_rate``
    None = the model rate (no resampling). ``n_samples`` overrides ``seconds``.
    """
    bundle = as_bundle(bundle)
    pipe = Pipeline(bundle, vocoder, config, controls, sample_rate, loader)
    rate = pipe.out_rate
    total = int(n_samples) if n_samples is not None else int(round(float(seconds) * rate))
    pending = collections.deque(sorted(events, key=lambda e: e[0]) if events else ())
    chunks, have = [], 0
    while have < total:
        while pending and pending[0][0] <= pipe.frame_index:
            pipe.apply(pending.popleft()[1])
        out = pipe.step()
        chunks.append(out)
        have += out.size
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return audio[:total].astype(np.float32, copy=False)
