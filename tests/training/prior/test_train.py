"""Training the prior through the shared GAN trainer: runs, validates, checkpoints, resumes, CLI."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.training.gan import RunLimits, train
from melsynth.training.prior.train import (PriorModule, PriorTask, crop_windows, default_trainer_config, load_generator,
                                           slim_checkpoint)
from tests.paths import REPO
from tests.prior_fixtures import make_synthetic_corpus, one_thread, tiny_prior_config

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("prior_train") / "corpus")


def test_crop_windows_picks_each_offset():
    mel = torch.arange(20, dtype=torch.float32)[None, None].repeat(2, 3, 1)
    out = crop_windows(mel, 5, 4, torch.tensor([0, 3]))
    assert out[0, 0].tolist() == [4, 5, 6, 7, 8] and out[1, 2].tolist() == [7, 8, 9, 10, 11]


def test_ema_moves_towards_the_weights():
    g = PriorModule(tiny_prior_config(ema_decay=0.5))
    with torch.no_grad():
        for p in g.net.parameters():
            p.add_(1.0)
    g.ema_updates = 1000                      # past the warm-up: the configured decay
    before = [p.clone() for p in g.ema.parameters()]
    g.update_ema()
    for b, a, p in zip(before, g.ema.parameters(), g.net.parameters()):
        torch.testing.assert_close(a, (b + p) / 2)
    assert not any(p.requires_grad for p in g.ema.parameters())


def test_ema_warm_up_forgets_the_initial_weights():
    """After 300 updates a plain 0.999 average is still 74 % initial weights; the warm-up's is not."""
    g = PriorModule(tiny_prior_config(ema_decay=0.999))
    with torch.no_grad():
        for p in g.net.parameters():
            p.add_(1.0)
    start = [p.clone() for p in g.ema.parameters()]
    for _ in range(300):
        g.update_ema()
    share_of_start = [float(((p - a) / (p - s)).mean()) for s, a, p in
                      zip(start, g.ema.parameters(), g.net.parameters())]
    assert max(share_of_start) < 0.05 and g.current_decay() < 0.999


def test_batches_are_normalised_real_windows(corpus):
    task = PriorTask(tiny_prior_config(), corpus)
    batch = next(task.batches(0, 1, 0, 3))
    # segments: 2 warm-up steps + 32 frames + 1 step of crop slack, 4 frames per step
    assert batch.shape == (3, 256, 44) == (3, 256, task.segment_frames) and batch.dtype == torch.float32
    assert -1.01 <= float(batch.min()) and float(batch.max()) <= 1.0


def test_train_validate_checkpoint_resume(corpus, tmp_path):
    task = PriorTask(tiny_prior_config(), corpus)
    cfg = default_trainer_config(batch_size=4, validate_steps=3, validate_minutes=60, lr_g=1e-3, lr_d=1e-3,
                                 warmup_steps=2)   # both stages: 2 VAE steps, then adversarial
    run = tmp_path / "run"
    result = train(task, cfg, run, RunLimits(max_steps=3, progress=False))
    assert result.step == 3 and result.stopped_by == "max_steps"
    for name in ("checkpoint.pt", "best_generator.pt", "learning_curve.csv", "config.json"):
        assert (run / name).is_file(), name
    rows = list(csv.DictReader(open(run / "learning_curve.csv")))
    assert float(rows[-1]["fd_ratio"]) > 0 and float(rows[-1]["cpu_hours"]) > 0
    assert "fd_gaussian" in rows[-1] and "ndb" in rows[-1]
    assert float(rows[-1]["onset_rate"]) >= 0 and float(rows[-1]["flatness"]) > 0   # renders at the walk
    saved = json.loads((run / "config.json").read_text())
    assert saved["task_name"] == "prior" and saved["task"]["prior"]["window_frames"] == 32

    task2 = PriorTask(tiny_prior_config(), corpus)
    result2 = train(task2, cfg, run, RunLimits(max_steps=5, resume=True, progress=False))
    assert result2.step == 5
    generator, info = load_generator(run)
    assert info["step"] >= 3 and generator.latent_size == 8
    z = torch.randn(1, 8, 3)
    with torch.no_grad():
        mel = generator(z)
    assert mel.shape == (1, 256, 12) and torch.isfinite(mel).all()
    slim = slim_checkpoint(run, tmp_path / "slim.pt")
    assert slim.stat().st_size < (run / "best_generator.pt").stat().st_size * 0.7
    again, slim_info = load_generator(slim)
    assert slim_info["step"] == info["step"]
    with torch.no_grad():
        torch.testing.assert_close(again(z), mel)

    # the float16 --init file seeds both the trained and the averaged slots with the average
    from melsynth.training.gan import with_generator_init
    from melsynth.training.prior.pack import compact_init

    small = compact_init(run / "best_generator.pt", tmp_path / "init16.pt")
    assert small.stat().st_size < (run / "best_generator.pt").stat().st_size * 0.55   # float16
    stored = torch.load(small, weights_only=False)["generator"]
    assert all(stored[k].data_ptr() == stored["ema." + k[4:]].data_ptr() for k in stored if k.startswith("net."))
    seeded = with_generator_init(PriorTask(tiny_prior_config(), corpus), small).build_generator()
    with torch.no_grad():
        for net_out in (seeded.net(z), seeded.ema(z)):
            torch.testing.assert_close(net_out, mel, atol=5e-3, rtol=0)
    with pytest.raises(ValueError, match="slim.pt"):
        compact_init(slim, tmp_path / "nope.pt")   # a slim file has no trained/averaged pair to compact


