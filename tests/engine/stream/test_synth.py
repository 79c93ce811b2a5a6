"""The engine pipeline and the live Synth, on numpy fakes of the prior and vocoder."""
import time

import numpy as np
import pytest
import soundfile as sf

from melsynth.engine.device.output import FakeOutput
from melsynth.engine.stream.chain import Chain
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls, latent_point
from melsynth.engine.stream.messages import EditCanvas, SetCanvas, SetControls, SwapChain
from melsynth.engine.stream.pipeline import Pipeline, render_offline
from melsynth.engine.stream.schedule import RecentMax, RecentQuantile
from melsynth.engine.stream.sources import LatentSource
from melsynth.engine.stream.synth import Synth
from tests.engine_fakes import FakePrior, FakeVocoder, declick_fall, fake_bundle, fake_loader

HOP = 256


@pytest.fixture
def bundle(tmp_path):
    return fake_bundle(tmp_path)


def frame_rms(audio, hop=HOP):
    n = audio.size // hop
    return np.sqrt(np.mean(audio[: n * hop].reshape(n, hop) ** 2, axis=1))


@pytest.mark.parametrize("spread", [0.0, 0.5, 0.9, 1.0])
def test_walk_replaces_part_of_the_point_so_latents_stay_unit_normal(spread):
    """The prior was trained on N(0, 1) latents: a point plus a walk must not widen them."""
    from melsynth.engine.stream.controls import RandomWalk

    size, z = 16, []
    for seed in range(400):
        walk = RandomWalk(size, seed=10_000 + seed)
        for _ in range(3):
            z.append(latent_point(Controls(seed=seed, walk_speed=0.5, walk_spread=spread), (), size,
                                  walk.advance(0.5)))
    z = np.asarray(z)
    assert abs(z.std() - 1.0) < 0.05 and abs(z.mean()) < 0.05
    point = latent_point(Controls(seed=3), (), size)
    walked = latent_point(Controls(seed=3, walk_spread=spread), (), size, np.ones(size))
    np.testing.assert_allclose(walked, np.sqrt(1 - spread ** 2) * point + spread, rtol=1e-5)


def test_a_walk_seeded_like_its_point_starts_independent_of_it():
    from melsynth.engine.stream.controls import RandomWalk, seeded_point

    points = np.stack([seeded_point(s, 8) for s in range(500)])
    starts = np.stack([RandomWalk(8, s).offset for s in range(500)])
    assert abs(np.corrcoef(points.ravel(), starts.ravel())[0, 1]) < 0.1
    z = np.stack([latent_point(Controls(seed=s, walk_seed=s, walk_spread=0.95), (), 8, RandomWalk(8, s).offset)
                  for s in range(500)])
    assert abs(z.std() - 1.0) < 0.05


def test_latent_source_equals_prior_offline(bundle):
    """Constant controls, no walk: the source is exactly the prior's offline output, denormalised."""
    spec = bundle.mel
    prior = FakePrior(spec)
    c = Controls(seed=5, knobs=(1.0, -0.5))
    src = LatentSource(prior, spec, c)
    got = np.concatenate([src.next_frames(k) for k in (1, 3, 2, 7, 5)], axis=1)  # 18 frames, odd chunks
    z = latent_point(c, prior.directions, prior.latent_size)
    want = spec.denormalize(FakePrior(spec).offline(np.stack([z] * 5)))[:, :18]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_knob_move_is_heard_at_the_next_frame_without_a_jump(bundle):
    spec = bundle.mel
    c0 = Controls(seed=1)
    c1 = c0.with_knob(0, 3.0)

    def run(move_at, crossfade=3):
        src = LatentSource(FakePrior(spec, latent_frames=16), spec, c0, crossfade_frames=crossfade)
        frames = []
        for i in range(40):
            if i == move_at:
                src.set_controls(c1)
            frames.append(src.next_frames(1))
        return np.concatenate(frames, axis=1), src

    still, _ = run(-1)
    moved, src = run(21)  # mid-step (16-frame steps): step 1 is re-run
    assert src.reruns == 1
    np.testing.assert_array_equal(moved[:, :21], still[:, :21])
    assert np.abs(moved[:, 21] - still[:, 21]).max() > 1e-3  # heard at once
    # crossfaded: the first new frame moves only part of the way
    full = np.abs(moved[:, 24] - still[:, 24]).mean()
    assert 0 < np.abs(moved[:, 21] - still[:, 21]).mean() < 0.6 * full
    # the move is spread over the crossfade (3 frames + 1): no frame carries more than about
    # a quarter of it on top of what the model does on its own
    natural = np.abs(np.diff(still, axis=1)).max()
    move = np.abs(moved[:, 21:32] - still[:, 21:32]).max()
    assert np.abs(np.diff(moved, axis=1)).max() <= natural + 0.3 * move
    # without the crossfade the same move is one jump
    abrupt, _ = run(21, crossfade=1)
    assert np.abs(np.diff(abrupt, axis=1)).max() > np.abs(np.diff(moved, axis=1)).max() * 1.3


