"""Scores -> notes -> FluidSynth audio: instrumentations, variation, level, bounded length."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fluidsynth")

from melsynth.training.corpus.render import (FluidRenderer, RenderError, normalise_level, resample,
                                             soundfont_path)
from melsynth.training.corpus.scores import (INSTRUMENTATIONS, Instrumentation, ScoreNotes,
                                             choose_instrumentations, work_of)

try:
    soundfont_path()
except Exception as exc:  # pragma: no cover
    pytest.skip(f"no soundfont: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def renderer():
    r = FluidRenderer()
    yield r
    r.close()


def _one_note(pitch=69, seconds=0.8, velocity=100) -> ScoreNotes:
    return ScoreNotes((np.array([[0.05, 0.05 + seconds, pitch, velocity]]),), ("",))


def _spectrum(audio, sr):
    spec = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    return np.fft.rfftfreq(audio.size, 1 / sr), spec


def test_each_instrumentation_plays_the_pitch_with_its_own_timbre(renderer):
    assert len(INSTRUMENTATIONS) >= 4
    profiles = {}
    for name, ins in INSTRUMENTATIONS.items():
        audio = renderer.render(_one_note(), ins)
        assert audio.dtype == np.float32 and np.all(np.isfinite(audio))
        assert np.max(np.abs(audio)) > 1e-3, name
        freqs, spec = _spectrum(audio[: int(0.8 * renderer.sample_rate)], renderer.sample_rate)
        # energy sits on the harmonics of A4 = 440 Hz
        harmonic = np.zeros_like(spec, dtype=bool)
        for k in range(1, 10):
            harmonic |= np.abs(freqs - 440 * k) < 25
        power = spec ** 2
        assert power[harmonic].sum() > 0.5 * power[(freqs > 100) & (freqs < 5000)].sum(), name
        bands = np.array([power[(freqs >= 440 * k - 25) & (freqs < 440 * k + 25)].sum() for k in range(1, 9)])
        profiles[name] = bands / bands.sum()
    names = sorted(profiles)
    for i, a in enumerate(names):     # the programs really differ: harmonic profiles differ pairwise
        for b in names[i + 1:]:
            assert np.abs(profiles[a] - profiles[b]).sum() > 0.05, (a, b)


def test_parts_get_the_programs_of_their_voice():
    strings = INSTRUMENTATIONS["strings"]
    # fewer parts than instruments: spread from the top instrument to the bottom one
    assert [strings.program_for_part(p, 4) for p in range(4)] == [40, 40, 42, 43]
    assert [strings.program_for_part(p, 2) for p in range(2)] == [40, 43]
    assert [strings.program_for_part(p, 5) for p in range(5)] == [40, 40, 41, 42, 43]
    assert strings.program_for_part(6, 7) == 43        # extra parts double the bass
    assert Instrumentation("solo", (0,)).program_for_part(3, 4) == 0


def test_instrumentation_choice_is_seeded_and_distinct():
    a = choose_instrumentations(0, "bach/bwv1.6.mxl", 2)
    assert a == choose_instrumentations(0, "bach/bwv1.6.mxl", 2) and len(set(a)) == 2
    many = {choose_instrumentations(s, "bach/bwv1.6.mxl", 2) for s in range(20)}
    assert len(many) > 5


def test_performance_variation_stretches_time_and_scales_velocity():
    notes = ScoreNotes((np.array([[0.0, 1.0, 60, 80], [1.0, 2.0, 62, 80]]),), ("",))
    played = notes.varied(tempo_scale=1.25, velocity_scale=0.5, velocity_jitter=0.0,
                          rng=np.random.default_rng(0))
    np.testing.assert_allclose(played.parts[0][:, :2], [[0.0, 0.8], [0.8, 1.6]])
    np.testing.assert_array_equal(played.parts[0][:, 3], [40, 40])
    jittered = notes.varied(1.0, 1.0, 5.0, np.random.default_rng(1)).parts[0][:, 3]
    assert not np.all(jittered == 80) and np.all((jittered >= 1) & (jittered <= 127))
    assert notes.parts[0][0, 1] == 1.0      # the original is untouched


def test_render_is_bounded_and_lengths_follow_the_score(renderer):
    audio = renderer.render(_one_note(seconds=1.0), INSTRUMENTATIONS["piano"])
    assert audio.size == int(np.ceil((1.05 + 1.5) * renderer.sample_rate))
    with pytest.raises(RenderError, match="limit"):
        renderer.render(_one_note(seconds=100.0), INSTRUMENTATIONS["piano"], max_seconds=30)
    # a second render starts silent: no note rings over from the first
    renderer.render(ScoreNotes((np.array([[0.0, 5.0, 60, 100]]),), ("",)), INSTRUMENTATIONS["organ"],)
    quiet = renderer.render(ScoreNotes((np.array([[0.5, 0.6, 60, 1]]),), ("",)), INSTRUMENTATIONS["organ"])
    assert np.max(np.abs(quiet[: int(0.4 * renderer.sample_rate)])) < 1e-4


def test_level_normalisation_and_resampling():
    sr = 22050
    t = np.arange(sr) / sr
    loud = (0.8 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    quiet = (0.01 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    a, b = normalise_level(loud), normalise_level(quiet)
    assert np.sqrt(np.mean(a ** 2)) == pytest.approx(0.1, rel=0.02)
    assert np.sqrt(np.mean(b ** 2)) == pytest.approx(0.1, rel=0.02)
    spiky = quiet.copy()
    spiky[100] = 1.0
    assert np.max(np.abs(normalise_level(spiky))) <= 0.9 + 1e-6     # peak limit wins
    with pytest.raises(RenderError, match="silent"):
        normalise_level(np.zeros(1000, dtype=np.float32))
    down = resample(loud, sr, 11025)
    assert down.size == sr // 2 and down.dtype == np.float32
    freqs, spec = _spectrum(down, 11025)
    assert abs(freqs[np.argmax(spec)] - 300) < 3


def test_movements_group_into_works():
    assert work_of("beethoven/opus18no1/movement3.mxl") == "beethoven/opus18no1"
    assert work_of("bach/bwv112.5-sc.mxl") == work_of("bach/bwv112.5.mxl") == "bach/bwv112.5"
    assert work_of("monteverdi/madrigal.3.1.mxl") != work_of("monteverdi/madrigal.3.2.mxl")


def test_a_real_chorale_excerpt_becomes_four_parts():
    pytest.importorskip("music21")
    from melsynth.training.corpus.scores import load_score_notes, music21_corpus_root

    notes = load_score_notes(music21_corpus_root() / "bach" / "bwv66.6.mxl")
    assert len(notes.parts) == 4 and notes.n_notes > 100
    assert 10 < notes.duration < 120
    assert all(np.all(p[:, 1] > p[:, 0]) for p in notes.parts)
    assert 60 <= notes.parts[0][:, 2].mean() <= 80 and notes.parts[3][:, 2].mean() < 55  # soprano above bass


def test_badly_formed_repeats_play_through_once():
    pytest.importorskip("music21")
    from music21 import bar, note, repeat, stream

    from melsynth.training.corpus.scores import score_notes

    part = stream.Part()
    for i in range(4):
        m = stream.Measure(number=i + 1)
        m.append(note.Note(60 + i, quarterLength=4))
        part.append(m)
    measures = list(part.getElementsByClass(stream.Measure))
    measures[3].append(repeat.DalSegnoAlFine())        # D.S. without a segno: music21 cannot expand
    measures[1].rightBarline = bar.Repeat(direction="end")
    score = stream.Score()
    score.insert(0, part)
    notes = score_notes(score)
    np.testing.assert_array_equal(notes.parts[0][:, 2], [60, 61, 62, 63])
    assert notes.duration == pytest.approx(8.0)      # 16 beats at 120 bpm, no repeat
