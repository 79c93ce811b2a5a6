"""Whatever the player (or a broken MIDI map) sends, the output is finite, within +-1, and nothing raises."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from melsynth.engine.dsp.safety import SafetyStage
from melsynth.engine.stream.config import SynthConfig
from melsynth.engine.stream.controls import Controls
from melsynth.engine.stream.messages import EditCanvas, SetCanvas, SetControls, SetFile
from melsynth.engine.stream.pipeline import Pipeline
from tests.engine_fakes import fake_bundle, fake_loader

any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
wild = st.one_of(any_float, st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, 1e38, 0.0]))
wild32 = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0]))
LATENT = 8


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return fake_bundle(tmp_path_factory.mktemp("props"))


def controls_strategy():
    return st.builds(
        Controls,
        knobs=st.lists(wild, max_size=4).map(tuple),
        seed=st.integers(-2**70, 2**70),
        point_a=st.none() | st.lists(wild, min_size=0, max_size=LATENT + 2).map(tuple),
        seed_b=st.none() | st.integers(-5, 5),
        point_b=st.none() | st.lists(wild, min_size=1, max_size=LATENT).map(tuple),
        morph=wild, walk_speed=wild, walk_spread=wild, walk_seed=st.integers(-3, 2**40),
        source=st.sampled_from(["latent", "canvas", "file"]), gain=wild)


edit_values = arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 6)), elements=wild)
action = st.one_of(
    st.tuples(st.just("controls"), controls_strategy()),
    st.tuples(st.just("knob"), st.tuples(st.integers(0, 5), wild)),
    st.tuples(st.just("edit"), st.tuples(st.integers(-1000, 1000), edit_values, st.integers(-300, 300))),
    st.tuples(st.just("canvas"), arrays(np.float32, st.tuples(st.just(256), st.integers(1, 12)), elements=wild32)),
    st.tuples(st.just("file"), arrays(np.float32, st.tuples(st.just(256), st.integers(1, 5)), elements=wild32)),
    st.tuples(st.just("steps"), st.integers(1, 4)),
)


@pytest.fixture(scope="module")
def tiny_onnx():
    pytest.importorskip("torch")
    from melsynth.engine.runtime.bundle import load_bundle
    from tests.engine_bundles import shared_tiny_prior_bundle

    return load_bundle(shared_tiny_prior_bundle())


HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH)
@given(actions=st.lists(action, min_size=1, max_size=12), fps=st.integers(1, 3),
       rate=st.sampled_from([11025, 44100, 48000]))
def test_pipeline_output_stays_finite_and_bounded(bundle, actions, fps, rate):
    run_actions(Pipeline(bundle, None, SynthConfig(frames_per_step=fps, source_crossfade_frames=3),
                         Controls(seed=1), rate, fake_loader()), actions)


@settings(max_examples=12, deadline=None, suppress_health_check=HEALTH)
@given(actions=st.lists(action, min_size=1, max_size=8), fps=st.integers(1, 2))
def test_onnx_models_stay_finite_and_bounded(tiny_onnx, actions, fps):
    """The same through the real engine Prior and the amplitude-phase Vocoder (ONNX, random weights)."""
    from melsynth.engine.stream.chain import load_models

    run_actions(Pipeline(tiny_onnx, "ap", SynthConfig(frames_per_step=fps), Controls(seed=1), 48000, load_models),
                actions)


def run_actions(pipe, actions):
    controls = pipe.controls
    for kind, arg in actions:
        if kind == "controls":
            controls = arg
            pipe.apply(SetControls(arg))
        elif kind == "knob":
            controls = controls.with_knob(*arg)
            pipe.apply(SetControls(controls))
        elif kind == "edit":
            pipe.apply(EditCanvas(*arg))
        elif kind == "canvas":
            pipe.apply(SetCanvas(arg))
        elif kind == "file":
            pipe.apply(SetFile(arg))
        else:
            for _ in range(arg):
                out = pipe.step()
                assert out.dtype == np.float32 and out.size > 0
                assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1.0
    out = pipe.step()
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1.0
    z = pipe.chain.latent.current_z()
    assert np.all(np.isfinite(z))
    assert np.all(np.isfinite(pipe.canvas.frames())) and np.all(np.isfinite(pipe.file.frames()))


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(arrays(np.float64, st.integers(0, 600), elements=wild), min_size=1, max_size=6),
       gains=st.lists(wild, min_size=6, max_size=6))
def test_safety_bounds_any_input(chunks, gains):
    s = SafetyStage(11025)
    for x, g in zip(chunks, gains):
        y = s.process(x, g)
        assert y.shape == x.shape and y.dtype == np.float32
        assert np.all(np.isfinite(y)) and (y.size == 0 or np.max(np.abs(y)) <= 1.0)


ring_action = st.one_of(
    st.tuples(st.just("write"), arrays(np.float32, st.integers(0, 300), elements=st.floats(-1, 1, width=32))),
    st.tuples(st.just("read"), st.integers(1, 400)),
    st.tuples(st.just("stop"), st.just(0)),
)


@given(fade=st.integers(0, 200), actions=st.lists(ring_action, max_size=40))
@settings(max_examples=150, deadline=None)
def test_what_the_device_gets_stays_finite_and_within_full_scale(fade, actions):
    """The declicking reader (a fall continued from the sound, a rise, a stop fade) hands the
    device nothing beyond what the safety stage allows, whatever the producer and device do."""
    from melsynth.engine.device.ringbuffer import RingBuffer

    ring = RingBuffer(1024, fade_samples=fade)
    for kind, arg in actions:
        if kind == "write":
            ring.write(arg)
        elif kind == "stop":
            ring.request_stop()
        else:
            out = np.full(arg, np.nan, np.float32)
            ring.read_into(out)
            assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    assert ring.fill >= 0 and ring.read_position <= ring.written
