"""Checkpoints that travel: bfloat16 parts under a size cap, joined back into a resumable run."""
from __future__ import annotations

import pytest
import torch

from melsynth.training.gan import RunLimits, train
from melsynth.training.portable import pack_checkpoint, unpack_checkpoint
from melsynth.training.prior.train import PriorTask, default_trainer_config
from tests.prior_fixtures import make_synthetic_corpus, tiny_prior_config

CONFIG = default_trainer_config(batch_size=2, validate_steps=3, validate_minutes=60, warmup_steps=1)


@pytest.fixture
def trained(tmp_path):
    """``(corpus, run)``: a prior run of 3 steps, validated at its last (so it has a best_generator.pt)."""
    corpus = make_synthetic_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    train(PriorTask(tiny_prior_config(), corpus), CONFIG, run, RunLimits(max_steps=3, progress=False))
    return corpus, run


def _load(path):
    return torch.load(path, weights_only=False)


def _resume(corpus, run, steps: int) -> int:
    return train(PriorTask(tiny_prior_config(), corpus), CONFIG, run,
                 RunLimits(max_steps=steps, resume=True, progress=False)).step


def _assert_weights_close(restored: dict, original: dict, rtol: float, atol: float) -> None:
    assert set(restored) == set(original)
    for k, v in original.items():
        assert restored[k].dtype == v.dtype
        torch.testing.assert_close(restored[k], v, rtol=rtol, atol=atol)


def test_packed_parts_resume_where_the_run_stopped(trained, tmp_path):
    corpus, run = trained
    original = _load(run / "checkpoint.pt")

    parts = pack_checkpoint(run, tmp_path / "out" / "ckpt", part_bytes=200_000)
    assert len(parts) > 1 and all(p.stat().st_size <= 200_000 for p in parts)
    total = sum(p.stat().st_size for p in parts)
    assert total < (run / "checkpoint.pt").stat().st_size * 0.6          # bfloat16: about half

    elsewhere = tmp_path / "back"                                        # a fresh machine: no run folder
    assert unpack_checkpoint(elsewhere, list(reversed(parts))) == elsewhere / "checkpoint.pt"  # any order
    assert (elsewhere / "config.json").read_text() == (run / "config.json").read_text()
    assert (elsewhere / "learning_curve.csv").read_text() == (run / "learning_curve.csv").read_text()
    restored = _load(elsewhere / "checkpoint.pt")
    assert "packed" not in restored and restored["step"] == original["step"]
    _assert_weights_close(restored["generator"], original["generator"], rtol=1e-2, atol=1e-3)  # bfloat16

    steps = [s["step"] for s in restored["opt_g"]["state"].values() if "step" in s]
    assert steps and all(float(s) == 3 for s in steps)                   # scalars kept exact
    assert _resume(corpus, elsewhere, 5) == 5


def test_weights_only_parts_are_smaller_finer_and_still_resume(trained, tmp_path):
    corpus, run = trained
    original = _load(run / "checkpoint.pt")
    full = sum(p.stat().st_size for p in pack_checkpoint(run, tmp_path / "full"))
    parts = pack_checkpoint(run, tmp_path / "slim", weights_only=True)
    assert sum(p.stat().st_size for p in parts) < 0.6 * full          # no Adam moments
    back = tmp_path / "back"
    unpack_checkpoint(back, parts)
    restored = _load(back / "checkpoint.pt")
    assert restored["opt_g"]["state"] == {} and restored["opt_g"]["param_groups"] == original["opt_g"]["param_groups"]
    _assert_weights_close(restored["generator"], original["generator"], rtol=1e-3, atol=1e-4)   # float16
    assert _resume(corpus, back, 5) == 5
    assert _load(back / "checkpoint.pt")["opt_g"]["state"]              # moments rebuilt


def test_a_best_generator_unpacks_under_its_own_name(trained, tmp_path):
    _, run = trained
    best = _load(run / "best_generator.pt")
    parts = pack_checkpoint(run / "best_generator.pt", tmp_path / "ae")
    back = tmp_path / "back"
    assert unpack_checkpoint(back, parts) == back / "best_generator.pt"
    assert not (back / "checkpoint.pt").exists()
    restored = _load(back / "best_generator.pt")
    assert restored["step"] == best["step"]
    _assert_weights_close(restored["generator"], best["generator"], rtol=1e-3, atol=1e-4)   # float16: finer
    with pytest.raises(ValueError, match="pack takes a run folder"):
        pack_checkpoint(run / "config.json", tmp_path / "bad")


def test_a_missing_part_is_a_clear_error(tmp_path):
    for i in (0, 2):
        (tmp_path / f"ckpt.part{i}").write_bytes(b"x")
    with pytest.raises(ValueError, match="want 0..1"):
        unpack_checkpoint(tmp_path / "run", [tmp_path / "ckpt.part0", tmp_path / "ckpt.part2"])
    with pytest.raises(ValueError, match="not a checkpoint part"):
        unpack_checkpoint(tmp_path / "run", [tmp_path / "ckpt.bin"])
