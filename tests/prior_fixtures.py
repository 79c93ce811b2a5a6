"""Fixtures of the prior's tests: a synthetic corpus (manifest + mel cache, no audio) and tiny configs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from melsynth.engine.dsp.features import MelSpec


def synthetic_log_mel(frames: int, rng: np.random.Generator, spec: MelSpec) -> np.ndarray:
    """``(n_mels, frames)`` log10 mel of held harmonic 'notes' over a noise floor: music-like, cheap."""
    bins = np.arange(spec.n_mels)[:, None]
    out = np.full((spec.n_mels, frames), -4.0, dtype=np.float64) + 0.1 * rng.standard_normal((spec.n_mels, frames))
    t = 0
    while t < frames:
        length = int(rng.integers(8, 40))
        f0 = rng.uniform(10, 60)
        level = rng.uniform(-1.5, 0.0)
        env = np.exp(-np.arange(length) / rng.uniform(10, 60))[None]
        note = np.full((spec.n_mels, length), -6.0)
        for h in range(1, 6):
            centre = f0 * (1 + 0.6 * (h - 1))
            note = np.maximum(note, level - 0.4 * (h - 1) - 0.02 * (bins - centre) ** 2)
        seg = slice(t, min(frames, t + length))
        out[:, seg] = np.maximum(out[:, seg], (note + np.log10(env + 1e-3))[:, : seg.stop - seg.start])
        t += length
    return out.astype(np.float32)


def make_synthetic_corpus(root: Path, files: dict[str, int] | None = None, frames: int = 700, seed: int = 0,
                          spec: MelSpec | None = None) -> Path:
    """A corpus folder the prior can read: manifest.json and a mel cache entry per file (no FLACs needed)."""
    from melsynth.training.corpus import cache
    from melsynth.training.corpus.manifest import FileEntry, Manifest

    spec = spec or MelSpec()
    files = files or {"train": 6, "validation": 1, "test": 3}
    rng = np.random.default_rng(seed)
    manifest = Manifest()
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for split, count in files.items():
        for i in range(count):
            samples = (frames - 1) * spec.hop_length
            sha = f"{n:064x}"
            manifest.files.append(FileEntry(path=f"audio/{split}_{i}.flac", duration=samples / spec.sample_rate,
                                            samples=samples, composer="synthetic", work=f"synthetic/{split}{i}",
                                            instrumentation="synthetic", sha256=sha, source="synthetic",
                                            origin="added", split=split))
            path = cache.entry_path(root, spec, sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, synthetic_log_mel(frames, rng, spec))
            n += 1
    # Manifest.to_dict re-assigns splits by work hash; keep ours (the test needs each split filled).
    from melsynth.engine.atomic import atomic_write_json
    from melsynth.training.corpus.manifest import manifest_path

    data = manifest.to_dict()
    by_path = {e.path: e.split for e in manifest.files}
    for f in data["files"]:
        f["split"] = by_path[f["path"]]
    atomic_write_json(manifest_path(root), data)
    return root


def tiny_generator_config():
    from melsynth.training.prior.config import GeneratorConfig

    return GeneratorConfig(latent_size=8, upsample=(2, 2), channels=(16, 16, 12),
                           dilations=((1,), (1, 2), (1, 3)))


def tiny_prior_config(**overrides):
    from melsynth.training.prior.config import DiscriminatorConfig, PriorConfig

    base = dict(generator=tiny_generator_config(),
                discriminator=DiscriminatorConfig(channels=(16, 16, 24), kernel_size=3, freq_channels=(4, 8)),
                window_frames=32, warmup_steps=2, eval_windows=48, eval_window_frames=32)
    base.update(overrides)
    return PriorConfig(**base)


def one_thread():
    """Generator for an autouse fixture: torch on one thread (tiny nets; the machine is shared), restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
