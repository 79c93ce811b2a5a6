"""A smaller prior learned from a teacher prior's outputs (training.prior.distill)."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.training.gan import RunLimits, TrainError, save_torch_atomic, train
from melsynth.training.prior.config import ConfigError, GeneratorConfig
from melsynth.training.prior.distill import DistillConfig, DistillTask, distill_loss, sample_latents
from melsynth.training.prior.train import PriorModule, default_trainer_config, load_generator
from tests.paths import REPO
from tests.prior_fixtures import make_synthetic_corpus, one_thread, tiny_generator_config, tiny_prior_config

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_synthetic_corpus(tmp_path_factory.mktemp("prior_distill") / "corpus")


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    """A teacher checkpoint in the trainer's format (random weights: the student only has to copy it)."""
    torch.manual_seed(3)
    config = tiny_prior_config()
    module = PriorModule(config)
    with torch.no_grad():
        module.ema.load_state_dict(module.net.state_dict())
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    save_torch_atomic(path, {"task_name": "prior", "task": {"prior": config.to_dict(), "mel": {}}, "step": 1,
                             "generator": module.state_dict()})
    return path


def student_config():
    g = tiny_generator_config()
    return tiny_prior_config(generator=GeneratorConfig(**{**g.to_dict(), "channels": (8, 8, 8)}))


def test_latents_have_the_engines_distribution_and_knob_shifts_from_their_step():
    rng = np.random.default_rng(0)
    walk = sample_latents(rng, 400, 16, 12, DistillConfig(walk_fraction=1.0, knob_fraction=0.0))
    iid = sample_latents(rng, 400, 16, 12, DistillConfig(walk_fraction=0.0, knob_fraction=0.0))
    for z in (walk, iid):   # both stay N(0, 1) per element: what the prior was trained on
        assert z.shape == (400, 16, 12) and z.dtype == np.float32
        assert abs(float(z.mean())) < 0.05 and 0.93 < float(z.std()) < 1.07
    step_change = lambda z: np.abs(np.diff(z, axis=2)).mean()  # noqa: E731
    assert step_change(walk) < 0.8 * step_change(iid)   # the walk moves less from step to step than iid draws

    directions = np.zeros((2, 16))
    directions[0, 0] = 1e4  # one sigma of knob 0 = +1e4 on dimension 0: any shift stands out of N(0, 1)
    z = sample_latents(np.random.default_rng(1), 300, 16, 12,
                       DistillConfig(walk_fraction=0.0, knob_fraction=1.0, knobs_per_sequence=1, knob_sigma_max=3.0),
                       directions)
    shifted = np.abs(z[:, 0, :]) > 6.0   # far outside N(0, 1): the knob's shift
    assert shifted.any() and not (np.abs(z[:, 1:, :]) > 6.0).any()
    for row in shifted:   # held from the step it was set at to the end
        if row.any():
            assert row[np.argmax(row):].all()
    again = sample_latents(np.random.default_rng(1), 300, 16, 12,
                           DistillConfig(walk_fraction=0.0, knob_fraction=1.0, knobs_per_sequence=1), directions)
    np.testing.assert_array_equal(z, again)   # seeded: a resumed run draws the same


def test_loss_is_zero_only_for_the_teachers_output():
    t = torch.rand(2, 4, 10)
    loss, logs = distill_loss(t.clone(), t, 1.0)
    assert float(loss) == 0.0
    shifted = distill_loss(t + 0.1, t, 1.0)[1]
    assert shifted["distill_l1"] == pytest.approx(0.1, abs=1e-6) and shifted["distill_delta_l1"] < 1e-6
    noisy = distill_loss(t + 0.1 * torch.randn_like(t), t, 1.0)[1]
    assert noisy["distill_delta_l1"] > 0.05   # wrong motion costs even when the level is right


def test_student_learns_the_teacher_and_saves_an_ordinary_prior(corpus, teacher_file, tmp_path):
    task = DistillTask(student_config(), DistillConfig(teacher=str(teacher_file), sequence_steps=6), corpus)
    teacher = task.teacher
    z = torch.from_numpy(sample_latents(np.random.default_rng(5), 16, 8, 6, DistillConfig()))

    def gap(generator) -> float:
        with torch.no_grad():
            return float((generator(z) - teacher(z)).abs().mean())

    run = tmp_path / "run"
    cfg = default_trainer_config(batch_size=8, lr_g=3e-3, betas=(0.9, 0.99), warmup_steps=0,
                                 validate_minutes=60, validate_steps=1000)
    torch.manual_seed(0)
    before = gap(task.build_generator().net)
    result = train(task, cfg, run, RunLimits(max_steps=150, progress=False))
    assert result.step == 150
    student, info = load_generator(run / "checkpoint.pt")   # the export reads it like any prior
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())
    assert gap(student) < 0.6 * before
    saved = json.loads((run / "config.json").read_text())
    assert saved["task"]["distill"]["teacher"] == str(teacher_file)
    assert (run / "learning_curve.csv").is_file()


