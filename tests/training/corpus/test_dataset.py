"""Samplers: audio and mel crops aligned to the sample; mel windows; cache keyed by MelSpec."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from melsynth.engine.dsp.features import MelSpec, log_mel
from melsynth.training.corpus import cache
from melsynth.training.corpus.dataset import AudioMelDataset, CorpusDatasetError, MelWindowDataset
from melsynth.training.corpus.demo import click_track
from melsynth.training.corpus.ingest import AddConfig, add_audio
from melsynth.training.corpus.manifest import read_manifest

SR = 11025
HOP = 256


def _click_positions(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Clicks >= 8 hops apart, each clearly nearest to one frame centre (not near a half hop)."""
    pos, n = [], 600
    while n < n_samples - 600:
        off = n % HOP
        if 24 <= off <= 100 or 156 <= off <= 232:
            pos.append(n)
            n += 8 * HOP + int(rng.integers(0, 3 * HOP))
        else:
            n += int(rng.integers(1, 40))
    return np.array(pos)


@pytest.fixture(scope="module")
def click_corpus(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clicks")
    src = tmp / "src"
    src.mkdir()
    rng = np.random.default_rng(7)
    clicks = {}
    for i, seconds in enumerate((4.0, 6.3, 3.1, 5.2, 4.7)):
        n = int(seconds * SR)
        pos = _click_positions(n, rng)
        sf.write(src / f"take{i}.wav", click_track(n, pos, seed=i), SR, subtype="FLOAT")
        clicks[f"take{i}.wav"] = pos
    out = tmp / "corpus"
    report = add_audio(AddConfig(src=str(src), out=str(out), jobs=1, progress=False), log=lambda *a: None)
    assert report.added == 5
    return out, clicks


def _full_audio(corpus_dir, entry) -> np.ndarray:
    audio, sr = sf.read(str(corpus_dir / entry.path), dtype="float32")
    assert sr == SR
    return audio


@pytest.mark.parametrize("split,audio_cache", [("train", True), ("validation", True), ("test", True),
                                               ("train", False)])
def test_audio_and_mel_crops_are_the_files_samples_and_their_mel(click_corpus, split, audio_cache):
    out, _ = click_corpus
    spec = MelSpec()
    frames = 24
    ds = AudioMelDataset(out, split, frames, spec, seed=1, audio_cache=audio_cache)
    assert len(ds) >= 1
    for i in range(len(ds)):
        audio, mel = ds[i]
        assert audio.shape == (frames * HOP,) and audio.dtype == np.float32
        assert mel.shape == (256, frames) and mel.dtype == np.float32
        entry, start = ds.locate(i)
        full = _full_audio(out, entry)
        assert 0 <= start and (start + frames) * HOP <= full.size
        np.testing.assert_array_equal(audio, full[start * HOP:(start + frames) * HOP])
        np.testing.assert_allclose(mel, log_mel(spec, full)[:, start:start + frames], atol=1e-5)


def test_planted_clicks_land_in_the_mel_frame_over_them(click_corpus):
    """Sample n of an audio crop must sit under mel frame n // hop (nearest centre)."""
    out, _ = click_corpus
    frames = 40
    checked = 0
    for split in ("train", "validation", "test"):
        ds = AudioMelDataset(out, split, frames, seed=3)
        for epoch in range(3):
            ds.set_epoch(epoch)
            for i in range(len(ds)):
                audio, mel = ds[i]
                energy = np.sum(10.0 ** mel.astype(np.float64), axis=0)
                for n in np.flatnonzero(np.abs(audio) > 0.3):
                    k = int(round(n / HOP))
                    if 2 <= k <= frames - 3:
                        assert int(np.argmax(energy[k - 2:k + 3])) == 2, (split, i, n)
                        checked += 1
    assert checked >= 30


def test_epochs_and_seed_move_crops_within_the_files(click_corpus):
    out, _ = click_corpus
    ds = AudioMelDataset(out, "train", 16, seed=0)
    starts0 = [ds.locate(i) for i in range(len(ds))]
    ds.set_epoch(1)
    starts1 = [ds.locate(i) for i in range(len(ds))]
    assert [e.path for e, _ in starts0] == [e.path for e, _ in starts1]
    assert [s for _, s in starts0] != [s for _, s in starts1]
    for e, s in starts0 + starts1:
        assert 0 <= s <= e.samples // HOP - 16
    fixed = AudioMelDataset(out, "train", 16, random_offset=False)
    assert all(s % 16 == 0 for s in (fixed.locate(i)[1] for i in range(len(fixed))))
    # every file of the split is covered by at least one tile
    assert {e.path for e in fixed.entries} == {fixed.locate(i)[0].path for i in range(len(fixed))}


def test_mel_windows_match_the_cache_and_normalise(click_corpus):
    out, _ = click_corpus
    spec = MelSpec()
    ds = MelWindowDataset(out, "train", 32, spec, seed=2)
    dsn = MelWindowDataset(out, "train", 32, spec, seed=2, normalized=True)
    assert len(ds) == len(dsn) >= 2
    for i in range(len(ds)):
        w = ds[i]
        entry, start = ds.locate(i)
        assert w.shape == (256, 32) and w.dtype == np.float32
        np.testing.assert_allclose(w, log_mel(spec, _full_audio(out, entry))[:, start:start + 32], atol=1e-5)
        np.testing.assert_allclose(dsn[i], spec.normalize(w), atol=1e-6)


def test_cache_is_keyed_by_melspec(click_corpus):
    out, _ = click_corpus
    base, other = MelSpec(), MelSpec(n_mels=80)
    assert base.key() != other.key()
    entry = read_manifest(out).split_files("train")[0]
    before = cache.entry_path(out, base, entry.sha256).stat().st_mtime_ns
    ds = MelWindowDataset(out, "train", 8, other)      # computes the 80-band cache on first use
    assert ds[0].shape == (80, 8)
    assert cache.entry_path(out, other, entry.sha256).is_file()
    assert cache.entry_path(out, base, entry.sha256).stat().st_mtime_ns == before
    assert set(cache.describe(out)) == {base.key(), other.key()}
    # a damaged entry (wrong shape) is recomputed, not served
    path = cache.entry_path(out, other, entry.sha256)
    np.save(path, np.zeros((80, 3), dtype=np.float32))
    assert cache.ensure_cache(out, other, [entry], progress=False) == 1
    np.testing.assert_allclose(np.load(path), log_mel(other, _full_audio(out, entry)), atol=1e-5)


def test_segments_longer_than_every_file_are_a_clear_error(click_corpus):
    out, _ = click_corpus
    with pytest.raises(CorpusDatasetError, match="train"):
        AudioMelDataset(out, "train", 10_000)
    with pytest.raises(FileNotFoundError, match="manifest"):
        MelWindowDataset(out / "nope", "train", 8)


def test_chunked_mel_equals_whole_file_mel():
    spec = MelSpec()
    rng = np.random.default_rng(0)
    for n in (5000, HOP * 40, HOP * 40 + 1, HOP * 41 - 1, HOP * 63 + 255, HOP * 65):
        x = rng.standard_normal(n).astype(np.float32)
        whole = log_mel(spec, x)
        chunked = cache.chunked_log_mel(spec, x, chunk_frames=8)
        assert chunked.shape == whole.shape
        np.testing.assert_allclose(chunked, whole, atol=1e-5)
