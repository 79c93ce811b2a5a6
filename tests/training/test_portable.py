"""Checkpoints that travel: bfloat16 parts under a size cap, joined back into a resumable run."""
from __future__ import annotations

import shutil

import pytest
import torch

from melsynth.training.gan import RunLimits, train
from melsynth.training.portable import pack_checkpoint, unpack_checkpoint
from melsynth.training.prior.train import PriorTask, default_trainer_config
from tests.prior_fixtures import make_synthetic_corpus, tiny_prior_config


def test_packed_parts_resume_where_the_run_stopped(tmp_path):
    corpus = make_synthetic_corpus(tmp_path / "corpus")
    cfg = default_trainer_config(batch_size=2, validate_steps=0, validate_minutes=60, warmup_steps=1)
    run = tmp_path / "run"
    train(PriorTask(tiny_prior_config(), corpus), cfg, run, RunLimits(max_steps=3, progress=False))
    original = torch.load(run / "checkpoint.pt", weights_only=False)

    parts = pack_checkpoint(run, tmp_path / "out" / "ckpt", part_bytes=200_000)
    assert len(parts) > 1 and all(p.stat().st_size <= 200_000 for p in parts)
    total = sum(p.stat().st_size for p in parts)
    assert total < (run / "checkpoint.pt").stat().st_size * 0.6          # bfloat16: about half

    elsewhere = tmp_path / "back"
    shutil.copytree(run, elsewhere, ignore=shutil.ignore_patterns("checkpoint.pt"))
    unpack_checkpoint(elsewhere, list(reversed(parts)))                   # any order of names
    restored = torch.load(elsewhere / "checkpoint.pt", weights_only=False)
    assert restored["step"] == original["step"]
    for k, v in original["generator"].items():
        w = restored["generator"][k]
        assert w.dtype == v.dtype
        torch.testing.assert_close(w, v, rtol=1e-2, atol=1e-3)           # bfloat16 rounding

    steps = [s["step"] for s in restored["opt_g"]["state"].values() if "step" in s]
    assert steps and all(float(s) == 3 for s in steps)                   # scalars kept exact
    result = train(PriorTask(tiny_prior_config(), corpus), cfg, elsewhere,
                   RunLimits(max_steps=5, resume=True, progress=False))
    assert result.step == 5


def test_a_missing_part_is_a_clear_error(tmp_path):
    for i in (0, 2):
        (tmp_path / f"ckpt.part{i}").write_bytes(b"x")
    with pytest.raises(ValueError, match="want 0..1"):
        unpack_checkpoint(tmp_path / "run", [tmp_path / "ckpt.part0", tmp_path / "ckpt.part2"])
    with pytest.raises(ValueError, match="not a checkpoint part"):
        unpack_checkpoint(tmp_path / "run", [tmp_path / "ckpt.bin"])
