"""``melsynth``: the console script. Builds the parser from the command tree (``cli/tree.py``).

Every parser gets the same help layout: its one-line purpose, its arguments with each
default said once, and one example. Errors of the known kinds are one line on stderr
(exit status 2), without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from melsynth.cli.tree import TREE, Command, Group
from melsynth.engine.errors import MelsynthError

DESCRIPTION = "Real-time neural music synthesizer: noise -> mel prior -> vocoder -> audio."


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help text as written, plus ``(default: X)`` where the text does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text.lower() or unset \
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def import_optional(name: str):
    """The module, or None when the module itself is absent (a missing dependency inside it raises)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            return None
        raise


def _finish(parser: argparse.ArgumentParser, help_text: str | None, example: str, words: str) -> None:
    """The shared layout: purpose as description, defaults said once, one example, the command's words."""
    parser.formatter_class = HelpFormatter
    if parser.description is None:
        parser.description = help_text
    parser.epilog = f"example:\n  {example}"
    parser.set_defaults(command_words=words)


def _help_of(sub, name: str) -> str | None:
    return next((a.help for a in sub._choices_actions if a.dest == name), None)


def _add_command(sub, command: Command, words: str) -> bool:
    """Adds ``command`` to ``sub`` through its register function; False if its module is absent."""
    module_name, function = command.register.split(":")
    module = import_optional(module_name)
    if module is None:
        return False
    getattr(module, function)(sub)
    parser = sub.choices.get(command.name)
    if parser is None:
        raise RuntimeError(f"{command.register} did not add a parser called {command.name!r}")
    _finish(parser, _help_of(sub, command.name), command.example, f"{words} {command.name}".strip())
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="melsynth", description=DESCRIPTION, formatter_class=HelpFormatter,
                    epilog=f"example:\n  {TREE[0].example}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for node in TREE:
        if isinstance(node, Command):
            _add_command(sub, node, "")
            continue
        group = sub.add_parser(node.name, help=node.help)
        group_sub = group.add_subparsers(dest=f"{node.name}_command", metavar="COMMAND")
        group_sub.required = True
        if not [c for c in node.commands if _add_command(group_sub, c, node.name)]:
            sub._name_parser_map.pop(node.name)  # nothing of it is installed: leave the group out
            sub._choices_actions = [a for a in sub._choices_actions if a.dest != node.name]
            continue
        _finish(group, node.help, node.example, node.name)
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
        print(f"melsynth {args.command_words}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # clear one-line errors for the known failure types
        from melsynth.engine import BundleError, FeatureError

        if isinstance(exc, (BundleError, FeatureError, FileNotFoundError)):
            print(f"melsynth {args.command_words}: error: {exc}", file=sys.stderr)
            return 2
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