@pytest.fixture(scope="module")
def real_prior():
    pytest.importorskip("torch")
    from melsynth.engine.runtime.bundle import load_bundle
    from melsynth.engine.runtime.prior import load_prior
    from tests.engine_bundles import shared_tiny_prior_bundle

    bundle = load_bundle(shared_tiny_prior_bundle())
    return bundle, lambda: load_prior(bundle)


@pytest.mark.parametrize("kind", ["fake", "onnx"])
def test_knob_rerun_continues_as_if_the_step_had_the_new_latent(bundle, request, kind):
    """After a re-run the prior's state is the new step's: later steps equal a stream that never had the old z."""
    spec = bundle.mel
    make = ((lambda: FakePrior(spec, latent_frames=16)) if kind == "fake"
            else request.getfixturevalue("real_prior")[1])
    c0 = Controls(seed=3)
    c1 = c0.with_knob(1, 2.0)
    L = make().latent_frames

    moved_src = LatentSource(make(), spec, c0)
    a = moved_src.next_frames(L + 5)  # into step 1
    moved_src.set_controls(c1)
    b = moved_src.next_frames(3 * L - 5)  # rest of step 1, steps 2 and 3
    assert moved_src.reruns == 1
    ref_src = LatentSource(make(), spec, c0)
    ref_a = ref_src.next_frames(L)  # step 0 with the old point
    ref_src.set_controls(c1)
    ref_b = ref_src.next_frames(3 * L)  # steps 1.. with the new one
    moved = np.concatenate([a, b], axis=1)
    ref = np.concatenate([ref_a, ref_b], axis=1)
    np.testing.assert_allclose(moved[:, 2 * L:], ref[:, 2 * L:], atol=1e-5)
    assert np.abs(moved[:, L + 5] - a[:, L + 4]).max() < np.abs(ref[:, L + 5] - a[:, L + 4]).max() + 1e-6


def test_render_is_deterministic_and_seeded(bundle):
    c = Controls(seed=3, walk_speed=0.3, walk_spread=1.0, walk_seed=9)
    a = render_offline(bundle, 1.0, c, loader=fake_loader())
    b = render_offline(bundle, 1.0, c, loader=fake_loader())
    other = render_offline(bundle, 1.0, c.replace(walk_seed=10), loader=fake_loader())
    assert a.shape == (11025,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - other).max() > 1e-3
    assert np.all(np.isfinite(a)) and np.abs(a).max() <= 1.0 and np.abs(a).max() > 0.01


def test_resampled_render_matches_rate(bundle):
    a = render_offline(bundle, 0.5, Controls(seed=2), sample_rate=48000, loader=fake_loader())
    b = render_offline(bundle, 0.5, Controls(seed=2), loader=fake_loader())
    assert a.size == 24000
    # same music: spectra agree below the model's Nyquist
    fa = np.abs(np.fft.rfft(a))[: 2000]
    fb = np.abs(np.fft.rfft(b))[: 2000]
    fa_peak, fb_peak = np.argmax(fa) / 0.5, np.argmax(fb) / 0.5
    assert abs(fa_peak - fb_peak) < 3


