"""The one command tree of ``melsynth``: every command, where its arguments are defined, one example.

Grammar::

    melsynth VERB                  play | render | resynth | app | bench   (the synth itself)
    melsynth NOUN VERB             bundle | corpus | checkpoint | recorder  (the files melsynth makes)
    melsynth VERB MODEL            train | export | eval  vocoder | prior   (the models)

Each command names ``module:function``. That function is the one place where the command's
arguments are defined: it adds exactly one parser, named as the command, to the subparsers it is
given, and sets ``func`` (the handler, beside it in the same module). A module that cannot be
imported (the ``train`` extra is absent) leaves its commands out; registering imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    name: str
    register: str  # "module:function" that adds the parser called ``name``
    example: str


@dataclass(frozen=True)
class Group:
    name: str
    help: str
    commands: tuple[Command, ...]

    @property
    def example(self) -> str:
        return self.commands[0].example


TREE: tuple[Command | Group, ...] = (
    Command("play", "melsynth.engine.cli.headless:register_play", "melsynth play --seconds 20 --json"),
    Command("render", "melsynth.engine.cli.headless:register_render",
            "melsynth render --seconds 20 --seed 1 --out noise.wav --png noise.png"),
    Command("resynth", "melsynth.engine.cli.resynth:register", "melsynth resynth input.flac --out out.wav"),
    Command("app", "melsynth.app.cli:register_app", "melsynth app --bundle models/default"),
    Command("bench", "melsynth.engine.cli.headless:register_bench", "melsynth bench --json"),
    Group("bundle", "inspect and maintain a model bundle (ONNX graphs + bundle.json)", (
        Command("info", "melsynth.engine.cli.info:register", "melsynth bundle info --bundle models/default"),
        Command("slim", "melsynth.engine.offline.slim_bundle:register", "melsynth bundle slim models/default"),
        Command("add-classical", "melsynth.engine.offline.make_default_bundle:register",
                "melsynth bundle add-classical --bundle models/default --corpus corpus/default --max-clips 16"),
    )),
    Group("corpus", "build, extend, inspect and pack a training corpus (audio + manifest + mel cache)", (
        Command("build", "melsynth.training.corpus.cli:register_build",
                "melsynth corpus build --out corpus/default --max-works 6"),
        Command("add", "melsynth.training.corpus.cli:register_add",
                "melsynth corpus add ~/MusicNet --out corpus/default"),
        Command("info", "melsynth.training.corpus.cli:register_info", "melsynth corpus info corpus/default"),
        Command("cache", "melsynth.training.corpus.cli:register_cache", "melsynth corpus cache corpus/default"),
        Command("pack", "melsynth.training.cli:register_corpus_pack",
                "melsynth corpus pack corpus/default .gpu/prior/subset.npz --hours 1.65 --chunk-seconds 6"),
    )),
    Group("checkpoint", "carry a training run's checkpoint to another machine and back", (
        Command("pack", "melsynth.training.cli:register_checkpoint_pack",
                "melsynth checkpoint pack runs/prior/stage3 $OUT/ckpt"),
        Command("unpack", "melsynth.training.cli:register_checkpoint_unpack",
                "melsynth checkpoint unpack runs/prior/stage3 ckpt.part*"),
        Command("compact", "melsynth.training.cli:register_checkpoint_compact",
                "melsynth checkpoint compact runs/prior/stage2/best_generator.pt .gpu/prior/init_fp16.pt"),
    )),
    Group("train", "train a model on a corpus (needs the 'train' extra: torch)", (
        Command("vocoder", "melsynth.training.vocoder.cli:register_train",
                "melsynth train vocoder --corpus corpus/default --run runs/vocoder_ap --arch ap"),
        Command("prior", "melsynth.training.prior.cli:register_train",
                "melsynth train prior --corpus corpus/default --run runs/prior"),
    )),
    Group("export", "put a trained run into a model bundle (needs torch)", (
        Command("vocoder", "melsynth.training.vocoder.cli:register_export",
                "melsynth export vocoder runs/vocoder_ap --bundle models/default"),
        Command("prior", "melsynth.training.prior.cli:register_export",
                "melsynth export prior runs/prior --bundle models/default --corpus corpus/default"),
    )),
    Group("eval", "measure a bundle's models against a corpus", (
        Command("vocoder", "melsynth.engine.offline.evaluate:register_eval",
                "melsynth eval vocoder --corpus corpus/default --split test --max-clips 16"),
        Command("prior", "melsynth.training.prior.evaluate:register_eval",
                "melsynth eval prior --corpus corpus/default"),
    )),
    Group("recorder", "the app's crash-safe recorder", (
        Command("tone", "melsynth.app.cli:register_tone", "melsynth recorder tone take.flac 30"),
    )),
)
