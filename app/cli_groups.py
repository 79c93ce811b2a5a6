"""Command groups whose verbs are owned by different modules.

``melsynth eval vocoder|prior``, ``melsynth train vocoder|prior`` and
``melsynth export vocoder|prior``: each verb module has
``register_<group>(subparsers)``; a verb module not present is absent from --help.
"""
from __future__ import annotations

import argparse
import importlib

GROUPS = {
    "train": ("train a model (needs the 'train' extra: torch)",
              ("training.vocoder.cli", "training.prior.cli")),
    "export": ("export a trained run into a model bundle (needs torch)",
               ("training.vocoder.cli", "training.prior.cli")),
    "eval": ("measure a bundle's models", ("engine.evaluate", "training.prior.evaluate")),
}


def register(sub) -> None:
    for group, (help_text, modules) in GROUPS.items():
        verbs = []
        for name in modules:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                    continue
                raise
            hook = getattr(module, f"register_{group}", None)
            if hook is not None:
                verbs.append(hook)
        if not verbs:
            continue
        p = sub.add_parser(group, help=help_text, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        group_sub = p.add_subparsers(dest=f"{group}_what", metavar="WHAT")
        group_sub.required = True
        for hook in verbs:
            hook(group_sub)
