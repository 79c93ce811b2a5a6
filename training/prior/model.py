"""The prior's generator: a latent sequence -> normalised log-mel frames.

One latent vector per latent step of ``latent_frames`` frames (16 frames = 0.37 s
by default). The network is causal end to end (``training.nn.conv`` layers,
left context carried as explicit state), so it streams one latent step at a
time and the first frame of a step already hears that step's latent::

    z       (B, latent, S)          one vector per step, N(0, I)
     | [front: StreamConv1d (+ SlowLatent, PhraseLatent) + ResBlocks -> (B, code, S)]   two-level prior only
     |                               (training.prior.twolevel)
     | StreamConv1d(kernel 2)        also sees the previous latent: transitions
     | ResBlock x n                  latent rate
     | PhaseUpsample x4 + ResBlocks  4 sub-steps per step
     | PhaseUpsample x4 + ResBlocks  frame rate
     | StreamConv1d -> tanh          or -> k PCA coefficients -> fixed decode -> clip
    mel     (B, n_mels, S * 16)      MelSpec.normalize space, [-1, 1]

A phase upsampler is a transposed convolution with kernel == stride: output
frames ``t*f .. t*f+f-1`` depend on input ``t`` alone (one learned map per
phase), so it has no state and no latency; the causal convolutions after it
supply the context::

    input     |  a  |  b  |
    output    |a0 a1 a2 a3|b0 b1 b2 b3|

``forward(z)`` is the offline path (zero left context); ``forward(z, state)``
continues from a ``StreamState``. Both run the same layers, so streaming
equals offline to float rounding.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from melsynth.training.nn.conv import (StreamConv1d, StreamConvTranspose1d, StreamingModule, StreamState,
                                       initial_state, stateful_layers)
from melsynth.training.prior.config import GeneratorConfig
from melsynth.training.prior.latents import hold_phrase
from melsynth.training.prior.pca import MelPCA

SLOPE = 0.2


class ResBlock(nn.Module):
    """``x + conv1x1(lrelu(causal_conv_dilated(lrelu(x))))``: ``(batch, C, T) -> (batch, C, T)``."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.dilated = StreamConv1d(channels, channels, kernel_size, dilation=dilation, weight_norm=True)
        self.pointwise = StreamConv1d(channels, channels, 1, weight_norm=True)

    def forward(self, x: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        h = self.dilated(F.leaky_relu(x, SLOPE), state)
        return x + self.pointwise(F.leaky_relu(h, SLOPE), state)


class SlowLatent(nn.Module):
    """``(batch, latent, S) -> (batch, channels, S)``: causal running averages of the noise, over seconds.

    Real music keeps its loudness, register and instrument for many seconds; a front fed
    i.i.d. noise per step has to integrate dozens of inputs to hold anything that long,
    and a GAN finds that slowly. This path hands it the integrals: channel ``c`` starts as
    an exponential average (decay ``a_c``, time constants spread from 2 to ``steps / 2``
    steps) of one random direction of the noise, over the last ``steps`` steps, scaled to
    unit variance for N(0, I) noise. The weights stay trainable; the state is ``steps - 1``
    latent vectors::

        step      t-steps+1  ...  t-2   t-1   t
        weight    a^(steps-1) ... a^2   a^1   1     (x one direction, / norm)

    ``out`` is the zero-initialised map into the front's channels, so a front that gains this
    path starts as exactly the front it was (a warm start keeps its training).
    """

    def __init__(self, latent_size: int, channels: int, steps: int, out_channels: int):
        super().__init__()
        self.average = StreamConv1d(latent_size, channels, steps, bias=False)
        self.out = StreamConv1d(channels, out_channels, 1)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            directions = F.normalize(torch.randn(channels, latent_size, generator=gen), dim=1)
            taus = torch.logspace(torch.log10(torch.tensor(2.0)), torch.log10(torch.tensor(max(steps / 2, 2.0))),
                                  channels)
            decay = torch.exp(-1.0 / taus)                                      # (channels,)
            lags = torch.arange(steps - 1, -1, -1, dtype=torch.float32)        # tap k sees step t - lag
            taps = decay[:, None] ** lags[None, :]                             # (channels, steps)
            taps = taps / taps.norm(dim=1, keepdim=True)
            self.average.conv.weight.copy_(directions[:, :, None] * taps[:, None, :])
            self.out.conv.weight.zero_()
            self.out.conv.bias.zero_()

    def forward(self, z: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        return self.out(self.average(z, state), state)


class PhraseLatent(nn.Module):
    """``(batch, phrase, S) -> [(batch, channels, S)] * count``: the held phrase latent as per-layer offsets.

    Real windows of one piece share a loudness, register and instrument; windows of the
    front fed i.i.d. noise per step average them away (their band means vary about 60 %
    as much as real ones). The phrase latent is drawn once per phrase and held, so the
    front only has to map it, not integrate it::

        z        | fast (latent - phrase): new every step | phrase: held for the phrase |
                        |                                         |
                   input conv                          1x1 -> lrelu -> 1x1 (zero init)
                        |                                         |
                        x  + offset[0]  -> block 1 + offset[1] -> ... -> block n + offset[n]

    Pointwise in time: no state, no latency. The last map starts at zero, so a front that
    gains this path starts as exactly the front it was (a branch keeps its training).
    """

    def __init__(self, phrase_size: int, channels: int, count: int, hidden: int = 256):
        super().__init__()
        self.channels, self.count = channels, count
        self.hidden = StreamConv1d(phrase_size, hidden, 1, weight_norm=True)
        self.out = StreamConv1d(hidden, channels * count, 1)
        with torch.no_grad():
            self.out.conv.weight.zero_()
            self.out.conv.bias.zero_()

    def forward(self, phrase: torch.Tensor, state: StreamState | None = None) -> list[torch.Tensor]:
        h = self.out(F.leaky_relu(self.hidden(phrase, state), SLOPE), state)
        return list(torch.split(h, self.channels, dim=1))


class Front(nn.Module):
    """``(batch, latent, S) -> (batch, code_size, S)``: noise to autoencoder codes, causal, at the latent rate.

    The two-level prior's GAN (``training.prior.twolevel``): it learns which codes follow which, so
    the decoder after it plays phrases rather than a fresh random code every step.
    """

    def __init__(self, config: GeneratorConfig):
        super().__init__()
        c = config.front_channels
        self.fast_size = config.latent_size - config.phrase_size
        self.input = StreamConv1d(self.fast_size, c, config.kernel_size, weight_norm=True)
        self.slow = (SlowLatent(self.fast_size, config.front_slow_channels, config.front_slow_steps, c)
                     if config.front_slow_channels else None)
        self.blocks = nn.ModuleList(ResBlock(c, config.kernel_size, d) for d in config.front_dilations)
        self.phrase = (PhraseLatent(config.phrase_size, c, 1 + len(self.blocks)) if config.phrase_size else None)
        self.output = StreamConv1d(c, config.code_size, 1, weight_norm=True)

    def forward(self, z: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        fast = z[:, :self.fast_size]
        x = self.input(fast, state)
        if self.slow is not None:
            x = x + self.slow(fast, state)
        offsets = self.phrase(z[:, self.fast_size:], state) if self.phrase is not None else None
        if offsets is not None:
            x = x + offsets[0]
        for i, block in enumerate(self.blocks):
            x = block(x, state)
            if offsets is not None:
                x = x + offsets[i + 1]
        return self.output(F.leaky_relu(x, SLOPE), state)


class Generator(nn.Module):
    """``(batch, latent_size, steps) -> (batch, n_mels, steps * latent_frames)`` in [-1, 1]."""

    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        self.config = config = config or GeneratorConfig()
        self.latent_size = config.latent_size
        self.phrase_size = config.phrase_size
        self.latent_frames = config.latent_frames
        self.front = Front(config) if config.code_size else None
        self.input = StreamConv1d(config.decoder_input_size, config.channels[0], config.latent_kernel,
                                  weight_norm=True)
        self.upsamplers = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, dilations in enumerate(config.dilations):
            if i > 0:
                u = config.upsample[i - 1]
                self.upsamplers.append(StreamConvTranspose1d(config.channels[i - 1], config.channels[i], u,
                                                             kernel_size=u, weight_norm=True))
            self.stages.append(nn.ModuleList(ResBlock(config.channels[i], config.kernel_size, d)
                                             for d in dilations))
        k = config.pca_components
        self.output = StreamConv1d(config.channels[-1], k or config.n_mels, config.kernel_size, weight_norm=True)
        # Fixed decoder of whitened PCA coefficients (buffers: saved and exported with the weights).
        self.pca = MelPCA(config.n_mels, k) if k else None

    def initial_state(self, batch: int = 1, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Zero state of every stateful layer: what a fresh stream starts from."""
        return initial_state(self, batch, device)

    def state_shapes(self, batch: int = 1) -> list[tuple[int, ...]]:
        return [layer.state_shape(batch) for layer in stateful_layers(self)]

    def _check(self, z: torch.Tensor) -> None:
        if z.dim() != 3 or z.shape[1] != self.latent_size:
            raise ValueError(f"z must be (batch, {self.latent_size}, steps), got {tuple(z.shape)}")

    def first_layer(self, z: torch.Tensor) -> torch.Tensor:
        """``(batch, latent, S) -> (batch, channels[0], S)``: latent-rate features (GANSpace's layer), offline."""
        self._check(z)
        x = self.input(self.front(z) if self.front is not None else z)
        for block in self.stages[0]:
            x = block(x)
        return x

    def forward(self, z: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """``(batch, latent, steps) -> (batch, n_mels, steps * latent_frames)``; offline when ``state`` is None."""
        self._check(z)
        if self.front is not None:
            z = self.front(z, state)
        return self.decode(z, state)

    def decode(self, code: torch.Tensor, state: StreamState | None = None) -> torch.Tensor:
        """``(batch, decoder_input_size, steps) -> mel``: the network after the front."""
        x = self.input(code, state)
        for i, blocks in enumerate(self.stages):
            if i > 0:
                x = self.upsamplers[i - 1](F.leaky_relu(x, SLOPE), state)
            for block in blocks:
                x = block(x, state)
        out = self.output(F.leaky_relu(x, SLOPE), state)
        if self.pca is None:
            return torch.tanh(out)
        mel = self.pca.decode(out)
        if torch.is_grad_enabled():
            # Straight-through clip: the critic sees the clipped mel, but a bin pushed past
            # +-1 still gets a gradient back. A plain clamp zeroes it, and a run whose output
            # drifted out of range could never return (measured: 99.9 % of bins stuck at the clip).
            return mel + (mel.clamp(-1.0, 1.0) - mel).detach()
        return mel.clamp(-1.0, 1.0)


def streaming_generator(generator: Generator) -> StreamingModule:
    """ONNX wrapper: ``(z, state_in_0..n) -> (mel, state_out_0..n)``."""
    return StreamingModule(generator)


def sample_latents(batch: int, latent_size: int, steps: int, rng: torch.Generator | None = None,
                   device: torch.device | str = "cpu", phrase_size: int = 0) -> torch.Tensor:
    """``(batch, latent_size, steps)`` N(0, I) latents: independent per step, except the last
    ``phrase_size`` inputs, drawn once per sequence and held (``PhraseLatent``)."""
    return hold_phrase(torch.randn(batch, latent_size, steps, generator=rng, device=device), phrase_size)

