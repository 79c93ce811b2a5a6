"""The file commands' progress bar: on a terminal only, unless turned off, and the chunks unchanged."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from melsynth.engine.cli import progress
from melsynth.engine.cli.progress import with_progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _chunks():
    return [np.full(1000, i, np.float32) for i in range(5)]


@pytest.mark.parametrize("tty, enabled, shown", [(True, True, True), (True, False, False), (False, True, False)])
def test_bar_only_on_a_terminal_and_when_enabled(monkeypatch, tty, enabled, shown):
    pytest.importorskip("tqdm")
    stderr = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    out = list(with_progress(iter(_chunks()), 5000, 1000, "render x.wav", enabled))
    assert [c.tolist() for c in out] == [c.tolist() for c in _chunks()]
    text = stderr.getvalue()
    assert ("render x.wav" in text and "s of audio" in text) == shown, text
