"""``melsynth train vocoder`` and ``melsynth export vocoder`` (no torch import until a handler runs)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from melsynth.engine.argtypes import finite_float, int_range

def register_train(group_sub) -> None:
    p = group_sub.add_parser(
        "vocoder", help="train a neural vocoder (amplitude-phase or MelGAN) on a corpus",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Train a GAN vocoder: reconstruction warm-up, then adversarial. Resumable "
                    "(--resume), checkpoints every few minutes and on Ctrl-C, TensorBoard in RUN/tb, "
                    "learning curve in RUN/learning_curve.csv. Under torchrun it trains with DDP.")
    p.add_argument("--corpus", type=Path, required=True, help="built corpus folder (manifest.json)")
    p.add_argument("--run", type=Path, required=True, help="run folder (checkpoints, config, logs)")
    p.add_argument("--arch", choices=("ap", "melgan"), default="ap",
                   help="generator family: ap = amplitude-phase (CPU default), melgan = waveform MelGAN")
    p.add_argument("--config", type=Path, default=None,
                   help='JSON overrides {"task": {...}, "trainer": {...}} of the arch defaults')
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    p.add_argument("--resume", action="store_true", help="continue the run in --run with its saved config")
    p.add_argument("--max-steps", type=int_range(1, 10 ** 9), default=None, help="stop at this total step count")
    p.add_argument("--minutes", type=finite_float(0, 10 ** 6, lo_open=True), default=None, help="wall-clock budget of this invocation")
    p.add_argument("--batch-size", type=int_range(1, 65_536), default=None, help="per-process batch size (overrides the config)")
    p.add_argument("--threads", type=int_range(1, 1024), default=1, help="torch CPU threads per process")
    p.add_argument("--workers", type=int_range(0, 256), default=0,
                   help="data loader worker processes (0 = load in the training process; use 4-8 on a GPU)")
    p.add_argument("--init", type=Path, default=None,
                   help="start the generator from weights (a bundle's train/vocoder_NAME.pt or a run's "
                        "best_generator.pt) to fine-tune")
    p.add_argument("--no-discriminator", action="store_true", help="reconstruction losses only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=_train)


def register_export(group_sub) -> None:
    p = group_sub.add_parser(
        "vocoder", help="export a vocoder run into a bundle (streaming ONNX, parity checked against torch)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="training run folder")
    p.add_argument("--bundle", type=Path, required=True, help="bundle folder, e.g. models/default")
    p.add_argument("--name", default=None,
                   help="vocoder name in bundle.json (default: the kind, amplitude_phase or melgan)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best",
                   help="which generator weights of the run to export")
    p.add_argument("--no-weights", action="store_true",
                   help="do not store the float16 fine-tuning weights under BUNDLE/train/")
    p.set_defaults(func=_export)


def _train(args) -> int:
    from melsynth.engine.errors import MelsynthError

    threads = max(1, int(args.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    from melsynth.training.gan import RunLimits, TrainError, load_run_config, train, with_generator_init
    from melsynth.training.gan import TrainConfig
    from melsynth.training.vocoder.config import VocoderConfig, from_dict, load_configs
    from melsynth.training.vocoder.train import CorpusSource, VocoderTask, validation_clips

    torch.set_num_threads(threads)
    try:
        if args.resume:
            saved = load_run_config(args.run)
            task_cfg = from_dict(VocoderConfig, saved["task"], f"{args.run / 'config.json'}: task")
            trainer_cfg = TrainConfig.from_dict(saved["trainer"])
            if task_cfg.arch != args.arch and args.arch != "ap":
                raise MelsynthError(f"{args.run}: the run is arch {task_cfg.arch}, not {args.arch}")
        else:
            overrides = {"trainer": {"batch_size": args.batch_size}} if args.batch_size else None
            task_cfg, trainer_cfg = load_configs(args.arch, args.config, overrides)
        if not (args.corpus / "manifest.json").is_file():
            raise MelsynthError(f"{args.corpus}: not a built corpus (no manifest.json)")
        rank = int(os.environ.get("RANK", "0"))
        source = CorpusSource(args.corpus, "train", task_cfg.segment_frames, task_cfg.mel, seed=rank)
        clips = validation_clips(args.corpus, task_cfg.mel, task_cfg.val_clips, task_cfg.val_seconds,
                                 run_dir=args.run) if rank == 0 and task_cfg.val_clips > 0 else []
        task = VocoderTask(task_cfg, source, clips, reference_cache=args.run / "val_reference.npz",
                           use_discriminator=not args.no_discriminator, loader_workers=args.workers)
        if args.init is not None:
            task = with_generator_init(task, args.init)
        result = train(task, trainer_cfg, args.run, RunLimits(
            max_steps=args.max_steps, minutes=args.minutes, device=args.device, resume=args.resume,
            progress=not args.no_progress))
    except TrainError as exc:
        raise MelsynthError(str(exc)) from exc
    if rank == 0:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(result.last_metrics.items()))
        print(f"stopped at step {result.step} ({result.stopped_by}); best {task.best_metric}="
              f"{result.best_value}; {metrics}")
    return 0


def _export(args) -> int:
    from melsynth.engine.errors import MelsynthError

    import torch

    from melsynth.training.gan import TrainError
    from melsynth.training.vocoder.export import export_vocoder

    torch.set_num_threads(1)
    try:
        entry = export_vocoder(args.run, args.bundle, args.name, which=args.checkpoint,
                               weights=not args.no_weights)
    except TrainError as exc:
        raise MelsynthError(str(exc)) from exc
    f = entry["figures"]
    print(f"exported {entry['kind']} ({f['parameters']} parameters, step {entry['training']['step']}) into "
          f"{args.bundle}; parity max abs error {f['parity_max_abs_error']:.2e}")
    return 0
