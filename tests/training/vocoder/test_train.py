"""Vocoder training: loss falls, resume, adversarial phase, DDP (2 gloo processes), export parity, CLI."""
from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from melsynth.engine.dsp.features import MelSpec  # noqa: E402
from melsynth.engine.runtime.bundle import load_bundle  # noqa: E402
from melsynth.training.gan import (CHECKPOINT, CURVE, RunLimits, TrainConfig, TrainError,  # noqa: E402
                                   load_checkpoint, train)
from melsynth.training.vocoder.config import load_configs  # noqa: E402
from melsynth.training.vocoder.train import ClipSource, VocoderTask, build_generator  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEC = MelSpec()
SR = SPEC.sample_rate

TINY = {
    "ap": {"dim": 48, "layers": 2},
    "melgan": {"channels": 32},
    "discriminator": {"scales": 1, "base_channels": 4, "max_channels": 16, "downsampling": [4, 4],
                      "spectral_resolutions": [[512, 128]], "spectral_channels": 4},
    "segment_frames": 16, "val_clips": 1, "val_seconds": 1.0,
}


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic notes with decays and a little noise, peak < 1."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    audio = 0.002 * rng.standard_normal(n)
    for start, f0 in zip(np.linspace(0, seconds * 0.6, 3), rng.uniform(150, 600, 3)):
        env = np.where(t >= start, np.exp(-(t - start) * 1.5), 0.0)
        for h in range(1, 5):
            audio += 0.08 / h * env * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6))
    return audio.astype(np.float32)


def tiny_configs(arch: str = "ap", trainer: dict | None = None, task: dict | None = None):
    return load_configs(arch, overrides={
        "task": {**TINY, **(task or {})},
        "trainer": {"batch_size": 4, "warmup_steps": 1000, "log_every": 2, "validate_minutes": 1e6,
                    "checkpoint_minutes": 1e6, **(trainer or {})}})