def test_canvas_edits_ahead_of_the_playhead_are_heard_this_pass(bundle):
    spec = bundle.mel
    pipe = Pipeline(bundle, None, SynthConfig(source_crossfade_frames=1), Controls(source="canvas"),
                    loader=fake_loader())
    n = 40
    pipe.apply(SetCanvas(np.full((256, n), spec.log_min)))
    out = [pipe.step() for _ in range(10)]  # playhead now at 10
    assert pipe.canvas.playhead == 10
    loud = np.full((256, 4), 1.0, np.float32)
    pipe.apply(EditCanvas(20, loud))  # ahead: frames 20..23
    pipe.apply(EditCanvas(2, loud))  # behind: frames 2..5, heard next pass
    out += [pipe.step() for _ in range(n - 10 + 10)]
    rms = frame_rms(np.concatenate(out))
    assert rms[20:24].min() > 10 * rms[12:18].max()
    assert rms[n + 2:n + 6].min() > 10 * rms[12:18].max()  # second pass has the earlier edit
    assert rms[2:6].max() < rms[20:24].min() / 10  # first pass did not


def test_source_switch_crossfades_without_gap_or_click(bundle):
    cfg = SynthConfig(source_crossfade_frames=8)
    pipe = Pipeline(bundle, None, cfg, Controls(seed=4), loader=fake_loader())
    pipe.apply(SetCanvas(np.full((256, 50), 0.5, np.float32)))
    out = [pipe.step() for _ in range(30)]
    pipe.apply(SetControls(Controls(seed=4, source="canvas")))
    out += [pipe.step() for _ in range(30)]
    audio = np.concatenate(out)
    rms = frame_rms(audio)
    assert rms[10:].min() > 0.2 * np.median(rms[10:])  # no gap
    jumps = np.abs(np.diff(audio))
    steady = jumps[: 30 * HOP].max()
    assert jumps.max() <= 1.5 * max(steady, jumps[-20 * HOP:].max())  # no click at the switch
    assert pipe.source == "canvas"


def test_hot_swap_crossfades_to_the_new_vocoder(bundle):
    cfg = SynthConfig(swap_crossfade_ms=100)
    loader = fake_loader()
    pipe = Pipeline(bundle, None, cfg, Controls(seed=6, gain=0.15), loader=loader)  # below the limiter
    out = [pipe.step() for _ in range(30)]
    chain = Chain.build(bundle, "other", pipe.controls, cfg, loader)
    pipe.apply(SwapChain(bundle, "other", chain))
    out += [pipe.step() for _ in range(40)]
    audio = np.concatenate(out)
    rms = frame_rms(audio)
    assert pipe.chain.vocoder_name == "other" and pipe.old_chain is None
    assert rms[10:].min() > 0.3 * rms[10:30].mean()  # no gap
    assert rms[-10:].mean() > 2.0 * rms[10:30].mean()  # the louder "other" vocoder took over
    jumps = np.abs(np.diff(audio))
    assert jumps[30 * HOP - 10: 36 * HOP].max() <= 1.2 * max(jumps[: 30 * HOP].max(), jumps[-10 * HOP:].max())


def test_garbage_from_the_vocoder_is_contained(bundle):
    loader = fake_loader(vocoder_kwargs={"emit_nan_every": 5, "scale": 50.0})
    pipe = Pipeline(bundle, None, SynthConfig(), Controls(seed=1, gain=8.0), loader=loader)
    audio = np.concatenate([pipe.step() for _ in range(60)])
    assert np.all(np.isfinite(audio)) and np.abs(audio).max() <= 1.0
    assert pipe.chain.vocoder.resets >= 10  # reset after each non-finite chunk
    assert np.abs(audio).max() > 0.5


