"""``melsynth``: one console script, subcommands registered by the modules that own them.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)``, which adds its
subcommands and sets ``func`` on each parser. Registration imports no torch:
training modules import torch inside their handlers, so ``melsynth --help`` and
the runtime subcommands work on an install without the ``train`` extra.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from melsynth.engine.errors import MelsynthError

# Order is the order in --help.
COMMAND_MODULES = (
    "melsynth.engine.cli.info",
    "melsynth.training.corpus.cli",
    "melsynth.cli.groups",
    "melsynth.engine.cli.headless",
    "melsynth.engine.cli.resynth",
    "melsynth.app.cli",
)


def import_optional(name: str):
    """The module, or None when the module itself is absent (a missing dependency inside it raises)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="melsynth",
        description="Real-time neural music synthesizer: noise -> mel prior -> vocoder -> audio.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        module = import_optional(name)
        if module is not None:
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MelsynthError as exc:
        print(f"melsynth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # clear one-line errors for the known failure types
        from melsynth.engine.dsp.features import FeatureError
        from melsynth.engine.runtime.bundle import BundleError

        if isinstance(exc, (BundleError, FeatureError, FileNotFoundError)):
            print(f"melsynth {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