def test_vae_warm_start_steps_lower_the_reconstruction_loss(corpus):
    from melsynth.training.gan import _Trainer  # one step at a time, same code path as train()

    torch.manual_seed(0)
    task = PriorTask(tiny_prior_config(), corpus)
    trainer = _Trainer(task, default_trainer_config(batch_size=8, lr_g=2e-3, warmup_steps=100), None,
                       RunLimits(progress=False))
    trainer._build(None)
    data = task.batches(0, 1, 0, 8)
    logs = [trainer._train_step(next(data)) for _ in range(15)]
    assert "loss_d" not in logs[0]            # no critic in the warm start
    l1 = [l["vae_l1"] for l in logs]
    assert np.mean(l1[-3:]) < 0.7 * np.mean(l1[:3]), l1


def test_training_steps_lower_the_critic_loss(corpus):
    """Early in the game the critic learns fast: its hinge loss drops over a few steps."""
    from melsynth.training.gan import _Trainer  # one step at a time, same code path as train()

    torch.manual_seed(0)
    task = PriorTask(tiny_prior_config(), corpus)
    trainer = _Trainer(task, default_trainer_config(batch_size=8, lr_d=2e-3, lr_g=1e-5, warmup_steps=0), None,
                       RunLimits(progress=False))
    trainer._build(None)
    data = task.batches(0, 1, 0, 8)
    losses = [trainer._train_step(next(data))["loss_d"] for _ in range(12)]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1, losses


def pca_prior_config():
    """The shipped design in small: PCA generator, PCA critic with the batch-std feature, no VAE."""
    from melsynth.training.prior.config import DiscriminatorConfig, GeneratorConfig

    g = tiny_prior_config().generator
    return tiny_prior_config(generator=GeneratorConfig(**{**g.to_dict(), "pca_components": 6}),
                             discriminator=DiscriminatorConfig(channels=(16, 24), kernel_size=3, pca_input=True,
                                                               minibatch_std=True),
                             vae_weight=0.0)


@pytest.mark.parametrize("design", ["direct", "pca"])
def test_cli_train_then_export(corpus, tmp_path, design):
    from melsynth.cli.main import main
    from melsynth.engine.runtime.bundle import load_bundle

    config = tmp_path / "cfg.json"
    prior = (pca_prior_config() if design == "pca" else tiny_prior_config()).to_dict()
    config.write_text(json.dumps({"prior": prior, "trainer": {"batch_size": 2, "validate_minutes": 60, "warmup_steps": 1}}))
    run = tmp_path / "run"
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(run), "--config", str(config),
                 "--steps", "2", "--no-progress"]) == 0
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(run), "--resume", "--steps", "3",
                 "--no-progress"]) == 0
    assert (run / "prior_reference.npz").is_file()   # the run's fixed validation reference, reused on resume
    bundle = tmp_path / "bundle"
    assert main(["export", "prior", str(run), "--bundle", str(bundle), "--pca", "3", "--pca-latents", "2000",
                 "--regress", "200", "--verify", "50", "--fit-steps", "2"]) == 0
    b = load_bundle(bundle)
    assert b.prior is not None and b.prior.latent_frames == 4
    assert {d.kind for d in b.prior.directions} == {"named", "pca"}
    assert "classical" in b.vocoders
    if design == "direct":   # a new run (new critic) starting from this run's generator
        run2 = tmp_path / "run2"
        assert main(["train", "prior", "--corpus", str(corpus), "--run", str(run2), "--config", str(config),
                     "--init", str(run / "checkpoint.pt"), "--steps", "1", "--no-progress"]) == 0
        assert main(["train", "prior", "--corpus", str(corpus), "--run", str(run2), "--resume",
                     "--init", str(run / "checkpoint.pt"), "--no-progress"]) == 2   # a clear error, no traceback
        first = torch.load(run / "checkpoint.pt", weights_only=False)["step"]
        assert first == 3 and torch.load(run2 / "checkpoint.pt", weights_only=False)["step"] == 1
    if design == "pca":   # the fitted basis travels in the checkpoint, not zeros
        generator, _ = load_generator(run)
        assert float(generator.pca.basis.abs().max()) > 0.01