class RecordingTask(VocoderTask):
    """Keeps every step's generator loss."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.losses: list[float] = []
        self.logs: list[dict] = []

    def generator_loss(self, generator, discriminator, batch, adversarial):
        out = super().generator_loss(generator, discriminator, batch, adversarial)
        self.losses.append(float(out.loss.detach()))
        self.logs.append(dict(out.logs))
        return out

    def discriminator_loss(self, discriminator, batch, fake):
        out = super().discriminator_loss(discriminator, batch, fake)
        self.logs[-1].update(out.logs)
        return out


def test_loss_falls_well_below_its_start_on_a_one_second_clip(tmp_path):
    torch.manual_seed(0)
    task_cfg, trainer_cfg = tiny_configs(trainer={"lr_g": 3e-3})
    task = RecordingTask(task_cfg, ClipSource([music(1.0)], SPEC), use_discriminator=False)
    result = train(task, trainer_cfg, tmp_path / "run", RunLimits(max_steps=150, progress=False))
    assert result.step == 150
    start, end = np.mean(task.losses[:5]), np.mean(task.losses[-20:])
    assert end < 0.6 * start, (start, end)
    # The waveform's MR-STFT error, the deciding metric, falls too.
    mr = [log["mrstft"] for log in task.logs]
    assert np.mean(mr[-20:]) < 0.9 * np.mean(mr[:5])


def test_resume_continues_and_a_used_run_folder_refuses_a_fresh_start(tmp_path):
    clip = music(2.0)
    task_cfg, trainer_cfg = tiny_configs()
    run = tmp_path / "run"

    def task():
        return VocoderTask(task_cfg, ClipSource([clip], SPEC), val_clips=[("clip", clip[:SR])],
                           reference_cache=run / "val_reference.npz", use_discriminator=False)

    first = train(task(), trainer_cfg, run, RunLimits(max_steps=3, progress=False))
    assert first.step == 3 and "mrstft_ratio" in first.last_metrics
    assert load_checkpoint(run / CHECKPOINT)["step"] == 3
    with pytest.raises(TrainError, match="--resume"):
        train(task(), trainer_cfg, run, RunLimits(max_steps=5, progress=False))
    other = TrainConfig.from_dict({**trainer_cfg.to_dict(), "lr_g": 1e-3})
    with pytest.raises(TrainError, match="another configuration"):
        train(task(), other, run, RunLimits(max_steps=5, progress=False, resume=True))
    second = train(task(), trainer_cfg, run, RunLimits(max_steps=5, progress=False, resume=True))
    assert second.step == 5
    rows = (run / CURVE).read_text().strip().splitlines()
    assert rows[0].startswith("step,wall_hours,cpu_hours") and len(rows) == 3
    assert [r.split(",")[0] for r in rows[1:]] == ["3", "5"]
    assert (run / "best_generator.pt").is_file()
    assert json.loads((run / "config.json").read_text())["task"]["ap"]["dim"] == 48


@pytest.mark.parametrize("arch", ["ap", "melgan"])
def test_adversarial_phase_follows_the_warmup(tmp_path, arch):
    torch.manual_seed(0)
    task_cfg, trainer_cfg = tiny_configs(arch, trainer={"warmup_steps": 2})
    task = RecordingTask(task_cfg, ClipSource([music(1.0)], SPEC))
    train(task, trainer_cfg, tmp_path / "run", RunLimits(max_steps=4, progress=False))
    assert "adv_g" not in task.logs[1] and "adv_d" not in task.logs[1]
    for log in task.logs[2:]:
        assert {"adv_g", "adv_d", "feature_matching"} <= set(log)
        assert all(np.isfinite(v) for v in log.values())
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert ckpt["discriminator"] is not None and ckpt["opt_d"] is not None


# --------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_gloo_processes_keeps_ranks_in_step(tmp_path):
    import torch.multiprocessing as mp

    port = _free_port()
    run, out = tmp_path / "run", tmp_path / "rank1.pt"
    mp.spawn(_ddp_worker_capture, args=(2, port, str(run), str(out)), nprocs=2, join=True)
    rank0 = load_checkpoint(run / CHECKPOINT)
    rank1 = torch.load(out, weights_only=False)
    assert rank0["step"] == rank1["step"] == 3
    for k, v in rank0["generator"].items():
        torch.testing.assert_close(rank1["generator"][k], v, msg=f"rank weights differ at {k}")
    assert rank0["discriminator"] is not None


def _ddp_worker_capture(rank: int, world: int, port: int, run: str, out: str) -> None:
    """One rank of the DDP test; rank 1 saves its final generator weights to ``out``."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # different init per rank: DDP must broadcast rank 0's weights
    task_cfg, trainer_cfg = tiny_configs(trainer={"warmup_steps": 1})
    built = {}

    class Task(VocoderTask):
        def build_generator(self):
            built["g"] = super().build_generator()
            return built["g"]

    task = Task(task_cfg, ClipSource([music(1.0, seed=rank)], SPEC))
    result = train(task, trainer_cfg, run, RunLimits(max_steps=3, progress=False))
    if rank == 1:
        torch.save({"step": result.step, "generator": built["g"].state_dict()}, out)


