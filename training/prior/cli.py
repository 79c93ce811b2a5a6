"""``melsynth train prior`` and ``melsynth export prior``.

No torch at module level: the parser is built on installs without torch;
handlers import it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from melsynth.engine.argtypes import finite_float, int_range
REFERENCE_FILE = "prior_reference.npz"  # the run's fixed validation reference (see PriorTask.reference)


def _train_prior(args: argparse.Namespace) -> int:
    import torch

    from melsynth.engine.dsp.features import MelSpec
    from melsynth.training.gan import RunLimits, TrainError, load_run_config, train, with_generator_init
    from melsynth.training.gan import TrainConfig as TrainerConfig
    from melsynth.training.prior.config import PriorConfig, load_config_file
    from melsynth.training.prior.train import PriorTask, default_trainer_config

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    run = Path(args.run)
    if not (Path(args.corpus) / "manifest.json").is_file():
        raise FileNotFoundError(f"{args.corpus}: no manifest.json (build the corpus with `melsynth corpus build`)")
    if args.resume and args.branch is not None:
        from melsynth.engine.errors import MelsynthError

        raise MelsynthError("--branch starts a new run from another; it cannot be combined with --resume")
    if args.resume:
        saved = load_run_config(run)
        if args.config:
            print(f"--resume: using the run's saved configuration, ignoring {args.config}")
        prior = PriorConfig.from_dict(saved["task"]["prior"])
        spec = MelSpec.from_dict(saved["task"]["mel"])
        trainer = TrainerConfig.from_dict(saved["trainer"])
        distill = saved["task"].get("distill")
        twolevel = saved["task"].get("twolevel")
    else:
        data = load_config_file(args.config) if args.config else {}
        prior = PriorConfig.from_dict(data.get("prior", {}))
        trainer = default_trainer_config(**data.get("trainer", {}))
        spec = MelSpec()
        distill = data.get("distill")
        twolevel = data.get("twolevel")
        if args.teacher is not None:
            distill = {**(distill or {}), "teacher": str(args.teacher)}
    limits = RunLimits(max_steps=args.steps, minutes=args.minutes, device=args.device, resume=args.resume,
                       branch=str(args.branch) if args.branch is not None else None,
                       progress=not args.no_progress)
    try:
        if twolevel is not None:
            from melsynth.training.prior.twolevel import AutoencoderTask, LatentGANTask, TwoLevelConfig

            tl = TwoLevelConfig.from_dict(twolevel)
            if prior.generator.code_size:
                task = LatentGANTask(prior, tl, args.corpus, spec, reference_cache=run / REFERENCE_FILE,
                                     codes_cache=run / "train_codes.npz", vocoder_bundle=args.vocoder_bundle)
            else:
                task = AutoencoderTask(prior, tl, args.corpus, spec, reference_cache=run / REFERENCE_FILE)
        elif distill is not None:
            from melsynth.training.prior.distill import DistillConfig, DistillTask

            task = DistillTask(prior, DistillConfig.from_dict(distill), args.corpus, spec,
                               reference_cache=run / REFERENCE_FILE)
        else:
            task = PriorTask(prior, args.corpus, spec, vocoder_bundle=args.vocoder_bundle,
                             reference_cache=run / REFERENCE_FILE)
        if args.init is not None:
            if args.resume or args.branch is not None:
                raise TrainError("--init starts a new run from weights alone; it cannot be combined with "
                                 "--resume or --branch")
            task = with_generator_init(task, args.init)
        result = train(task, trainer, run, limits)
    except TrainError as exc:
        from melsynth.engine.errors import MelsynthError

        raise MelsynthError(str(exc)) from exc
    print(f"prior: stopped at step {result.step} ({result.stopped_by}); best fd_ratio "
          f"{result.best_value if result.best_value is not None else 'n/a'}; last {result.last_metrics}")
    return 0


def register_train(group_sub) -> None:
    """Add ``melsynth train prior``."""
    p = group_sub.add_parser("prior", help="train the mel prior GAN on a corpus's mel cache",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", required=True, help="built corpus folder (manifest.json + mel cache)")
    p.add_argument("--run", required=True, help="run folder (checkpoints, learning_curve.csv, tb/)")
    p.add_argument("--config", default=None,
                   help='JSON file {"prior": {PriorConfig fields}, "trainer": {training.gan.TrainConfig fields}}')
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    p.add_argument("--resume", action="store_true", help="continue the run in --run with its saved configuration")
    p.add_argument("--minutes", type=finite_float(0, 10 ** 6, lo_open=True), default=None, help="stop after this many wall minutes (this invocation)")
    p.add_argument("--steps", type=int_range(1, 10 ** 9), default=None, help="stop at this total step count")
    p.add_argument("--threads", type=int_range(1, 1024), default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--branch", type=Path, default=None,
                   help="start --run as a continuation of this run folder under --config: its front, critic, "
                        "optimisers, step and learning curve carry on; tensors new to --config start from "
                        "their initialisation (a latent GAN's decoder comes from twolevel.autoencoder)")
    p.add_argument("--init", type=Path, default=None,
                   help="start the generator from this checkpoint's weights (a new critic); e.g. another design's run")
    p.add_argument("--teacher", type=Path, default=None,
                   help="learn from this trained prior's outputs instead of the GAN game (a run folder or "
                        "checkpoint; training.prior.distill); the config's 'distill' object sets the rest")
    p.add_argument("--vocoder-bundle", default=None,
                   help="bundle whose vocoder renders TensorBoard audio; unset: $MELSYNTH_BUNDLE or models/default")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (background runs)")
    p.set_defaults(func=_train_prior)


def _export_prior(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from melsynth.engine.dsp.features import MelSpec
    from melsynth.engine.runtime.bundle import load_bundle
    from melsynth.training.prior.export import compute_directions, export_prior
    from melsynth.training.prior.train import load_generator

    torch.set_num_threads(args.threads)
    generator, info = load_generator(args.run, use_ema=not args.raw_weights)
    spec = MelSpec.from_dict(info["task"]["mel"])
    if args.decoder is not None:
        from melsynth.training.prior.twolevel import with_decoder

        generator = with_decoder(generator, args.decoder)
        print(f"decoder from {args.decoder}")
    print(f"prior from {info['source']} (step {info['step']}"
          + (f", {info['metric']} {info['value']:.3f})" if info.get("value") is not None else ")"))
    figures: dict = {}
    directions: list[dict] = []
    if not args.no_directions:
        directions, figures["directions"] = compute_directions(
            generator, spec, n_pca_latents=args.pca_latents, n_pca=args.pca, n_regress=args.regress,
            n_verify=args.verify, fit_steps=args.fit_steps)
    if args.corpus:
        from melsynth.training.prior.evaluate import PriorReference, format_report, generate_windows
        from melsynth.training.prior.latents import held_sample_fn
        from melsynth.training.prior.train import torch_sample_fn

        reference = PriorReference(args.corpus, spec=spec)
        windows = generate_windows(held_sample_fn(torch_sample_fn(generator, "cpu"), generator.phrase_size),
                                   generator.latent_size,
                                   generator.latent_frames, reference.n_windows, reference.window_frames,
                                   np.random.default_rng(1), spec=spec)
        figures["eval"] = reference.score(windows)
        print(format_report(figures["eval"]))
    training = {"run": _recorded_path(args.run), "checkpoint": _recorded_path(info["source"]), "step": info["step"],
                "weights": "raw" if args.raw_weights else "ema", "prior_config": info["task"]["prior"]}
    if info["task"].get("distill"):
        training["distill"] = info["task"]["distill"]
    if info["task"].get("twolevel"):
        training["twolevel"] = info["task"]["twolevel"]
    curve = run_learning_curve(Path(info["source"]).parent)
    if curve:
        training["learning_curve"] = curve
    if info["task"].get("twolevel", {}).get("autoencoder"):
        training.update(_two_level_record(Path(info["task"]["twolevel"]["autoencoder"]), args.decoder,
                                          info["step"], curve))
    if args.corpus:
        from melsynth.training.corpus.manifest import read_manifest

        hours = read_manifest(args.corpus).summary()["hours"]
        training["data"] = {"corpus": _recorded_path(args.corpus), "train_hours": round(hours["train"], 2),
                            "test_hours": round(hours["test"], 2)}
    entry = export_prior(generator, args.bundle, spec, directions, training, figures)
    load_bundle(args.bundle)  # the engine's own validation of what was written
    print(f"wrote the prior into {Path(args.bundle) / 'bundle.json'} ({len(entry['directions'])} directions; "
          f"parity {entry['figures']['parity']})")
    return 0


def _run_folder(path: Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def _recorded_path(path: str | Path) -> str:
    """``path`` as a bundle records it: relative to the working folder when inside it (``runs/NAME``,
    the recipes' own names), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _cpu_hours_at(curve: dict, step: int | None) -> float | None:
    """CPU-hours of the curve's row at ``step`` (the exported state), else of its last row."""
    steps, hours = curve.get("step") or [], curve.get("cpu_hours") or []
    if not hours:
        return None
    return hours[steps.index(step)] if step in steps else hours[-1]


def _two_level_record(autoencoder: Path, decoder: Path | None, step: int, latent_curve: dict) -> dict:
    """A two-level prior's other runs in the bundle's record: the autoencoder the codes come from, the
    decoder exported with the front (``--decoder``), their curves, and CPU-hours per level."""
    from melsynth.training.gan import load_checkpoint, run_checkpoint

    ae_curve = run_learning_curve(_run_folder(autoencoder),
                                  columns=("step", "cpu_hours", "recon_fd_ratio", "recon_l1", "recon_ndb"))
    record: dict = {"autoencoder_run": _recorded_path(_run_folder(autoencoder))}
    if ae_curve:
        record["autoencoder_learning_curve"] = ae_curve
    cpu = {"autoencoder": _cpu_hours_at(ae_curve, None)}
    if decoder is not None:
        folder = _run_folder(decoder)
        record["decoder_run"] = _recorded_path(decoder)
        decoder_curve = run_learning_curve(folder, columns=("step", "cpu_hours", "recon_fd_ratio", "recon_l1",
                                                            "recon_train_fd_ratio"))
        if decoder_curve:
            record["decoder_learning_curve"] = decoder_curve
            source = run_checkpoint(decoder)
            cpu["decoder_gan"] = _cpu_hours_at(decoder_curve, load_checkpoint(source).get("step") if source else None)
    cpu["latent_gan"] = _cpu_hours_at(latent_curve, step)
    record["cpu_hours"] = {k: v for k, v in cpu.items() if v is not None}
    return record


def run_learning_curve(run_dir: Path, columns=("step", "cpu_hours", "device_hours", "fd_ratio", "ndb",
                                               "onset_rate", "flatness", "contrast_db")) -> dict:
    """The run's ``learning_curve.csv`` as ``{column: [values]}`` (rounded), or ``{}`` without one.

    A column that only later rows have (a figure a branch added) is kept, ``None`` where missing."""
    import csv

    from melsynth.training.gan import CURVE

    path = Path(run_dir) / CURVE
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    curve = {}
    for c in columns:
        values = [r.get(c) for r in rows]
        if any(v not in (None, "") for v in values):
            curve[c] = [None if v in (None, "") else int(float(v)) if c == "step" else round(float(v), 4)
                        for v in values]
    return curve


def register_export(group_sub) -> None:
    """Add ``melsynth export prior``."""
    p = group_sub.add_parser("prior", help="add a trained prior (ONNX + knobs) to a model bundle",
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", help="prior run folder (its best checkpoint, else the latest) or a checkpoint file")
    p.add_argument("--bundle", required=True, help="bundle folder, e.g. models/default (created if missing)")
    p.add_argument("--corpus", default=None, help="also measure FD-mel/NDB on this corpus and record the figures")
    p.add_argument("--no-directions", action="store_true", help="skip the knobs (PCA + named directions)")
    p.add_argument("--pca", type=int_range(0, 1024), default=12, help="number of GANSpace (PCA) directions")
    p.add_argument("--pca-latents", type=int_range(1, 10 ** 7), default=100_000, help="latents sampled for the PCA")
    p.add_argument("--regress", type=int_range(1, 10 ** 7), default=4000, help="latent sequences regressed per named direction")
    p.add_argument("--fit-steps", type=int_range(0, 10 ** 6), default=60,
                   help="Adam steps fitting each named direction to the knob's objective (0: regression alone)")
    p.add_argument("--verify", type=int_range(1, 10 ** 7), default=1000, help="random starting points per named-direction check")
    p.add_argument("--raw-weights", action="store_true", help="export the trained weights, not their moving average")
    p.add_argument("--decoder", type=Path, default=None,
                   help="two-level prior: take the decoder from this autoencoder run (e.g. its adversarial "
                        "fine-tune) instead of the one the latent GAN trained with")
    p.add_argument("--threads", type=int_range(1, 1024), default=1, help="torch CPU threads")
    p.set_defaults(func=_export_prior)