def test_init_weights_that_do_not_fit_are_a_clear_error(corpus, tmp_path):
    from melsynth.training.gan import TrainError, save_torch_atomic, with_generator_init

    bad = tmp_path / "other.pt"
    save_torch_atomic(bad, {"generator": {"net.input.weight": torch.zeros(3)}})
    task = with_generator_init(PriorTask(tiny_prior_config(), corpus), bad)
    with pytest.raises(TrainError, match="other.pt"):
        task.build_generator()
    save_torch_atomic(bad, {"step": 1})
    with pytest.raises(TrainError, match="no 'generator'"):
        with_generator_init(PriorTask(tiny_prior_config(), corpus), bad)


def test_cli_refuses_a_run_folder_with_a_checkpoint_without_resume(corpus, tmp_path, capsys):
    from melsynth.cli.main import main

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"prior": tiny_prior_config().to_dict(), "trainer": {"batch_size": 2}}))
    args = ["train", "prior", "--corpus", str(corpus), "--run", str(tmp_path / "r"), "--config", str(config),
            "--steps", "1", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2                       # refused with one clear line, not a traceback
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", ["stage1_vae_gan", "stage2_frame_difference_critic", "stage3_gpu_batch64",
                                    "scratch_gpu_batch64"])
def test_shipped_recipe_configs_still_load(recipe):
    """The committed recipe of the shipped prior stays a valid --config as the config classes evolve."""
    from pathlib import Path

    from melsynth.training.prior.config import PriorConfig, load_config_file

    data = load_config_file(REPO / "training/prior/recipes" / f"{recipe}.json")
    prior = PriorConfig.from_dict(data.get("prior", {}))
    trainer = default_trainer_config(**data["trainer"])
    assert prior.discriminator.delta_input == (recipe != "stage1_vae_gan")
    # the VAE warm start belongs to runs that start from nothing, not to continuations (--init)
    assert (trainer.warmup_steps > 0) == (recipe in ("stage1_vae_gan", "scratch_gpu_batch64"))


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (REPO / "training/prior/recipes").glob("twolevel_*.json")))
def test_two_level_recipes_load_and_name_their_level(recipe):
    """Every two-level recipe stays a valid --config; a front's recipe names the autoencoder it decodes with."""
    from melsynth.training.prior.config import PriorConfig, load_config_file
    from melsynth.training.prior.twolevel import TwoLevelConfig

    data = load_config_file(REPO / "training/prior/recipes" / f"{recipe}.json")
    prior = PriorConfig.from_dict(data["prior"])
    twolevel = TwoLevelConfig.from_dict(data["twolevel"])
    default_trainer_config(**data["trainer"])
    if prior.generator.code_size:                 # a latent GAN: a front over an autoencoder's codes
        assert twolevel.autoencoder.startswith("runs/prior_")
    else:                                         # an autoencoder: no front, the code is its input
        assert not twolevel.autoencoder and prior.generator.latent_size == 128


def test_learning_rate_decay_can_start_at_a_later_step():
    """A branch carries the old run's step on: its decay counts from ``lr_decay_from_step``."""
    from types import SimpleNamespace

    from melsynth.training.gan import TrainConfig, TrainError, _Trainer

    def factor(step, **kw):
        return _Trainer._lr_lambda(SimpleNamespace(config=TrainConfig(**kw)))(step)

    assert factor(30_000) == 1.0
    assert factor(1_000, lr_half_life_steps=1_000) == 0.5
    assert factor(30_000, lr_half_life_steps=1_000, lr_decay_from_step=30_000) == 1.0
    assert factor(10, lr_half_life_steps=1_000, lr_decay_from_step=30_000) == 1.0
    assert factor(32_000, lr_half_life_steps=1_000, lr_decay_from_step=30_000) == 0.25
    with pytest.raises(TrainError, match="lr_decay_from_step"):
        TrainConfig(lr_decay_from_step=-1)
