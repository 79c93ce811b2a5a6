"""``Chain``: one bundle's generators (the prior behind its latent source, and a vocoder)
with their streaming state; ``load_models`` builds them from a bundle."""
from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from melsynth.engine.runtime.bundle import ModelBundle
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.sources import LatentSource, SilentSource

ModelLoader = Callable[[ModelBundle, str], tuple]  # (bundle, vocoder name) -> (prior | None, vocoder)


def load_models(bundle: ModelBundle, vocoder: str, quality: str | None = None) -> tuple:
    """The real loader: ``(Prior | None, Vocoder)`` from a bundle (engine.runtime.prior / engine.runtime.vocoder);
    ``quality``: the classical vocoder's phase quality (``engine.dsp.quality``; None = the bundle's)."""
    from melsynth.engine.runtime.vocoder import load_vocoder

    prior = None
    if bundle.prior is not None:
        from melsynth.engine.runtime.prior import load_prior

        prior = load_prior(bundle)
    return prior, load_vocoder(bundle, vocoder, quality)


def quality_loader(loader: ModelLoader, quality: str | None) -> ModelLoader:
    """``loader`` building classical vocoders at phase quality ``quality`` (``engine.dsp.quality``);
    None or "realtime" (the bundle's own settings): ``loader`` itself, which need not take one."""
    if quality is None or quality == "realtime":
        return loader
    return functools.partial(loader, quality=quality)


class Chain:
    """A bundle's prior (through its latent source) and vocoder, with their streaming state."""

    def __init__(self, bundle: ModelBundle, vocoder_name: str, prior, vocoder, controls: Controls,
                 config: SynthConfig):
        self.bundle = bundle
        self.vocoder_name = vocoder_name
        self.prior = prior
        self.vocoder = vocoder
        self.latent = (LatentSource(prior, bundle.mel, controls, config.knob_crossfade_frames)
                       if prior is not None else SilentSource(bundle.mel))
        self.used = False
        self.errors = 0  # vocoder calls that raised (answered with silence, vocoder reset)
        self.last_error: str | None = None

    @classmethod
    def build(cls, bundle: ModelBundle, vocoder_name: str | None, controls: Controls, config: SynthConfig,
              loader: ModelLoader) -> "Chain":
        name = vocoder_name or bundle.default_vocoder
        bundle.vocoder(name)  # BundleError naming the bundle if there is no such vocoder
        prior, vocoder = loader(bundle, name)
        chain = cls(bundle, name, prior, vocoder, controls, config)
        chain.warm_up()
        return chain

    def warm_up(self) -> None:
        """Run each model once and reset it, here rather than in the producer's first step.

        First calls pay for lazy set-up (onnxruntime's first run, filterbanks, imports):
        seconds on a cold start, which would otherwise be a gap at play or at a hot-swap.
        """
        self.vocoder.push(np.full((self.bundle.mel.n_mels, 1), self.bundle.mel.log_min, dtype=np.float32))
        self.vocoder.reset()
        if self.prior is not None:
            self.prior.step(np.zeros(self.prior.latent_size, dtype=np.float32))
            self.prior.reset()

    def use_kernels(self) -> None:
        """The vocoder's numba kernels from its next push (``engine.kernels``)."""
        use = getattr(self.vocoder, "use_kernels", None)  # test fakes have none
        if use is not None:
            use()

    @property
    def directions(self) -> tuple:
        return tuple(self.prior.directions) if self.prior is not None else ()

    def push(self, mel: np.ndarray) -> np.ndarray:
        """``(n_mels, k) log10 -> (k * hop,)`` float; a vocoder that fails or emits garbage is reset."""
        want = mel.shape[1] * self.bundle.mel.hop_length
        try:
            audio = np.asarray(self.vocoder.push(mel), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001 - a model failing once must not end the performance
            self.errors += 1
            self.last_error = f"vocoder {self.vocoder_name!r} failed: {exc}"
            self.vocoder.reset()
            return np.zeros(want, dtype=np.float32)
        # one reduction catches NaN and inf (and absurd magnitudes, which are garbage too)
        if audio.shape != (want,) or not math.isfinite(float(np.add.reduce(audio, dtype=np.float64))):
            # Non-finite state would poison every later chunk: start the vocoder afresh.
            self.vocoder.reset()
            fixed = np.zeros(want, dtype=np.float32)
            if audio.ndim == 1:
                n = min(want, audio.size)
                fixed[:n] = np.nan_to_num(audio[:n], nan=0.0, posinf=0.0, neginf=0.0)
            return fixed
        return audio
