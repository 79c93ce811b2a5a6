"""Command groups whose verbs are owned by different modules.

``melsynth eval vocoder|prior``, ``melsynth train vocoder|prior`` and
``melsynth export vocoder|prior``: each verb module has
``register_<group>(subparsers)``; a verb module not present is absent from --help.
"""
from __future__ import annotations

import argparse

GROUPS = {
    "train": ("train a model (needs the 'train' extra: torch)",
              ("melsynth.training.vocoder.cli", "melsynth.training.prior.cli")),
    "export": ("export a trained run into a model bundle (needs torch)",
               ("melsynth.training.vocoder.cli", "melsynth.training.prior.cli")),
    "eval": ("measure a bundle's models", ("melsynth.engine.offline.evaluate", "melsynth.training.prior.evaluate")),
}


def register(sub) -> None:
    from melsynth.cli.main import import_optional

    for group, (help_text, modules) in GROUPS.items():
        verbs = []
        for name in modules:
            module = import_optional(name)
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
