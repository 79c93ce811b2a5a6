"""Store one corpus file: 16-bit mono FLAC written atomically, checksum, mel cache entry.

Both ``corpus build`` (rendered scores) and ``corpus add`` (user audio) end here,
so every file of a corpus has the same format and a cache entry computed from
the exact samples the FLAC holds.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from melsynth.engine.atomic import atomic_write_bytes
from melsynth.engine.dsp.features import MelSpec
from melsynth.training.corpus import cache
from melsynth.training.corpus.render import CORPUS_RATE, pcm16_to_float, to_pcm16


def store_audio(corpus_dir: str | os.PathLike, rel_path: str, audio: np.ndarray,
                spec: MelSpec) -> tuple[str, int]:
    """Write ``audio`` ((samples,) float32, 11025 Hz, level-normalised) to ``corpus_dir/rel_path``.

    Returns ``(sha256 of the FLAC bytes, samples)``.
    """
    import soundfile as sf

    if spec.sample_rate != CORPUS_RATE:
        raise ValueError(f"corpus audio is {CORPUS_RATE} Hz; MelSpec wants {spec.sample_rate} Hz")
    pcm = to_pcm16(audio)
    buf = io.BytesIO()
    sf.write(buf, pcm, CORPUS_RATE, format="FLAC", subtype="PCM_16")
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(Path(corpus_dir) / rel_path, data)
    cache.write_entry(corpus_dir, spec, sha, pcm16_to_float(pcm))
    return sha, int(pcm.size)