def test_a_teacher_of_another_latent_space_is_a_clear_error(corpus, teacher_file):
    g = tiny_generator_config()
    other = tiny_prior_config(generator=GeneratorConfig(**{**g.to_dict(), "latent_size": 12}))
    with pytest.raises(TrainError, match="teacher.pt.*latent_size 8"):
        DistillTask(other, DistillConfig(teacher=str(teacher_file)), corpus)
    with pytest.raises(TrainError, match="needs a teacher"):
        DistillTask(student_config(), DistillConfig(), corpus)
    with pytest.raises(ConfigError, match="walk_fraction"):
        DistillConfig(walk_fraction=1.5)


def test_cli_trains_a_student_and_resumes_it(corpus, teacher_file, tmp_path, capsys):
    from melsynth.cli.main import main

    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"prior": student_config().to_dict(),
                                  "trainer": {"batch_size": 2, "validate_minutes": 60, "validate_steps": 2,
                                              "warmup_steps": 0},
                                  "distill": {"sequence_steps": 4}}))
    run = tmp_path / "run"
    base = ["train", "prior", "--corpus", str(corpus), "--run", str(run), "--no-progress"]
    assert main(base + ["--config", str(config), "--teacher", str(teacher_file), "--steps", "2"]) == 0
    assert main(base + ["--resume", "--steps", "3"]) == 0   # the teacher comes from the saved config
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 3
    bundle = tmp_path / "bundle"
    assert main(["export", "prior", str(run), "--bundle", str(bundle), "--no-directions"]) == 0
    training = json.loads((bundle / "bundle.json").read_text())["prior"]["training"]
    assert training["distill"]["teacher"] == str(teacher_file)   # where the student came from
    curve = training["learning_curve"]                          # and how it learned, per CPU-hour
    assert curve["step"][0] == 2 and len(curve["fd_ratio"]) == len(curve["cpu_hours"]) >= 1
    capsys.readouterr()
    missing = tmp_path / "nowhere.pt"
    assert main(["train", "prior", "--corpus", str(corpus), "--run", str(tmp_path / "r2"), "--config", str(config),
                 "--teacher", str(missing), "--steps", "1", "--no-progress"]) == 2
    assert "nowhere.pt" in capsys.readouterr().err


def test_a_shipped_bundle_is_a_teacher(corpus, tmp_path):
    """The teacher can come from models/ alone: its weights are read back out of the ONNX graph, exactly."""
    from melsynth.training.prior.export import export_prior
    from melsynth.training.prior.from_bundle import generator_from_bundle
    from melsynth.training.prior.model import Generator

    torch.manual_seed(4)
    original = Generator(tiny_generator_config()).eval()
    with torch.no_grad():
        for p in original.parameters():
            p.add_(0.05 * torch.randn_like(p))   # biases off zero too: every weight must travel
    bundle = tmp_path / "bundle"
    export_prior(original, bundle, training={"prior_config": tiny_prior_config().to_dict()})
    rebuilt = generator_from_bundle(bundle)
    z = torch.randn(2, 8, 5)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(z), original(z), atol=1e-5, rtol=0)
    task = DistillTask(student_config(), DistillConfig(teacher=str(bundle), sequence_steps=4), corpus)
    assert sum(p.numel() for p in task.teacher.parameters()) == sum(p.numel() for p in rebuilt.parameters())

    data = json.loads((bundle / "bundle.json").read_text())
    data["prior"]["training"] = {}
    (bundle / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(TrainError, match="bundle.json.*generator configuration"):
        generator_from_bundle(bundle)


def test_the_shipped_distillation_recipe_loads_and_its_teacher_is_in_the_repository():
    from pathlib import Path

    from melsynth.training.prior.config import PriorConfig, load_config_file
    from melsynth.training.prior.from_bundle import is_bundle

    root = REPO
    data = load_config_file(root / "training/prior/recipes/distill_small.json")
    distill = DistillConfig.from_dict(data["distill"])
    student = PriorConfig.from_dict(data["prior"]).generator
    assert student.channels == (96, 96, 64)   # what ships in models/default
    assert is_bundle(root / distill.teacher) and is_bundle(root / distill.directions_bundle)
    default_trainer_config(**data["trainer"])
