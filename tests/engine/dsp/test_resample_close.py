"""StreamResampler.close frees soxr's native state at once; Synth.close uses it; play works after it."""
from __future__ import annotations

import time

import numpy as np

from melsynth.engine.dsp.resample import StreamResampler


def test_close_frees_the_stream_and_a_later_chunk_starts_a_fresh_one():
    x = np.sin(2 * np.pi * 440 * np.arange(4096) / 11025).astype(np.float32)
    fresh = StreamResampler(11025, 48000).process(x)
    r = StreamResampler(11025, 48000)
    r.process(x)
    r.close()
    assert r.delay_samples == 0.0 and r._soxr is None
    np.testing.assert_allclose(r.process(x), fresh, atol=1e-6)  # as from a new resampler
    same = StreamResampler(11025, 11025)
    same.close()
    assert same.process(x) is x


def test_a_closed_synth_holds_no_resampler_and_plays_again(tmp_path):
    from melsynth.engine.device.output import FakeOutput
    from melsynth.engine.stream.synth import Synth
    from tests.engine_fakes import fake_loader, make_fake_bundle

    synth = Synth(bundle=make_fake_bundle(tmp_path / "fake-bundle"), loader=fake_loader(), device_rate=48000)
    assert synth._pipeline.resampler._soxr is not None
    synth.close()
    assert synth._pipeline.resampler._soxr is None
    out = FakeOutput(48000, 256, wait_for_data=True, capture_samples=48000)
    assert synth.play(output=out)
    deadline = time.monotonic() + 10
    while out.captured < 12000 and time.monotonic() < deadline:
        time.sleep(0.01)
    synth.close()
    audio = out.capture[:out.captured]
    assert out.captured >= 12000 and np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
