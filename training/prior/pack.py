"""A portable subset of a corpus's mel for training the prior elsewhere (a rented GPU).

A built corpus is gigabytes of float32 mel; a remote machine may take only tens
of megabytes. ``pack_subset`` draws random chunks (default 20 s) from every
split, spread over all files, and stores them as 8-bit normalised mel
(quantisation step 2/255 in ``MelSpec.normalize`` space, 0.27 dB). ``unpack``
turns the file back into a corpus folder (manifest.json + mel cache, no audio)
that every reader of a corpus accepts; dequantised values get a uniform
dither of one step so the real data shows no quantisation grid a critic
could learn.

    python -m melsynth.training.prior.pack corpus/default .gpu/prior_subset.npz --hours 1.5

``compact_init`` does the same for a generator to start from (``--init``): the
moving-average weights alone, in float16, put in both the trained and the
averaged slots (a third of ``best_generator.pt``).

    python -m melsynth.training.prior.pack --compact-init runs/prior/NAME/best_generator.pt .gpu/prior/init_fp16.pt
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from melsynth.engine.dsp.features import MelSpec

LEVELS = 255


def quantise(norm_mel: np.ndarray) -> np.ndarray:
    return np.clip(np.round((np.asarray(norm_mel) + 1.0) * (LEVELS / 2.0)), 0, LEVELS).astype(np.uint8)


def dequantise(q: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    x = q.astype(np.float32) * (2.0 / LEVELS) - 1.0
    if rng is not None:
        x += (rng.random(x.shape, dtype=np.float32) - 0.5) * (2.0 / LEVELS)
    return x


def pack_subset(corpus_dir: str | os.PathLike, out_file: str | os.PathLike, hours: dict[str, float],
                chunk_seconds: float = 20.0, seed: int = 0, spec: MelSpec | None = None) -> dict[str, float]:
    """Write ``out_file`` (.npz) with about ``hours[split]`` hours of random chunks per split; returns hours packed."""
    from melsynth.training.prior.data import load_split

    spec = spec or MelSpec()
    rng = np.random.default_rng(seed)
    chunk = int(round(chunk_seconds * spec.frame_rate))
    arrays: dict[str, np.ndarray] = {}
    meta = {"spec": spec.to_dict(), "chunk_frames": chunk, "chunks": []}
    packed = {}
    for split, h in hours.items():
        data = load_split(corpus_dir, split, spec, min_frames=chunk)
        n = max(1, int(round(h * 3600 * spec.frame_rate / chunk)))
        for i, (f, s) in enumerate(data.sample_starts(n, chunk, rng)):
            key = f"{split}_{i:05d}"
            arrays[key] = quantise(spec.normalize(np.asarray(data.mels[f][:, s:s + chunk])))
            meta["chunks"].append({"key": key, "split": split, "source": data.paths[f], "start": s})
        packed[split] = n * chunk / spec.frame_rate / 3600
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    from melsynth.engine.atomic import atomic_write

    atomic_write(out_file, lambda f: np.savez_compressed(f, **arrays))
    return packed


def unpack(packed_file: str | os.PathLike, corpus_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A corpus folder (manifest + mel cache entries) from a ``pack_subset`` file."""
    from melsynth.engine.atomic import atomic_write_json
    from melsynth.training.corpus import cache
    from melsynth.training.corpus.manifest import FileEntry, Manifest, manifest_path

    rng = np.random.default_rng(seed)
    corpus_dir = Path(corpus_dir)
    with np.load(packed_file) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        spec = MelSpec.from_dict(meta["spec"])
        manifest = Manifest(sample_rate=spec.sample_rate)
        splits = {}
        for i, c in enumerate(meta["chunks"]):
            mel = spec.denormalize(dequantise(z[c["key"]], rng)).astype(np.float32)
            samples = (mel.shape[1] - 1) * spec.hop_length
            sha = f"{i:08x}" + "0" * 56
            path = cache.entry_path(corpus_dir, spec, sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, mel)
            rel = f"audio/{c['key']}.flac"
            manifest.files.append(FileEntry(path=rel, duration=samples / spec.sample_rate, samples=samples,
                                            composer="packed", work=c["source"], instrumentation="packed",
                                            sha256=sha, source=c["source"], origin="added", split=c["split"]))
            splits[rel] = c["split"]
    (cache.cache_dir(corpus_dir, spec) / "spec.json").write_text(json.dumps(spec.to_dict()))
    data = manifest.to_dict()
    for f in data["files"]:  # keep the packed splits (to_dict re-derives them from work names)
        f["split"] = splits[f["path"]]
    atomic_write_json(manifest_path(corpus_dir), data)
    return corpus_dir


def compact_init(checkpoint: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """A float16 ``--init`` file from a prior checkpoint: its averaged generator (and VAE encoder).

    The trainer's generator module holds ``net.*`` (trained), ``ema.*`` (their
    moving average) and ``encoder.*``; the average is what was scored, so it
    seeds both slots. One shared tensor per pair keeps the file at one copy.
    """
    import torch

    from melsynth.training.gan import load_checkpoint, save_torch_atomic

    state = load_checkpoint(checkpoint)
    weights = state.get("generator")
    if state.get("task_name") != "prior" or not isinstance(weights, dict) \
            or not any(k.startswith("ema.") for k in weights):
        raise ValueError(f"{checkpoint}: not a prior checkpoint with averaged generator weights")
    half = {k: (v.half() if torch.is_floating_point(v) else v) for k, v in weights.items() if not k.startswith("net.")}
    compact = {k: half["ema." + k[4:]] if k.startswith("net.") else half[k] for k in weights}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_torch_atomic(out_file, {"task_name": state["task_name"], "task": state["task"],
                                 "step": state.get("step", -1), "generator": compact})
    return out_file


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("corpus", help="built corpus folder (with --compact-init: the checkpoint)")
    p.add_argument("out", help="output .npz (with --compact-init: the float16 init file)")
    p.add_argument("--compact-init", action="store_true",
                   help="instead: write a float16 --init file from the prior checkpoint CORPUS to OUT")
    p.add_argument("--hours", type=float, default=1.5, help="hours of train-split chunks")
    p.add_argument("--test-hours", type=float, default=0.15, help="hours of test-split chunks (validation)")
    p.add_argument("--chunk-seconds", type=float, default=20.0, help="length of each chunk")
    p.add_argument("--seed", type=int, default=0, help="seed of the chunk draw")
    a = p.parse_args(argv)
    if a.compact_init:
        out = compact_init(a.corpus, a.out)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
        return 0
    packed = pack_subset(a.corpus, a.out, {"train": a.hours, "test": a.test_hours}, a.chunk_seconds, a.seed)
    print(f"packed {packed} hours into {a.out} ({Path(a.out).stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
