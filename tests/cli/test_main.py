"""The command tree: every command is reachable, each --help has one example and says each default once."""
import argparse
import re
import subprocess
import sys

from melsynth.cli.main import HelpFormatter, build_parser, main
from melsynth.cli.tree import TREE, Command, Group


def parsers(parser: argparse.ArgumentParser, words=()):
    """(words, parser) for the root and every command and group below it."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, (*words, name))


def tree_paths() -> list[tuple[str, ...]]:
    out = []
    for node in TREE:
        if isinstance(node, Command):
            out.append((node.name,))
        else:
            out.append((node.name,))
            out.extend((node.name, c.name) for c in node.commands)
    return out


def test_the_parser_has_exactly_the_tree():
    found = [words for words, _ in parsers(build_parser()) if words]
    assert sorted(found) == sorted(tree_paths())  # the train extra is installed here: nothing is left out


def test_the_grammar_verbs_nouns_and_models():
    names = [node.name for node in TREE]
    assert names[:5] == ["play", "render", "resynth", "app", "bench"]
    groups = {node.name: [c.name for c in node.commands] for node in TREE if isinstance(node, Group)}
    for verb in ("train", "export", "eval"):
        assert groups[verb] == ["vocoder", "prior"]
    assert groups["bundle"][0] == "info" and groups["corpus"][:4] == ["build", "add", "info", "cache"]


def test_every_help_has_one_example_of_its_own_command():
    for words, parser in parsers(build_parser()):
        text = parser.format_help()
        assert text.count("example:") == 1, words
        example = text.split("example:")[1].strip().splitlines()[0]
        assert example.startswith(" ".join(("melsynth", *words))), (words, example)
        assert parser.description, f"{words} has no description"


def test_every_option_has_help_and_says_its_default_once():
    for words, parser in parsers(build_parser()):
        formatter = HelpFormatter(parser.prog)
        for action in parser._actions:
            if action.dest == "help" or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{words} {action.option_strings or action.dest} has no help text"
            text = formatter._expand_help(action)
            assert len(re.findall("default:", text, re.I)) <= 1, (words, text)
            if action.option_strings and action.default is not None and action.default is not False:
                assert "default" in text.lower(), (words, text)  # the value the option takes when absent


def test_every_command_has_a_handler():
    for words, parser in parsers(build_parser()):
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions) and words:
            assert callable(parser.get_default("func")), words
            assert parser.get_default("command_words") == " ".join(words)


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "melsynth.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "melsynth" in out.stdout and "bundle" in out.stdout


def test_bundle_info_on_a_missing_bundle_is_a_one_line_error(tmp_path, capsys):
    rc = main(["bundle", "info", "--bundle", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("melsynth bundle info: error:") and "nope" in err and "Traceback" not in err
