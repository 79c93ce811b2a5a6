"""Audio for the render statistics: the model's renders, real test audio, real-chunk cut-and-paste.

numpy only at module level (``melsynth eval prior`` runs without torch). Every clip
goes through the same vocoder (the bundle's default, ``classical`` for the shipped
bundles), so comparing model and real figures cancels the vocoder's own effect.
All audio is at the mel spec's rate (11025 Hz); figures come from
``training.prior.render_stats``.
"""
from __future__ import annotations

import numpy as np

from melsynth.engine.dsp.features import MelSpec
from melsynth.training.prior.render_stats import STAT_KEYS, mean_render_stats, stat_ratios

DEFAULT_SEEDS = (1, 2, 3, 4)      # melsynth eval prior --seeds 4: seeds 1..4
DEFAULT_RENDER_SECONDS = 20.0     # the 4 seeds x 20 s
RENDER_WARMUP_STEPS = 4           # latent steps rendered and dropped before a measured render
CURVE_CLIPS = 2                   # learning curve: 2 x 10 s of generated mel
CURVE_SECONDS = 10.0


def classical_vocoder(spec: MelSpec | None = None, bundle=None):
    """The bundle's default vocoder, or (no bundle) a ``classical`` one with the shipped params.

    ``engine.vocoder.ClassicalVocoder``'s defaults (3 magnitude iterations, RTISI-LA with
    6 iterations, look-ahead 2, momentum 0.99, gradient init) are those of models/default.
    """
    from melsynth.engine.runtime.vocoder import ClassicalVocoder, load_vocoder

    if bundle is not None:
        return load_vocoder(bundle)
    return ClassicalVocoder(spec or MelSpec())


def vocode(vocoder, log_mel: np.ndarray) -> np.ndarray:
    """``(n_mels, frames)`` log10 mel -> ``(frames * hop,)`` float32 audio (offline, a fresh stream)."""
    return vocoder.offline(np.ascontiguousarray(log_mel, dtype=np.float32))


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"4"`` -> seeds 1..4; ``"11-14"`` -> 11..14; ``"1,5,9"`` -> those. Raises naming the text."""
    text = str(text).strip()
    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(",") if s.strip())
        elif "-" in text.lstrip("-"):
            lo, hi = text.split("-", 1)
            seeds = tuple(range(int(lo), int(hi) + 1))
        else:
            seeds = tuple(range(1, int(text) + 1))
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give a count (4), a range (11-14) or a list (1,5,9)") from None
    if not seeds:
        raise ValueError(f"--seeds {text!r} names no seed")
    return seeds


def model_renders(bundle, seeds=DEFAULT_SEEDS, seconds: float = DEFAULT_RENDER_SECONDS,
                  walk_speed: float | None = None, walk_spread: float | None = None,
                  warmup_steps: int = RENDER_WARMUP_STEPS) -> list[np.ndarray]:
    """One ``(seconds * rate,)`` clip per seed, rendered exactly as ``melsynth render`` does
    (seeded latent walk at the default speed and spread, the bundle's default vocoder), after
    ``warmup_steps`` latent steps, which are rendered and dropped.

    A render starts from silence: the vocoder's latency, then the prior's first steps from zero
    state. The onset detector normalises its envelope to the clip's largest peak, so that one
    entry can hide every later onset (a 20 s render of the shipped prior with its start: 0.1
    onsets / s; without: 4.35). Real clips are cut from the middle of the music, and so are
    FD-mel's windows (``evaluate.EVAL_WARMUP_STEPS``); the renders are measured the same way::

        render   [ warm-up: warmup_steps latent steps | seconds .............. ]
        clip                                          [ seconds .............. ]
    """
    from melsynth.engine.stream.controls import WALK_SPEED, WALK_SPREAD
    from melsynth.engine.offline.render import render_walk

    speed = WALK_SPEED if walk_speed is None else walk_speed
    spread = WALK_SPREAD if walk_spread is None else walk_spread
    rate = bundle.mel.sample_rate
    skip = warmup_steps * bundle.prior.latent_frames * bundle.mel.hop_length
    want = int(round(seconds * rate))
    return [render_walk(bundle, (skip + want) / rate, int(s), speed, spread)[skip:skip + want] for s in seeds]


def _clip_frames(split, seconds: float, spec: MelSpec) -> int:
    """Frames of a ``seconds`` clip, at most the split's longest file."""
    return max(2, min(int(round(seconds * spec.frame_rate)), max(m.shape[1] for m in split.mels)))


def real_clips(split, vocoder, n: int, seconds: float, rng: np.random.Generator,
               spec: MelSpec | None = None) -> list[np.ndarray]:
    """``n`` real clips of ``seconds`` (random starts over ``split``'s frames), resynthesised from their mel."""
    spec = spec or MelSpec()
    frames = _clip_frames(split, seconds, spec)
    return [vocode(vocoder, w) for w in split.sample_windows(n, frames, rng)]


def real_chunk_clips(split, vocoder, n: int, seconds: float, chunk_frames: int, rng: np.random.Generator,
                     spec: MelSpec | None = None) -> list[np.ndarray]:
    """``n`` clips of ``seconds`` made of random real ``chunk_frames`` chunks end to end, vocoded."""
    spec = spec or MelSpec()
    frames = int(round(seconds * spec.frame_rate))
    n_chunks = -(-frames // chunk_frames)
    return [vocode(vocoder, split.chunk_sequence(n_chunks, chunk_frames, rng)[:, :frames]) for _ in range(n)]


def generated_clips(sample, latent_size: int, latent_frames: int, vocoder, n: int = CURVE_CLIPS,
                    seconds: float = CURVE_SECONDS, rng: np.random.Generator | None = None,
                    spec: MelSpec | None = None, warmup_steps: int = RENDER_WARMUP_STEPS) -> list[np.ndarray]:
    """``n`` clips of ``seconds`` from a ``SampleFn`` handed i.i.d. N(0, 1) latents (one batch;
    ``evaluate.walk_sample_fn`` plays the engine's walk instead), after ``warmup_steps`` latent
    steps of context, vocoded."""
    spec = spec or MelSpec()
    rng = rng or np.random.default_rng(0)
    frames = int(round(seconds * spec.frame_rate))
    steps = warmup_steps + -(-frames // latent_frames)
    z = rng.standard_normal((n, latent_size, steps)).astype(np.float32)
    mel = np.asarray(sample(z), dtype=np.float32)
    if mel.shape != (n, spec.n_mels, steps * latent_frames):
        raise ValueError(f"the prior returned shape {mel.shape}, expected {(n, spec.n_mels, steps * latent_frames)}")
    start = warmup_steps * latent_frames
    return [vocode(vocoder, spec.denormalize(m[:, start:start + frames])) for m in mel]


def stats_block(clips, prefix: str = "", reference: dict[str, float] | None = None,
                sample_rate: int = 11025) -> dict[str, float]:
    """Mean render stats of ``clips`` as ``{prefix + key}``; with ``reference`` also ``{prefix + key + '_ratio'}``."""
    stats = mean_render_stats(clips, sample_rate)
    out = {prefix + k: stats[k] for k in STAT_KEYS}
    if reference is not None:
        out.update({prefix + k: v for k, v in stat_ratios(stats, reference).items()})
    return out