# --------------------------------------------------------------------------- the live Synth
def test_synth_plays_through_a_fake_device(bundle):
    cfg = SynthConfig(target_ms=20)
    synth = Synth(bundle, config=cfg, controls=Controls(seed=2), loader=fake_loader())
    heard = []
    synth.add_listener(lambda chunk, rate: heard.append((chunk.copy(), rate)))
    out = FakeOutput(48000, 256, capture_samples=48000)
    assert synth.play(output=out)
    assert synth.ring.fill >= int(0.02 * 48000)  # pre-filled before the first callback
    for _ in range(60):
        out.tick()
        time.sleep(0.004)
    st = synth.status()
    synth.stop()
    assert st.playing and st.sample_rate == 48000 and st.error is None
    assert st.frames_produced > 0 and 0 < st.latency_ms < 200
    assert synth.ring.underruns == 0
    listened = np.concatenate([c for c, _ in heard])
    assert {r for _, r in heard} == {48000}
    np.testing.assert_array_equal(out.capture[: out.captured], listened[: out.captured])
    count, frames = synth.tap.frames_since(0)
    assert count == st.frames_produced or count >= frames.shape[1] > 0
    peak, rms = synth.tap.level()
    assert -120 < rms <= peak <= 0.0


def test_stop_fades_out_and_a_resumed_play_fades_in(bundle):
    """No click at either end: stop lets the device ramp the sound down to silence before the
    stream ends, and play after a stop (the sound resumes mid-waveform) ramps it up."""
    rate = 48000
    cfg = SynthConfig(target_ms=50)  # generous: an underrun would put a fall and a rise in the capture
    fade = round(cfg.declick_ms * 1e-3 * rate)
    synth = Synth(bundle, config=cfg, controls=Controls(seed=2, gain=0.8), loader=fake_loader())
    heard = []
    synth.add_listener(lambda chunk, _rate: heard.append(chunk.copy()))
    captured = []
    for start in range(2):
        heard.clear()
        out = FakeOutput(rate, 256, realtime=True, capture_samples=rate)
        assert synth.play(output=out)
        time.sleep(0.3)
        synth.stop()
        assert synth.ring.stop_faded and synth.ring.underruns == 0
        played = np.concatenate(heard)
        got = out.capture[:out.captured]
        stop_at = synth.ring.stop_fade_at
        assert 0.2 * rate < stop_at < out.captured - fade
        rise = 1 - declick_fall(np.arange(1, fade + 1), fade + 1) if start else np.ones(fade)
        np.testing.assert_allclose(got[:fade], played[:fade] * rise, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(got[fade:stop_at], played[fade:stop_at])
        np.testing.assert_allclose(got[stop_at:stop_at + fade], played[stop_at:stop_at + fade]
                                   * declick_fall(np.arange(fade), fade), rtol=1e-6, atol=1e-9)
        assert not got[stop_at + fade:].any()
        captured.append(got)
    assert np.abs(captured[1][:4]).max() < 4 / fade  # the resumed sound starts from silence
    assert np.abs(captured[1][fade:stop_at]).max() > 0.05


def test_the_tap_holds_back_the_newest_frames_and_never_goes_back():
    from melsynth.engine.stream.tap import MelTap

    tap = MelTap(4, capacity=16)
    frames = np.arange(40, dtype=np.float32).reshape(4, 10)
    tap.push(frames, np.zeros(1, np.float32))
    counter, got = tap.frames_since(0, lag=3)
    assert counter == 7
    np.testing.assert_array_equal(got, frames[:, :7])
    assert tap.frames_since(counter, lag=3)[1].shape == (4, 0)
    tap.push(frames[:, :2] + 100, np.zeros(1, np.float32))
    counter, got = tap.frames_since(counter, lag=3)
    assert counter == 9
    np.testing.assert_array_equal(got, frames[:, 7:9])
    counter, got = tap.frames_since(counter, lag=8)  # the lag grew: nothing new, no step back
    assert counter == 9 and got.shape == (4, 0)


class LateVocoder(FakeVocoder):
    """Says its sound comes ``latency_samples`` late, as the classical vocoder's look-ahead does."""

    latency_samples = 4 * HOP


def test_the_heard_lag_counts_the_vocoders_latency_the_queue_and_the_device(bundle):
    synth = Synth(bundle, config=SynthConfig(target_ms=30), controls=Controls(seed=2),
                  loader=lambda b, name: (FakePrior(b.mel), LateVocoder(b.mel, name=name)))
    out = FakeOutput(48000, 256, latency_s=0.05)
    assert synth.play(output=out)
    try:
        spec = synth.spec
        queued_s = synth.ring.fill / 48000
        assert queued_s > 0.02
        expected = (4 * HOP / spec.sample_rate + queued_s + 0.05) * spec.frame_rate
        assert abs(synth.heard_lag_frames() - expected) <= 1  # + the resampler's ~2 ms
        assert synth.heard_lag_frames() >= 4 + round(0.05 * spec.frame_rate)
    finally:
        synth.stop()


class SlowVocoder(FakeVocoder):
    """Every 8th push stalls for ``stall_s`` (what a prior step or a knob re-run does to a step)."""

    stall_s = 0.015

    def push(self, log_mel):
        out = super().push(log_mel)
        if self.pushes % 8 == 0:
            time.sleep(self.stall_s)
        return out


def test_the_producer_starts_earlier_to_cover_its_slowest_step_then_forgets_it(bundle):
    def load(b, name):
        return FakePrior(b.mel), SlowVocoder(b.mel, name=name)

    synth = Synth(bundle, config=SynthConfig(target_ms=4.0, target_max_ms=0), controls=Controls(seed=2),
                  loader=load)
    synth._step_s = RecentMax(16, synth._step_s._start, 4)  # a short memory, for a short test
    out = FakeOutput(48000, 256)
    assert synth.play(output=out)
    try:
        for _ in range(120):  # the device drains the ring; the producer stalls every 8th step
            out.tick()
            time.sleep(0.003)
        lead = synth.status().lead_ms
        # the 4 ms floor is gone: steps start at least a stall before the ring would run short
        assert lead >= 1e3 * SlowVocoder.stall_s
        SlowVocoder.stall_s = 0.0                      # stalls stop: the lead shrinks again
        for _ in range(400):
            out.tick()
            time.sleep(0.002)
        assert synth.status().lead_ms < lead - 5.0
    finally:
        SlowVocoder.stall_s = 0.015
        synth.stop()


def test_no_device_is_a_message_and_restart_works(bundle):
    synth = Synth(bundle, controls=Controls(seed=2), loader=fake_loader())
    assert not synth.play(device="no-such-device-xyz")
    st = synth.status()
    assert not st.playing and "no-such-device-xyz" in st.error or "PortAudio" in st.error
    out = FakeOutput(48000, 256)
    assert synth.restart(output=out)
    assert synth.status().error is None
    synth.stop()


def test_device_disappearing_stops_producer_with_message(bundle):
    synth = Synth(bundle, controls=Controls(seed=2), loader=fake_loader())
    out = FakeOutput(48000, 256)
    assert synth.play(output=out)
    out.error = "audio device fake stopped (disconnected?); restart to continue"
    out._running = False  # what a vanished PortAudio stream looks like to the producer
    deadline = time.time() + 5
    while synth.playing and time.time() < deadline:
        time.sleep(0.01)
    assert not synth.playing
    assert "disconnected" in synth.status().error
    assert synth.restart(output=FakeOutput(44100, 512))
    assert synth.status().sample_rate == 44100 and synth.status().error is None
    synth.stop()


def test_commands_while_stopped_apply_immediately(bundle, tmp_path):
    synth = Synth(bundle, controls=Controls(seed=2), loader=fake_loader())
    synth.set_canvas(np.zeros((256, 30)))
    synth.edit_canvas(3, np.full((10, 2), 1.5), bin_start=250)  # cut at the top edge
    canvas = synth.canvas()
    assert canvas.shape == (256, 30)
    assert np.all(canvas[250:, 3:5] == 1.5) and np.all(canvas[:250, 3:5] == 0)
    with pytest.raises(ValueError, match="canvas must be"):
        synth.set_canvas(np.zeros((12, 30)))
    t = np.arange(11025) / 11025
    sf.write(tmp_path / "tone.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 22050)
    n = synth.load_file(tmp_path / "tone.wav")
    assert n == 1 + (11025 // 2) // 256  # resampled 22050 -> 11025
    with pytest.raises(FileNotFoundError):
        synth.load_file(tmp_path / "missing.wav")
    synth.update_controls(source="file")
    assert synth.status().source == "file"


def test_bundle_hot_swap_from_another_thread(bundle):
    synth = Synth(bundle, controls=Controls(seed=2), loader=fake_loader())
    out = FakeOutput(48000, 256, wait_for_data=True)
    assert synth.play(output=out)
    synth.swap_bundle(vocoder="other", wait=True)
    deadline = time.time() + 5
    while synth.vocoder_name != "other" and time.time() < deadline:
        time.sleep(0.01)
    synth.set_vocoder("nonexistent", wait=True)
    before = synth.status().frames_produced
    time.sleep(0.2)
    st = synth.status()
    synth.stop()
    assert synth.vocoder_name == "other"
    assert "nonexistent" in st.error  # reported ...
    assert st.frames_produced > before  # ... and the music went on


def test_a_failing_listener_is_reported_and_the_music_goes_on(bundle):
    synth = Synth(bundle, controls=Controls(seed=2), loader=fake_loader())

    def broken(chunk, rate):
        raise OSError("disk full")

    synth.add_listener(broken)
    out = FakeOutput(48000, 256, wait_for_data=True)
    assert synth.play(output=out)
    deadline = time.time() + 5
    while out.callbacks < 50 and time.time() < deadline:
        time.sleep(0.01)
    st = synth.status()
    synth.remove_listener(broken)
    synth.stop()
    assert st.listener_errors > 0 and "disk full" in st.error
    assert out.callbacks >= 50  # the producer kept going


def test_a_vocoder_that_raises_is_reset_and_answered_with_silence(bundle):
    class Flaky(FakeVocoder):
        def push(self, log_mel):
            if self.pushes == 7:
                self.pushes += 1
                raise RuntimeError("onnxruntime: bad allocation")
            return super().push(log_mel)

    loader = lambda b, name: (FakePrior(b.mel), Flaky(b.mel))  # noqa: E731
    synth = Synth(bundle, controls=Controls(seed=2), loader=loader, device_rate=11025)
    pipe = synth._pipeline
    chunks = [pipe.step() for _ in range(12)]
    assert pipe.chain.errors == 1 and "bad allocation" in synth.status().error
    rms = np.array([np.sqrt(np.mean(c ** 2)) for c in chunks])
    failed = int(np.argmin(rms))
    assert 3 <= failed <= 8 and rms[failed] < 0.1 * np.median(rms)  # the failed frame is (nearly) silent ...
    assert rms[failed + 1:].min() > 0.3 * np.median(rms)  # ... and the music goes on


def _prepare_schedule(seed: int, n: int = 70):
    """Random knob moves, walk changes and reseeds between random-size pulls (the same for both runs)."""
    rng = np.random.default_rng(seed)
    c = Controls(seed=4, walk_speed=0.4, walk_spread=0.8, walk_seed=1)
    plan = []
    for _ in range(n):
        cmds = []
        for _ in range(int(rng.integers(0, 3))):
            r = rng.random()
            if r < 0.6:
                c = c.with_knob(int(rng.integers(0, 2)), float(rng.normal() * 2))
            elif r < 0.8:
                c = c.replace(walk_speed=float(rng.uniform(0, 1)))
            else:
                c = c.replace(walk_seed=int(rng.integers(0, 5)))
            cmds.append(c)
        plan.append((cmds, int(rng.integers(1, 4))))
    return Controls(seed=4, walk_speed=0.4, walk_spread=0.8, walk_seed=1), plan


@pytest.mark.parametrize("seed", range(6))
def test_prior_work_done_ahead_gives_the_same_frames(bundle, seed):
    """prepare() between pulls (a re-run, a recompute, the next step ahead) changes nothing that is heard."""
    spec = bundle.mel
    start, plan = _prepare_schedule(seed)
    ahead_rng = np.random.default_rng(100 + seed)

    def run(ahead: bool):
        src = LatentSource(FakePrior(spec, latent_frames=4), spec, start)
        out = []
        for cmds, k in plan:
            for c in cmds:
                src.set_controls(c)
                if ahead and ahead_rng.random() < 0.7:
                    src.prepare()   # between two commands, too: the second must re-run as if alone
            if ahead and ahead_rng.random() < 0.7:
                src.prepare()
            out.append(src.next_frames(k))
        return np.concatenate(out, axis=1), src

    plain, _ = run(False)
    ahead, src = run(True)
    assert src.prepared > 10
    np.testing.assert_array_equal(ahead, plain)


class _SlowPrior(FakePrior):
    """A prior step takes 4 ms: longer than the rest of a producer step."""

    def step(self, z):
        time.sleep(0.004)
        return super().step(z)


def test_the_producer_runs_the_prior_while_the_ring_is_full_and_the_stream_still_equals_offline(bundle):
    rate = 48000
    cfg = SynthConfig(record_events=True, target_ms=40.0)
    start = Controls(seed=6, walk_speed=0.5, walk_spread=0.9)

    def load(b, name):
        return _SlowPrior(b.mel, latent_frames=4), FakeVocoder(b.mel, name=name)

    total = int(1.5 * rate)
    synth = Synth(bundle, config=cfg, controls=start, loader=load)
    out = FakeOutput(rate, 256, realtime=True, capture_samples=total)
    assert synth.play(output=out)
    try:
        rng = np.random.default_rng(3)
        c = start
        while out.captured < total:
            time.sleep(0.04)
            c = c.with_knob(int(rng.integers(0, 2)), float(rng.normal() * 2))
            synth.set_controls(c)
        latent = synth._pipeline.chain.latent
        assert latent.prepared > 0.5 * (latent.steps + latent.reruns)   # most prior work ran ahead
        assert synth.ring.underruns == 0, "the 40 ms ring ran dry: the machine is too busy for this test"
    finally:
        synth.stop()
    offline = render_offline(bundle, 0, start, synth.event_log(), config=cfg, sample_rate=rate, loader=load,
                             n_samples=total)
    np.testing.assert_array_equal(out.capture, offline)


def test_a_delivery_into_an_almost_empty_ring_counts_as_a_near_miss(bundle):
    synth = Synth(bundle, controls=Controls(seed=1), loader=fake_loader())
    synth._output = FakeOutput(48000, 256)
    quarter = 0.25 * 256 / 48000
    lead = synth.status().lead_ms
    synth._note_near_miss(0.99 * quarter)  # delivered under a quarter block period before a click
    synth._note_near_miss(quarter)
    synth._note_near_miss(0.02)
    assert synth.near_misses == 1
    assert synth.status().lead_ms == lead  # counted only


def test_play_takes_the_loaded_models_out_of_the_garbage_collectors_walks(bundle):
    """A full collection of a loaded synth held the GIL for 80 ms: longer than the ring. Play freezes the heap."""
    import gc

    gc.unfreeze()
    synth = Synth(bundle, controls=Controls(seed=1), loader=fake_loader())
    walked = lambda obj: any(o is obj for o in gc.get_objects())  # noqa: E731
    try:
        assert walked(synth._pipeline)
        assert synth.play(output=FakeOutput(48000, 256))
        assert not walked(synth._pipeline) and gc.get_freeze_count() > 1000
        synth.swap_bundle(wait=True)   # a hot-swap's new models are frozen as they arrive
        swapped = synth._commands[-1].loaded if synth._commands else synth._pipeline.chain
        assert not walked(swapped)
    finally:
        synth.stop()
        gc.unfreeze()


def test_playing_shortens_the_gil_switch_interval_and_stop_restores_it(bundle):
    """Another thread running Python (the GUI) makes the producer wait up to the switch interval
    for the GIL, many times a step: 5 ms by default. Playing lowers it; stopping puts it back."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)
    synth = Synth(bundle, controls=Controls(seed=1), loader=fake_loader())
    try:
        assert synth.play(output=FakeOutput(48000, 256))
        assert sys.getswitchinterval() == pytest.approx(0.001)
        synth.stop()
        assert sys.getswitchinterval() == pytest.approx(0.004)
        assert synth.play(output=FakeOutput(48000, 256)) and synth.play(output=FakeOutput(48000, 256))
        synth.stop()
        assert sys.getswitchinterval() == pytest.approx(0.004)  # a second play() kept the first value
    finally:
        synth.stop()
        sys.setswitchinterval(before)


def _planned(bundle, step_s, prepare_s):
    """A synth one frame in (no prior work due) with known recent step and prior-work costs."""
    synth = Synth(bundle, controls=Controls(seed=1), loader=fake_loader())
    synth._output = FakeOutput(48000, 256)
    synth._pipeline.step()
    assert not synth._pipeline.heavy_step_due()
    synth._step_s = RecentMax(8)
    synth._step_s.update(step_s)
    synth._prepare_s = RecentQuantile(8, 0.9)
    synth._prepare_s.update(prepare_s)
    synth._clock.observe(0.0, 256, 256)  # the device has read
    return synth


def test_before_the_device_reads_the_producer_fills_more_than_the_lead(bundle):
    """Starting is the likeliest time to stall: the ring holds an extra 20 ms for the first reads,
    which then drains (the lead itself is back to a step plus wake-up slack)."""
    synth = _planned(bundle, 0.002, 0.003)
    synth._clock.reset()
    assert synth._plan(0.0229) == (True, True, False, pytest.approx(0.023))
    synth._clock.observe(0.0, 256, 256)
    assert synth._plan(0.0229) == (False, True, False, pytest.approx(0.003))


def test_a_step_is_due_when_the_time_left_falls_under_its_lead(bundle):
    synth = _planned(bundle, 0.002, 0.003)
    # lead: the slowest recent step plus the least wake-up slack (1 ms)
    assert synth._plan(0.0029) == (True, True, False, pytest.approx(0.003))
    assert synth._plan(0.0031)[0] is False


def test_a_knob_move_goes_into_the_step_only_when_a_heavy_step_fits(bundle):
    synth = _planned(bundle, 0.002, 0.003)
    synth._wake_late.update(0.002)  # the producer has been waking up to 2 ms late
    synth._commands.append(SetControls(Controls(seed=1).with_knob(0, 1.0)))
    # a heavy step is due under its lead: step + prior + wake-up lateness
    assert synth._plan(0.0071) == (False, True, True, pytest.approx(0.007))
    # once due it goes ahead while step + prior + 1 ms still fit (awake: no wake-up lateness)
    assert synth._plan(0.0065)[:3] == (True, True, True)
    # too late for that: this frame plays as computed, the move waits (applied right after it)
    assert synth._plan(0.0059) == (False, False, False, pytest.approx(0.004))
    assert synth._plan(0.0039) == (True, False, False, pytest.approx(0.004))


def test_a_deferred_knob_move_is_applied_right_after_the_step(bundle):
    synth = _planned(bundle, 0.002, 0.003)
    frame = synth._pipeline.frame_index
    synth._commands.append(SetControls(Controls(seed=1).with_knob(0, 1.0)))  # as from the GUI while playing
    synth._produce_one(apply_commands=False)
    assert len(synth._commands) == 1 and synth._pipeline.frame_index == frame + 1
    assert synth._prepare_ahead(1.0)           # plenty of time now: applied and the prior re-run
    assert not synth._commands
    assert synth._pipeline.chain.latent.controls.knobs[0] == 1.0


def test_set_lead_ms_changes_the_lead_at_once_and_refuses_what_the_ring_cannot_hold(tmp_path):
    synth = Synth(fake_bundle(tmp_path), loader=fake_loader(), controls=Controls(seed=1))
    before = synth.status().lead_ms
    synth.set_lead_ms(40.0)
    assert synth.config.target_ms == 40.0 and synth.status().lead_ms >= 40.0 > before
    with pytest.raises(ValueError, match="target_ms"):
        synth.set_lead_ms(1e6)
    assert synth.config.target_ms == 40.0
    synth.set_lead_ms(0.0)
    assert synth.status().lead_ms == pytest.approx(before)
