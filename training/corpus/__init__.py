"""Training corpus: rendered classical scores and the user's own audio, with a mel cache.

A corpus folder::

    DIR/manifest.json        files (path, duration, composer, work, instrumentation,
                             split, sha256, ...), failures, hours per split (manifest.py)
    DIR/audio/**.flac        11025 Hz mono 16-bit, level-normalised
    DIR/mel_cache/<MelSpec.key()>/<sha>.npy   log10 mel per file (cache.py)
    DIR/audio_cache/<sha>.npy                 int16 samples for fast crops (cache.py)

Modules: ``scores`` (music21 scores -> timed notes, instrumentations), ``render``
(FluidSynth -> 11025 Hz, level), ``store`` (FLAC + checksum + cache entry),
``pool`` (worker processes with a time limit per task), ``build`` (``corpus
build``), ``ingest`` (``corpus add``), ``manifest``, ``cache``, ``dataset``
(``AudioMelDataset``, ``MelWindowDataset``), ``cli``, ``demo`` (tiny test scores).

Nothing here imports torch; music21 and fluidsynth are imported where used.
"""
