"""engine.dsp.istft: the exact inverse of engine.dsp.features.stft, offline and streaming."""
from __future__ import annotations

import numpy as np
import pytest

from melsynth.engine.dsp.features import MelSpec, stft
from melsynth.engine.dsp.istft import StreamingISTFT, istft, latency_frames

SPEC = MelSpec()


@pytest.mark.parametrize("n", [100, 256, 511, 1000, 4097])
def test_inverse_of_the_centred_stft(n):
    x = np.random.default_rng(n).standard_normal(n) * 0.1
    frames = stft(SPEC, x)
    y = istft(SPEC, frames)
    assert y.shape == (frames.shape[1] * SPEC.hop_length,) and y.dtype == np.float32
    np.testing.assert_allclose(y[:n], x, atol=1e-6)  # time-aligned: sample n under sample n


def test_a_single_frame_lands_where_the_stft_put_it():
    """Frame t is centred on sample t*hop: an impulse analysed there comes back there."""
    F, t = 12, 5
    x = np.zeros(F * SPEC.hop_length)
    x[t * SPEC.hop_length + 7] = 1.0
    frames = stft(SPEC, x)[:, :F]
    only = np.zeros_like(frames)
    only[:, t] = frames[:, t]
    y = istft(SPEC, only)
    assert int(np.argmax(np.abs(y))) == t * SPEC.hop_length + 7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_equals_offline_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n_frames = int(rng.integers(1, 60))
    frames = rng.standard_normal((SPEC.n_freqs, n_frames)) + 1j * rng.standard_normal((SPEC.n_freqs, n_frames))
    offline = istft(SPEC, frames)
    stream = StreamingISTFT(SPEC)
    parts, i = [], 0
    while i < n_frames:
        k = int(rng.integers(1, 17))
        out = stream.push(frames[:, i:i + k])
        assert out.shape == (min(k, n_frames - i) * SPEC.hop_length,)
        parts.append(out)
        i += k
    parts.append(stream.flush())
    s = np.concatenate(parts)
    assert s.size == n_frames * SPEC.hop_length + stream.latency_samples
    assert not np.any(s[:stream.latency_samples])
    np.testing.assert_array_equal(s[stream.latency_samples:], offline)


def test_latency_is_half_a_window_in_hops():
    assert latency_frames(SPEC) == 2
    assert StreamingISTFT(SPEC).latency_samples == 512
    short = MelSpec(n_fft=512, win_length=512, n_mels=64)
    assert latency_frames(short) == 1
    odd = MelSpec(n_fft=1024, win_length=1024, hop_length=384)
    assert latency_frames(odd) == 2  # ceil(512 / 384)


def test_flush_resets_for_the_next_stream():
    rng = np.random.default_rng(5)
    frames = rng.standard_normal((SPEC.n_freqs, 9)) + 0j
    stream = StreamingISTFT(SPEC)
    first = np.concatenate([stream.push(frames), stream.flush()])
    second = np.concatenate([stream.push(frames), stream.flush()])
    np.testing.assert_array_equal(first, second)


def test_wrong_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="513"):
        istft(SPEC, np.zeros((257, 4), complex))
