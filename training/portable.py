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

    melsynth checkpoint pack runs/prior/NAME $OUT/ckpt      # -> $OUT/ckpt.part0, ckpt.part1, ...
    melsynth checkpoint unpack runs/prior/NAME ckpt.part*   # -> runs/prior/NAME/checkpoint.pt
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from melsynth.training.gan import CHECKPOINT, load_checkpoint, save_torch_atomic

PART_BYTES = 15 * 2**20


def _cast(obj: Any, dtype: torch.dtype, only: torch.dtype | None = None) -> Any:
    """``obj`` with every floating array (of dtype ``only``, if given) cast to ``dtype``.

    Scalars stay as they are: an optimiser's step count (a float tensor) would lose
    its exact value in bfloat16, and they cost nothing.
    """
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.dim() > 0 and (only is None or obj.dtype == only):
            return obj.to(dtype)
        return obj
    if isinstance(obj, dict):
        return {k: _cast(v, dtype, only) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cast(v, dtype, only) for v in obj)
    return obj


def pack_checkpoint(run_dir: str | os.PathLike, prefix: str | os.PathLike, part_bytes: int = PART_BYTES) -> list[Path]:
    """Write ``run_dir/checkpoint.pt`` as bfloat16 parts ``prefix.part0``, ``prefix.part1``, ...; returns them."""
    state = load_checkpoint(Path(run_dir) / CHECKPOINT)
    buf = io.BytesIO()
    torch.save(_cast(state, torch.bfloat16, only=torch.float32), buf)
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
    """Join ``parts`` (in part-number order) into ``run_dir/checkpoint.pt`` with float32 tensors."""
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
    out = Path(run_dir) / CHECKPOINT
    out.parent.mkdir(parents=True, exist_ok=True)
    save_torch_atomic(out, _cast(state, torch.float32, only=torch.bfloat16))
    return out
