"""Every bad command line of issue 20's list: one line on stderr naming the value (and its limit),
a non-zero exit, no traceback, and nothing written or created."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from melsynth.cli.main import main
from tests.vocoder_fixtures import write_bundle

SR = 11025


def _fails(argv: list[str], capsys) -> str:
    """stderr of ``melsynth ARGV``, checked to be one line with exit status 2."""
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and err.startswith(f"melsynth {argv[0]}") and ": error: " in err
    return err


@pytest.mark.parametrize("value, limit", [("inf", "<= 21600"), ("nan", "<= 21600"), ("-inf", "<= 21600"),
                                          ("1e9", "<= 21600"), ("0", "> 0"), ("-2", "> 0"), ("ten", "")])
def test_render_seconds_must_be_finite_and_in_range(tmp_path, capsys, value, limit):
    err = _fails(["render", f"--seconds={value}", "--out", str(tmp_path / "x.wav")], capsys)
    assert "--seconds" in err and value in err and limit in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, named", [
    (["render", "--seed=-1"], "--seed"),
    (["render", "--walk-speed", "1.5"], "--walk-speed"),
    (["render", "--walk-spread", "nan"], "--walk-spread"),
    (["render", "--quality", "ultra"], "--quality"),
])
def test_render_other_numbers_are_checked(tmp_path, capsys, argv, named):
    err = _fails(argv + ["--out", str(tmp_path / "x.wav")], capsys)
    assert named in err and argv[-1].split("=")[-1] in err


@pytest.mark.parametrize("argv, named", [
    (["play", "--seconds", "0"], "--seconds"),
    (["play", "--seconds", "nan"], "--seconds"),
    (["play", "--seconds", "inf"], "--seconds"),
    (["play", "--blocksize=-5"], "--blocksize"),
    (["play", "--blocksize", "1e3"], "--blocksize"),
    (["play", "--lead-ms", "inf"], "--lead-ms"),
    (["app", "--blocksize=-5"], "--blocksize"),
    (["app", "--quit-after", "0"], "--quit-after"),
    (["app", "--lead-ms=-1"], "--lead-ms"),
    (["bench", "--frames-per-step", "0"], "--frames-per-step"),
    (["bench", "--soak", "nan"], "--soak"),
    (["bench", "--stage-seconds", "0"], "--stage-seconds"),
    (["bench", "--moves=-1"], "--moves"),
])
def test_play_app_and_bench_numbers_are_checked(capsys, argv, named):
    err = _fails(argv, capsys)
    assert named in err and argv[-1].split("=")[-1] in err
    assert "must be" in err or "not a" in err


@pytest.mark.parametrize("name", ["z.mp3", "z.ogg", "z", "z.wav.tmp"])
def test_render_refuses_an_unknown_format_before_any_work(tmp_path, capsys, name):
    # the bundle does not exist: the --out check must come first
    err = _fails(["render", "--out", str(tmp_path / name), "--bundle", str(tmp_path / "no-bundle")], capsys)
    assert name in err and ".wav or .flac" in err
    assert not list(tmp_path.iterdir())


def test_render_into_a_missing_folder_names_it_and_creates_nothing(tmp_path, capsys):
    out = tmp_path / "missing" / "dir" / "x.wav"
    err = _fails(["render", "--out", str(out), "--bundle", str(tmp_path / "no-bundle")], capsys)
    assert str(out.parent) in err and "does not exist" in err
    assert not (tmp_path / "missing").exists()


def test_render_into_a_folder_at_the_root_creates_nothing(capsys):
    root_dir = Path("/melsynth-test-no-such-folder")
    assert not root_dir.exists()
    err = _fails(["render", "--out", str(root_dir / "dir" / "x.wav")], capsys)
    assert str(root_dir / "dir") in err
    assert not root_dir.exists()


def test_render_png_is_checked_before_any_work(tmp_path, capsys):
    err = _fails(["render", "--out", str(tmp_path / "x.wav"), "--png", str(tmp_path / "x.jpg"),
                  "--bundle", str(tmp_path / "no-bundle")], capsys)
    assert "--png" in err and ".png" in err
    err = _fails(["render", "--seconds", "3600", "--out", str(tmp_path / "x.wav"), "--png", str(tmp_path / "x.png"),
                  "--bundle", str(tmp_path / "no-bundle")], capsys)
    assert "--png" in err and "600" in err


@pytest.fixture
def bundle(tmp_path):
    return write_bundle(tmp_path / "b", {"classical": {"kind": "classical", "params": {}}})


def _tone(path: Path, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(path, x, SR)
    return x


def test_resynth_writes_the_format_out_names(tmp_path, bundle, capsys):
    src = tmp_path / "in.wav"
    _tone(src)
    for name, fmt in (("o.flac", "FLAC"), ("o.wav", "WAV"), ("O.FLAC", "FLAC")):
        assert main(["resynth", str(src), "--out", str(tmp_path / name), "--bundle", str(bundle),
                     "--quality", "realtime"]) == 0
        assert sf.info(str(tmp_path / name)).format == fmt
    err = _fails(["resynth", str(src), "--out", str(tmp_path / "o.mp3"), "--bundle", str(bundle)], capsys)
    assert "o.mp3" in err


def test_resynth_never_overwrites_its_input(tmp_path, bundle, capsys):
    src = tmp_path / "in.wav"
    _tone(src)
    before = src.read_bytes()
    err = _fails(["resynth", str(src), "--out", str(src), "--bundle", str(bundle)], capsys)
    assert "input" in err and str(src) in err
    link = tmp_path / "link.wav"
    link.symlink_to(src)
    _fails(["resynth", str(src), "--out", str(link), "--bundle", str(bundle)], capsys)
    (tmp_path / "sub").mkdir()
    _fails(["resynth", str(src), "--out", str(tmp_path / "sub" / ".." / "in.wav"), "--bundle", str(bundle)], capsys)
    assert src.read_bytes() == before


@pytest.mark.parametrize("content", ["{not json", json.dumps({"knobs": "loud"})])
def test_app_with_a_bad_preset_fails_before_the_window(tmp_path, capsys, monkeypatch, content):
    import melsynth.app.main_window as main_window

    def no_window(*args, **kwargs):
        raise AssertionError("the window opened")

    monkeypatch.setattr(main_window, "MainWindow", no_window)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    err = _fails(["app", "--preset", str(bad), "--no-play"], capsys)
    assert "--preset" in err and str(bad) in err


def test_app_with_a_missing_preset_names_it(tmp_path, capsys):
    err = _fails(["app", "--preset", str(tmp_path / "ghost.json")], capsys)
    assert "ghost.json" in err


def _numeric_arguments():
    """(command words, action) of every argument of every command that takes a number."""
    import argparse

    from melsynth.cli.main import build_parser

    found = []

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, words + [name])
            elif action.type in (int, float) or getattr(action.type, "__name__", "") in ("number", "integer"):
                found.append((words, action))

    walk(build_parser(), [])
    return found


NUMERIC = _numeric_arguments()


def test_every_number_argument_is_checked():
    assert len(NUMERIC) > 40
    bare = [(" ".join(w), a.dest) for w, a in NUMERIC if a.type in (int, float)]
    assert bare == []


@pytest.mark.parametrize("words, action", NUMERIC, ids=[f"{' '.join(w)} {a.dest}" for w, a in NUMERIC])
def test_every_number_argument_refuses_what_is_not_a_finite_number(words, action, capsys):
    for value in ("nan", "inf", "-inf", "1e999"):
        if action.option_strings:
            argv = words + [f"{action.option_strings[-1]}={value}"]
        else:  # a positional: fill the ones before it
            positionals = [a for a in action.container._actions if not a.option_strings and a.dest != "help"]
            argv = words + ["x.wav"] * positionals.index(action) + ["--", value]
        err = _fails(argv, capsys)
        assert value in err and (action.dest.replace("_", "-") in err or action.dest in err)
