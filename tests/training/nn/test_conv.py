"""Streaming layers and generators: streaming in random chunks equals offline; causality."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.engine.dsp.features import MelSpec, log_mel  # noqa: E402
from melsynth.training.nn.ap import APConfig, APGenerator, PhaseIntegrator  # noqa: E402
from melsynth.training.nn.conv import (StreamConv1d, StreamConvTranspose1d, StreamingModule, StreamState,  # noqa: E402
                                       depthwise_conv, initial_state, run_chunks, stateful_layers)
from melsynth.training.nn.melgan import MelGANConfig, MelGANGenerator  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEC = MelSpec()


def music_mel(frames: int, seed: int = 0) -> torch.Tensor:
    """``(1, 256, frames)`` log10 mel of decaying harmonic notes plus a little noise."""
    rng = np.random.default_rng(seed)
    n = frames * SPEC.hop_length
    t = np.arange(n) / SPEC.sample_rate
    audio = 0.003 * rng.standard_normal(n)
    for start, f0 in zip(rng.uniform(0, t[-1], 5), rng.uniform(100, 800, 5)):
        env = np.where(t >= start, np.exp(-(t - start) * 3.0), 0.0)
        for h in range(1, 5):
            audio += 0.05 / h * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6))
    return torch.from_numpy(log_mel(SPEC, audio)[:, :frames])[None]


def random_sizes(rng: np.random.Generator, total: int) -> list[int]:
    sizes = []
    while sum(sizes) < total:
        sizes.append(int(rng.integers(1, 17)))
    return sizes


def cat_outputs(outs):
    if isinstance(outs[0], torch.Tensor):
        return torch.cat(outs, dim=-1)
    return tuple(torch.cat([o[i] for o in outs], dim=-1) for i in range(len(outs[0])))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layers_stream_like_offline(seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = torch.nn.ModuleDict({
        "conv": StreamConv1d(6, 5, 3, dilation=4),
        "dw": depthwise_conv(5, 7),
        "up": StreamConvTranspose1d(5, 3, stride=4),
    })

    class Chain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, state=None):
            return self.net["up"](self.net["dw"](self.net["conv"](x, state), state), state)

    chain = Chain()
    x = torch.randn(2, 6, 57)
    with torch.no_grad():
        offline = chain(x)
        streamed = cat_outputs(run_chunks(chain, x, random_sizes(rng, 57)))
    assert offline.shape == (2, 3, 57 * 4)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)


def test_transposed_conv_keeps_the_first_t_times_r_outputs_of_the_full_convolution():
    torch.manual_seed(0)
    up = StreamConvTranspose1d(2, 3, stride=4)
    x = torch.randn(1, 2, 9)
    with torch.no_grad():
        full = up.conv(x)   # (T - 1) r + 2r samples
        torch.testing.assert_close(up(x), full[..., :36])


def test_a_causal_conv_ignores_the_future():
    torch.manual_seed(0)
    conv = StreamConv1d(3, 4, 5, dilation=2)
    x = torch.randn(1, 3, 30)
    y = x.clone()
    y[..., 20:] += 5.0
    with torch.no_grad():
        torch.testing.assert_close(conv(x)[..., :20], conv(y)[..., :20])
        assert not torch.allclose(conv(x)[..., 20:], conv(y)[..., 20:])


def test_stream_state_counts_must_match():
    conv = StreamConv1d(2, 2, 3)
    with pytest.raises(ValueError, match="1 stateful layers but 2"):
        StreamState(stateful_layers(conv), [torch.zeros(1, 2, 2)] * 2)


def tiny_melgan() -> MelGANGenerator:
    torch.manual_seed(0)
    return MelGANGenerator(SPEC, MelGANConfig(channels=32)).eval()


def tiny_ap() -> APGenerator:
    torch.manual_seed(0)
    g = APGenerator(SPEC, APConfig(dim=32, layers=2))
    with torch.no_grad():  # non-trivial heads (the default init is near zero)
        g.head.weight.normal_(0.0, 0.05)
    return g.eval()


@pytest.mark.parametrize("seed", [0, 1])
def test_melgan_streaming_equals_offline_for_random_step_sizes(seed):
    g = tiny_melgan()
    mel = music_mel(40, seed)
    with torch.no_grad():
        offline = g(mel)
        streamed = cat_outputs(run_chunks(g, mel, random_sizes(np.random.default_rng(seed), 40)))
    assert offline.shape == (1, 40 * SPEC.hop_length)
    assert torch.all(offline.abs() <= 1.0)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_ap_streaming_equals_offline_for_random_step_sizes(seed):
    g = tiny_ap()
    mel = music_mel(60, seed)
    with torch.no_grad():
        real, imag = g(mel)
        s_real, s_imag = cat_outputs(run_chunks(g, mel, random_sizes(np.random.default_rng(seed), 60)))
    assert real.shape == (1, SPEC.n_freqs, 60)
    peak = float(torch.hypot(real, imag).max())
    assert peak > 0.1
    # Frames: float32 rounding relative to the largest bin; audio (what the engine hears): absolute.
    assert float((s_real - real).abs().max()) <= 1e-5 * peak
    assert float((s_imag - imag).abs().max()) <= 1e-5 * peak
    window = torch.hann_window(SPEC.n_fft, periodic=True, dtype=torch.float64)

    def audio(re, im):
        return torch.istft(torch.complex(re.double(), im.double()), SPEC.n_fft, SPEC.hop_length,
                           window=window, center=True, length=60 * SPEC.hop_length)

    assert float((audio(s_real, s_imag) - audio(real, imag)).abs().max()) <= 1e-5


def test_ap_is_causal_and_starts_from_the_mel_pseudo_inverse():
    g = tiny_ap()
    mel = music_mel(30)
    later = mel.clone()
    later[..., 20:] += 1.0
    with torch.no_grad():
        a = g.components(mel)
        b = g.components(later)
    for k in ("real", "imag", "log_amp"):
        scale = float(a[k].abs().max())
        assert float((a[k][..., :20] - b[k][..., :20]).abs().max()) <= 1e-5 * scale
        assert float((a[k][..., 20:] - b[k][..., 20:]).abs().max()) > 1e-3 * scale
    # Near-zero residual at init: the amplitude follows the pseudo-inverse prior.
    fresh = APGenerator(SPEC, APConfig(dim=32, layers=2)).eval()
    with torch.no_grad():
        c = fresh.components(mel)
        prior = fresh.prior_log_amplitude(mel)
    assert float((c["log_amp"] - prior).abs().max()) < 0.5


def test_phase_integrator_is_exact_over_long_streams():
    """hi/lo float32 state: chunking cannot drift the running phase even after many frames."""
    rng = np.random.default_rng(0)
    integ = PhaseIntegrator(7)
    inc = torch.from_numpy(rng.uniform(-math.pi, 3 * math.pi, (1, 7, 6000)).astype(np.float32))
    offline = integ(inc)
    streamed = cat_outputs(run_chunks(integ, inc, random_sizes(rng, 6000)))
    diff = torch.remainder(streamed.double() - offline.double() + math.pi, 2 * math.pi) - math.pi
    assert float(diff.abs().max()) < 1e-5
    # And it really integrates: constant increment d gives phase (t + 1) d mod 2 pi.
    const = integ(torch.full((1, 1, 50), 0.3))
    torch.testing.assert_close(const[0, 0, 9], torch.tensor(3.0), atol=1e-5, rtol=0)


def test_ap_holds_a_sustained_partial_phase_advancing():
    """Identical mel frames must not give identical phases (the stateless failure mode)."""
    g = tiny_ap()
    mel = music_mel(1).repeat(1, 1, 12)
    with torch.no_grad():
        real, imag = g(mel)
    phase = torch.atan2(imag, real)
    assert float((phase[..., 5] - phase[..., 6]).abs().max()) > 0.5


def test_streaming_module_flattens_state_for_export():
    g = tiny_melgan()
    wrapper = StreamingModule(g)
    mel = music_mel(3)
    states = initial_state(g)
    with torch.no_grad():
        out = wrapper(mel, *states)
    assert len(out) == 1 + len(states)
    assert [tuple(s.shape) for s in out[1:]] == [tuple(s.shape) for s in states]
