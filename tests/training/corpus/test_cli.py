"""`melsynth corpus ...` registers without torch or music21 and validates its options."""
from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKER = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'music21', 'fluidsynth', 'librosa'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from melsynth.cli.main import build_parser
p = build_parser()
a = p.parse_args(['corpus', 'build', '--out', 'x', '--max-works', '6', '--jobs', '2', '--seed', '1'])
assert (a.out, a.max_works, a.jobs, a.seed) == ('x', 6, 2, 1), a
a = p.parse_args(['corpus', 'add', 'src', '--out', 'y'])
assert (a.src, a.out) == ('src', 'y')
print('ok', sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'music21', 'librosa')))
"""


def test_registration_imports_no_torch_or_music21():
    out = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok []"


def test_bad_options_are_refused(capsys):
    from melsynth.cli.main import main

    with pytest.raises(SystemExit):
        main(["corpus", "build", "--out", "x", "--max-works", "0"])
    assert "--max-works: 0 is out of range (must be >= 1" in capsys.readouterr().err
