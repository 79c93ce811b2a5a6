"""Training checkpoints that travel: bfloat16, in parts under a size cap.

A lent GPU machine hands back at most 8 files of 16 MiB each (64 MiB in all).
A prior run's ``checkpoint.pt`` (generator, critic, their optimisers) is 87 MB
in float32; without the critic a continuation has to start a fresh one, which
knocks the trained generator back first (fd_ratio 3.3 -> 7.4 after 0.25
CPU-hours, measured). ``pack_checkpoint`` stores every floating tensor as
bfloat16 (float32's exponent range, so Adam's tiny second moments survive, as
they would not in float16) and splits the bytes into parts;
``unpack_checkpoint`` joins them and restores float32, giving a
``checkpoint.pt`` that ``--resume`` takes.

The parts also carry the run folder's own small files (``config.json``,
``learning_curve.csv``), so a run packed on one machine resumes on a fresh one,
curve and all. A run's ``best_generator.pt`` packs the same way (an autoencoder
whose encoder a later run's codes depend on) and unpacks under its own name; holding no optimiser
moments, it packs in float16.

    melsynth checkpoint pack runs/prior/NAME $OUT/ckpt      # -> $OUT/ckpt.part0, ckpt.part1, ...
    melsynth checkpoint unpack runs/prior/NAME ckpt.part*   # -> runs/prior/NAME/checkpoint.pt (+ config, curve)
    melsynth checkpoint pack runs/prior/AE/best_generator.pt $OUT/ae   # -> unpacks as best_generator.pt
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from melsynth.engine.atomic import atomic_write
from melsynth.training.gan import BEST, CHECKPOINT, CONFIG, CURVE, load_checkpoint, save_torch_atomic

PART_BYTES = 15 * 2**20
RUN_FILES = (CONFIG, CURVE)     # the run folder's text files that travel with the checkpoint
PACKED = "packed"               # key of the parts' own record: file name and run files


def _cast(obj: Any, dtype: torch.dtype, only: tuple[torch.dtype, ...] | None = None) -> Any:
    """``obj`` with every floating array (of a dtype in ``only``, if given) cast to ``dtype``.

    Scalars stay as they are: an optimiser's step count (a float tensor) would lose
    its exact value in bfloat16, and they cost nothing.
    """
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.dim() > 0 and (only is None or obj.dtype in only):
            return obj.to(dtype)
        return obj
    if isinstance(obj, dict):
        return {k: _cast(v, dtype, only) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(v, dtype, only) for v in obj)
    return obj


def _without_moments(optimiser: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if optimiser is None else {**optimiser, "state": {}}


def pack_checkpoint(source: str | os.PathLike, prefix: str | os.PathLike, part_bytes: int = PART_BYTES,
                    weights_only: bool = False) -> list[Path]:
    """Write a checkpoint as bfloat16 parts ``prefix.part0``, ``prefix.part1``, ...; returns them.

    ``source`` is a run folder (its ``checkpoint.pt``) or one of its checkpoint files
    (``best_generator.pt``); the run folder's ``config.json`` and ``learning_curve.csv`` go along.
    ``weights_only`` drops the optimisers' moments (their settings stay, so ``--resume`` takes
    it): a resumed Adam rebuilds them within about ``1 / (1 - beta2)`` steps, 10 at the GAN
    recipes' 0.9, and the parts shrink by the moments' two copies of every weight.
    """
    source = Path(source)
    path = source / CHECKPOINT if source.is_dir() else source
    if path.name not in (CHECKPOINT, BEST):
        raise ValueError(f"{path}: pack takes a run folder, its {CHECKPOINT} or its {BEST}")
    state = load_checkpoint(path)
    if weights_only:
        state = {**state, **{k: _without_moments(state.get(k)) for k in ("opt_g", "opt_d") if k in state}}
    if PACKED in state:
        raise ValueError(f"{path}: already has a {PACKED!r} entry")
    run_files = {name: (path.parent / name).read_text() for name in RUN_FILES if (path.parent / name).is_file()}
    buf = io.BytesIO()
    # Adam's tiny second moments need bfloat16's range; weights alone keep float16's finer steps.
    moments = any((state.get(k) or {}).get("state") for k in ("opt_g", "opt_d"))
    dtype = torch.bfloat16 if moments else torch.float16
    torch.save({**_cast(state, dtype, only=(torch.float32,)),
                PACKED: {"file": path.name, "run_files": run_files}}, buf)
    data = buf.getvalue()
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, start in enumerate(range(0, len(data), part_bytes)):
        part = prefix.with_name(f"{prefix.name}.part{i}")
        part.write_bytes(data[start:start + part_bytes])
        parts.append(part)
    return parts


def unpack_checkpoint(run_dir: str | os.PathLike, parts: list[str | os.PathLike]) -> Path:
    """Join ``parts`` (in part-number order) into ``run_dir/checkpoint.pt`` (or the packed file's own
    name, ``best_generator.pt``) with float32 tensors; the packed run files are written where absent."""
    def number(p: Path) -> int:
        suffix = p.suffix  # ".part3"
        if not suffix.startswith(".part") or not suffix[5:].isdigit():
            raise ValueError(f"{p}: not a checkpoint part (want NAME.partN)")
        return int(suffix[5:])

    paths = sorted((Path(p) for p in parts), key=number)
    numbers = [number(p) for p in paths]
    if numbers != list(range(len(paths))):
        raise ValueError(f"checkpoint parts {', '.join(map(str, paths))}: numbers {numbers}, want 0..{len(paths) - 1}")
    data = b"".join(p.read_bytes() for p in paths)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for damaged bytes
        raise ValueError(f"checkpoint parts {paths[0]}..: unreadable ({exc})") from exc
    packed = state.pop(PACKED, {})
    name = packed.get("file", CHECKPOINT)
    if name not in (CHECKPOINT, BEST):
        raise ValueError(f"checkpoint parts {paths[0]}..: packed from {name!r}, not a checkpoint file")
    run_dir = Path(run_dir)
    out = run_dir / name
    out.parent.mkdir(parents=True, exist_ok=True)
    save_torch_atomic(out, _cast(state, torch.float32, only=(torch.bfloat16, torch.float16)))
    for file_name, text in packed.get("run_files", {}).items():
        if file_name in RUN_FILES and not (run_dir / file_name).exists():
            atomic_write(run_dir / file_name, lambda f, text=text: f.write(text), mode="w")
    return out
