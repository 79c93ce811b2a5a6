"""Real rendered music for tests: a short demo chorale through FluidSynth (no file committed)."""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def load_fixture_audio() -> np.ndarray:
    """About 8 s of a four-part chorale on FluidR3's piano, 11025 Hz mono float32 at -20 dBFS."""
    import tempfile
    from pathlib import Path

    from melsynth.training.corpus.demo import write_demo_scores
    from melsynth.training.corpus.render import FluidRenderer, normalise_level, resample
    from melsynth.training.corpus.scores import INSTRUMENTATIONS, parse_score, score_notes

    with tempfile.TemporaryDirectory() as tmp:
        root = write_demo_scores(Path(tmp), broken=False)
        notes = score_notes(parse_score(Path(root) / "bach" / "chorale1.abc"))
    renderer = FluidRenderer()
    try:
        audio = renderer.render(notes, INSTRUMENTATIONS["piano"])
        rate = renderer.sample_rate
    finally:
        renderer.close()
    return normalise_level(resample(audio, rate)).astype(np.float32)
