"""``melsynth checkpoint pack|unpack|compact`` and ``melsynth corpus pack``: training data that travels.

Each ``register_*`` defines a command's arguments; the handlers beside them call
``training.portable`` (checkpoints in parts) and ``training.prior.pack`` (an
8-bit corpus subset, a float16 generator to start from). No torch at module
level: the parser is built on installs without torch.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from melsynth.engine.argtypes import finite_float, seed
from melsynth.engine.errors import MelsynthError


def _one_line_errors(run):
    """The handler ``run``, with the training tools' own errors reported as one line."""
    def handler(args: argparse.Namespace) -> int:
        from melsynth.training.gan import TrainError

        try:
            return run(args)
        except (TrainError, ValueError) as exc:
            raise MelsynthError(str(exc)) from exc
    return handler


# --------------------------------------------------------------------------- checkpoint pack / unpack
def run_checkpoint_pack(args: argparse.Namespace) -> int:
    from melsynth.training.portable import pack_checkpoint

    for part in pack_checkpoint(args.run, args.prefix, weights_only=args.weights_only):
        print(f"{part} ({part.stat().st_size / 2**20:.1f} MiB)")
    return 0


def register_checkpoint_pack(sub) -> None:
    p = sub.add_parser("pack", help="RUN's checkpoint.pt in bfloat16 -> PREFIX.part0, PREFIX.part1, ... "
                                    "(each under 16 MiB), with the run's config.json and learning_curve.csv")
    p.add_argument("run", help="training run folder (holds checkpoint.pt), or its checkpoint.pt or best_generator.pt")
    p.add_argument("prefix", help="path prefix of the parts")
    p.add_argument("--weights-only", action="store_true",
                   help="drop the optimisers' moments and store float16 (a resumed Adam rebuilds them)")
    p.set_defaults(func=_one_line_errors(run_checkpoint_pack))


def run_checkpoint_unpack(args: argparse.Namespace) -> int:
    from melsynth.training.portable import unpack_checkpoint

    print(unpack_checkpoint(args.run, args.parts))
    return 0


def register_checkpoint_unpack(sub) -> None:
    p = sub.add_parser("unpack", help="PARTS -> RUN/checkpoint.pt (or the packed best_generator.pt) in float32, "
                                      "with the packed config.json and learning_curve.csv: --resume continues it")
    p.add_argument("run", help="training run folder (created)")
    p.add_argument("parts", nargs="+", help="the parts written by 'melsynth checkpoint pack'")
    p.set_defaults(func=_one_line_errors(run_checkpoint_unpack))


# --------------------------------------------------------------------------- checkpoint compact
def run_checkpoint_compact(args: argparse.Namespace) -> int:
    from melsynth.training.prior.pack import compact_init

    out = compact_init(args.checkpoint, args.out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def register_checkpoint_compact(sub) -> None:
    p = sub.add_parser("compact", help="a prior checkpoint's averaged generator alone, in float16: a small "
                                       "--init file for 'melsynth train prior'")
    p.add_argument("checkpoint", help="prior checkpoint (checkpoint.pt or best_generator.pt)")
    p.add_argument("out", help="output .pt file")
    p.set_defaults(func=_one_line_errors(run_checkpoint_compact))


# --------------------------------------------------------------------------- corpus pack
def run_corpus_pack(args: argparse.Namespace) -> int:
    from melsynth.training.prior.pack import pack_subset

    packed = pack_subset(args.corpus, args.out, {"train": args.hours, "test": args.test_hours},
                         args.chunk_seconds, args.seed)
    print(f"packed {packed} hours into {args.out} ({Path(args.out).stat().st_size / 2**20:.1f} MiB)")
    return 0


def register_corpus_pack(sub) -> None:
    p = sub.add_parser("pack", help="random chunks of a corpus's mel as one small 8-bit .npz, for training "
                                    "the prior on another machine")
    p.add_argument("corpus", help="built corpus folder")
    p.add_argument("out", help="output .npz")
    p.add_argument("--hours", type=finite_float(0, 10_000, lo_open=True), default=1.5, help="hours of train-split chunks")
    p.add_argument("--test-hours", type=finite_float(0, 10_000), default=0.15, help="hours of test-split chunks (validation)")
    p.add_argument("--chunk-seconds", type=finite_float(0, 3600, lo_open=True), default=20.0, help="length of each chunk")
    p.add_argument("--seed", type=seed(), default=0, help="seed of the chunk draw")
    p.set_defaults(func=_one_line_errors(run_corpus_pack))
