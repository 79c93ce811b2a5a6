"""Samplers over a built corpus: aligned (audio, mel) segments and mel windows.

Torch-free map-style datasets (``len`` and ``[i]`` returning numpy arrays), so
a ``torch.utils.data.DataLoader`` takes them as they are.

Alignment (``engine.dsp.features``: frame ``t`` is centred on sample ``t * hop``)::

    mel frames     t0      t0+1     ...     t0+S-1
    audio      [t0*hop ...................... (t0+S)*hop)     S*hop samples
               sample n of the crop lies under frame t0 + n // hop

which is what a vocoder returns for ``S`` frames (``S * hop`` samples), so the
crop is the target for the mel crop. Starts stay where the crop's audio lies
inside the file: ``t0 <= samples // hop - S``.

Indexing: each file is cut into non-overlapping tiles of ``S`` frames; item
``i`` is one tile, shifted by a random offset (seeded by ``seed``, the epoch and
``i``) when ``random_offset`` is on, so every epoch sees other crops of the same
files. ``set_epoch(n)`` picks the epoch.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.corpus import cache
from melsynth.training.corpus.manifest import FileEntry, read_manifest


class CorpusDatasetError(ValueError):
    """A corpus split that cannot feed the sampler (the message names folder and split)."""


class _SplitIndex:
    """Files of one split, their mel cache, and the tiling of items over them."""

    def __init__(self, corpus_dir, split: str, spec: MelSpec, frames: int, max_start_of,
                 seed: int, random_offset: bool, build_cache: bool):
        if frames < 1:
            raise CorpusDatasetError(f"segment of {frames} frames: need at least 1")
        self.corpus_dir = Path(corpus_dir)
        self.spec, self.frames, self.seed, self.random_offset = spec, frames, seed, random_offset
        manifest = read_manifest(self.corpus_dir)
        if manifest.sample_rate != spec.sample_rate:
            raise CorpusDatasetError(f"{self.corpus_dir}: corpus is {manifest.sample_rate} Hz, "
                                     f"MelSpec wants {spec.sample_rate} Hz")
        entries = manifest.split_files(split)
        if build_cache:
            cache.ensure_cache(self.corpus_dir, spec, entries, progress=len(entries) > 20)
        self.entries: list[FileEntry] = []
        self.max_start: list[int] = []
        for e in entries:
            m = max_start_of(e)
            if m >= 0:
                self.entries.append(e)
                self.max_start.append(m)
        if not self.entries:
            raise CorpusDatasetError(
                f"{self.corpus_dir}: split {split!r} has no file of at least {frames} frames "
                f"({len(entries)} files in the split)")
        tiles = np.array([m // frames + 1 for m in self.max_start], dtype=np.int64)
        self.tile_start = np.concatenate([[0], np.cumsum(tiles)])
        self.epoch = 0
        self._mels: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.tile_start[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Item ``index`` -> (file number, start frame)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        index %= n
        f = int(np.searchsorted(self.tile_start, index, side="right") - 1)
        tile = index - int(self.tile_start[f])
        start = tile * self.frames
        if self.random_offset:
            room = min(self.frames - 1, self.max_start[f] - start)
            if room > 0:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                start += int(rng.integers(0, room + 1))
        return f, start

    def mel(self, f: int) -> np.ndarray:
        """Memory-mapped (n_mels, frames) mel of file ``f`` (opened once per process)."""
        arr = self._mels.get(f)
        if arr is None:
            arr = self._mels[f] = cache.open_entry(self.corpus_dir, self.spec, self.entries[f].sha256)
        return arr

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_mels"] = {}
        return state


class _CorpusSplit:
    """What both datasets share: items are crops that a ``_SplitIndex`` (``self._index``) places."""

    _index: _SplitIndex

    @property
    def entries(self) -> list[FileEntry]:
        return self._index.entries

    def set_epoch(self, epoch: int) -> None:
        self._index.epoch = int(epoch)

    def locate(self, index: int) -> tuple[FileEntry, int]:
        """Which file and start frame item ``index`` is cropped from."""
        f, start = self._index.locate(index)
        return self._index.entries[f], start

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int):
        raise NotImplementedError

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class AudioMelDataset(_CorpusSplit):
    """Aligned ``(audio (segment_frames*hop,), log_mel (n_mels, segment_frames))`` float32 pairs.

    ``corpus_dir``: a built corpus; ``split``: train | validation | test;
    ``spec``: the MelSpec (its cache is computed on first use if missing).
    """

    def __init__(self, corpus_dir: str | os.PathLike, split: str, segment_frames: int,
                 spec: MelSpec | None = None, *, seed: int = 0, random_offset: bool = True,
                 build_cache: bool = True, audio_cache: bool = True):
        self.spec = spec or MelSpec()
        self.segment_frames = segment_frames
        hop = self.spec.hop_length
        self._index = _SplitIndex(corpus_dir, split, self.spec, segment_frames,
                                  lambda e: e.samples // hop - segment_frames,
                                  seed, random_offset, build_cache)
        self.audio_cache = audio_cache
        if audio_cache:
            # int16 memmaps of the FLACs: crops in microseconds instead of ~5 ms of decoding
            cache.ensure_audio_cache(self._index.corpus_dir, self.entries, progress=len(self.entries) > 20)
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def _soundfile(self, f: int):
        import soundfile as sf

        if self._pid != os.getpid():
            # Forked loader worker: never share the parent's file offsets.
            self._files, self._pid = {}, os.getpid()
        handle = self._files.get(f)
        if handle is None:
            handle = self._files[f] = sf.SoundFile(str(self._index.corpus_dir / self._index.entries[f].path))
        return handle

    def read_audio(self, f: int, start_sample: int, n_samples: int) -> np.ndarray:
        """``(n_samples,)`` float32 samples of file ``f``, exactly as soundfile decodes the FLAC."""
        if self.audio_cache:
            pcm = self._files.get(f)
            if pcm is None:
                pcm = self._files[f] = cache.open_audio_entry(self._index.corpus_dir,
                                                              self._index.entries[f].sha256)
            audio = pcm[start_sample:start_sample + n_samples].astype(np.float32) / np.float32(32768.0)
            if audio.shape != (n_samples,):
                raise CorpusDatasetError(f"audio cache of {self._index.entries[f].path}: crop at "
                                         f"{start_sample} runs past {pcm.shape[0]} samples")
            return audio
        handle = self._soundfile(f)
        handle.seek(start_sample)
        audio = handle.read(n_samples, dtype="float32", always_2d=False)
        if audio.shape != (n_samples,):
            raise CorpusDatasetError(f"{handle.name}: read {audio.shape} samples at {start_sample}, "
                                     f"expected ({n_samples},): file changed since the manifest?")
        return audio

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        f, start = self._index.locate(index)
        hop, frames = self.spec.hop_length, self.segment_frames
        mel = np.array(self._index.mel(f)[:, start:start + frames], dtype=np.float32)
        audio = self.read_audio(f, start * hop, frames * hop)
        return audio, mel

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_files"] = {}
        return state


class MelWindowDataset(_CorpusSplit):
    """``(n_mels, window_frames)`` float32 log10 mel windows (``normalized=True``: in [-1, 1] space)."""

    def __init__(self, corpus_dir: str | os.PathLike, split: str, window_frames: int,
                 spec: MelSpec | None = None, *, seed: int = 0, random_offset: bool = True,
                 normalized: bool = False, build_cache: bool = True):
        self.spec = spec or MelSpec()
        self.window_frames = window_frames
        self.normalized = normalized
        self._index = _SplitIndex(corpus_dir, split, self.spec, window_frames,
                                  lambda e: self.spec.n_frames(e.samples) - window_frames,
                                  seed, random_offset, build_cache)

    def __getitem__(self, index: int) -> np.ndarray:
        f, start = self._index.locate(index)
        mel = np.array(self._index.mel(f)[:, start:start + self.window_frames], dtype=np.float32)
        return self.spec.normalize(mel).astype(np.float32) if self.normalized else mel

