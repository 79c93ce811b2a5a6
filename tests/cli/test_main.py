import subprocess
import sys

from melsynth.cli.main import build_parser, main


def _subcommands(parser):
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices


def test_help_lists_subcommands_and_each_help_works(capsys):
    parser = build_parser()
    subs = _subcommands(parser)
    assert "info" in subs
    for name, sp in subs.items():
        text = sp.format_help()
        assert name in text
        for action in sp._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help text"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "melsynth.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "melsynth" in out.stdout


def test_info_on_missing_bundle_is_a_one_line_error(tmp_path, capsys):
    rc = main(["info", "--bundle", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "nope" in err and "Traceback" not in err