# --------------------------------------------------------------------------- export
@pytest.mark.parametrize("arch", ["ap", "melgan"])
def test_export_writes_parity_checked_graphs_and_keeps_other_entries(tmp_path, arch):
    from melsynth.training.vocoder.export import export_vocoder, load_weights

    clip = music(2.0)
    task_cfg, trainer_cfg = tiny_configs(arch)
    run = tmp_path / "run"
    train(VocoderTask(task_cfg, ClipSource([clip], SPEC), use_discriminator=False), trainer_cfg, run,
          RunLimits(max_steps=2, progress=False))
    bundle = tmp_path / "bundle"
    from melsynth.engine.offline.make_default_bundle import ensure_classical

    ensure_classical(bundle)
    data = json.loads((bundle / "bundle.json").read_text())
    data["vocoders"]["keep_me"] = dict(data["vocoders"]["classical"])
    (bundle / "bundle.json").write_text(json.dumps(data))

    entry = export_vocoder(run, bundle, name="neural")
    assert entry["figures"]["parity_max_abs_error"] <= 1e-4
    loaded = load_bundle(bundle, check_graphs=True)
    assert set(loaded.vocoders) == {"classical", "keep_me", "neural"}
    assert loaded.default_vocoder == "classical"
    v = loaded.vocoder("neural")
    assert v.kind == task_cfg.kind and v.streaming.state and v.streaming.lookahead_frames == 0
    # one graph: the engine serves offline from the streaming graph
    assert v.offline is None and "offline" not in entry and not (bundle / "vocoder_neural.onnx").exists()

    # The runtime hears what torch computes.
    from melsynth.engine.runtime.vocoder import load_vocoder
    from melsynth.training.features import TorchMel
    from melsynth.training.vocoder.train import generator_audio

    voc = load_vocoder(loaded, "neural")
    mel = np.ascontiguousarray(TorchMel(SPEC)(torch.from_numpy(clip)[None])[0].numpy()[:, :30])
    config, state = load_weights(bundle / entry["training"]["weights"])
    g = build_generator(config)
    g.load_state_dict(state)
    g.eval()
    with torch.no_grad():
        expected = generator_audio(g, TorchMel(SPEC), torch.from_numpy(mel)[None], config.arch)[0].numpy()
    got = voc.offline(mel)
    # float16 fine-tuning weights: close to, not equal to, the exported float32 graph.
    assert got.shape == expected.shape
    assert float(np.max(np.abs(got - np.clip(expected, -1, 1)))) < 2e-2
    assert (bundle / entry["training"]["weights"]).stat().st_size < 2_000_000

    # A variant sharing the graph (as amplitude_phase_refined does) follows a re-export of it.
    data = json.loads((bundle / "bundle.json").read_text())
    data["vocoders"]["neural_refined"] = json.loads(json.dumps(data["vocoders"]["neural"]))
    (bundle / "bundle.json").write_text(json.dumps(data))
    train(VocoderTask(task_cfg, ClipSource([clip], SPEC), use_discriminator=False), trainer_cfg, run,
          RunLimits(max_steps=4, resume=True, progress=False))
    again = export_vocoder(run, bundle, name="neural", which="last")
    assert again["streaming"]["sha256"] != entry["streaming"]["sha256"]      # new weights, new file
    reloaded = load_bundle(bundle, check_graphs=True)                           # checksums hold
    assert reloaded.vocoder("neural_refined").streaming.sha256 == again["streaming"]["sha256"]


def test_export_of_a_missing_run_is_a_clear_error(tmp_path):
    from melsynth.training.vocoder.export import export_vocoder

    with pytest.raises(TrainError, match="config.json"):
        export_vocoder(tmp_path / "nope", tmp_path / "bundle")


# --------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    import soundfile as sf

    from melsynth.training.corpus.ingest import AddConfig, add_audio

    tmp = tmp_path_factory.mktemp("voc_corpus")
    src = tmp / "src"
    src.mkdir()
    for i in range(4):
        sf.write(src / f"piece{i}.wav", music(3.0, seed=i), SR, subtype="FLOAT")
    out = tmp / "corpus"
    add_audio(AddConfig(src=str(src), out=str(out), jobs=1, progress=False), log=lambda *a: None)
    return out


def test_cli_trains_resumes_and_exports(tiny_corpus, tmp_path, capsys):
    from melsynth.cli.main import main

    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"task": TINY, "trainer": {"batch_size": 2, "warmup_steps": 1}}))
    run = tmp_path / "run"
    base = ["train", "vocoder", "--corpus", str(tiny_corpus), "--run", str(run), "--config", str(cfg),
            "--no-progress"]
    assert main([*base, "--max-steps", "2"]) == 0
    assert main([*base, "--max-steps", "3", "--resume"]) == 0
    assert load_checkpoint(run / CHECKPOINT)["step"] == 3
    assert main([*base, "--max-steps", "4"]) == 2          # fresh start on a used run folder
    assert "--resume" in capsys.readouterr().err
    bundle = tmp_path / "bundle"
    assert main(["export", "vocoder", str(run), "--bundle", str(bundle)]) == 0
    loaded = load_bundle(bundle)
    assert "amplitude_phase" in loaded.vocoders and loaded.default_vocoder == "classical"
    weights = bundle / "train" / "vocoder_amplitude_phase.pt"
    assert weights.is_file()
    # Fine-tuning starts from the bundle's weights; weights of another shape are a clear error.
    tune = ["train", "vocoder", "--corpus", str(tiny_corpus), "--no-progress", "--init", str(weights)]
    assert main([*tune, "--run", str(tmp_path / "tune"), "--config", str(cfg), "--max-steps", "1"]) == 0
    capsys.readouterr()
    assert main([*tune, "--run", str(tmp_path / "wrong"), "--max-steps", "1"]) == 2
    assert "do not fit" in capsys.readouterr().err
