"""The live spectrogram view: newest frame at the right edge, coloured through the colour map."""
from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

from melsynth.app.widgets.spectrogram import DISPLAY_LEVELS, SpectrogramView, mel_colormap  # noqa: E402


def test_the_view_scrolls_and_colours_what_it_is_given():
    QApplication.instance() or QApplication([])
    view = SpectrogramView(n_mels=8, frames_per_second=10.0, seconds=1.0)  # 10 columns
    rng = np.random.default_rng(0)
    pushed = [rng.uniform(-6, 3, (8, int(k))).astype(np.float32) for k in (3, 4, 6, 1)]
    pushed[1][2, 1] = np.nan
    for frames in pushed:
        view.push(frames)
    newest = np.concatenate(pushed, axis=1)[:, -10:]
    expected = np.clip(np.nan_to_num(newest, nan=DISPLAY_LEVELS[0]), *DISPLAY_LEVELS)
    # each pixel is the colour map at the frame's level; the quietest is its first colour
    lut = mel_colormap().getLookupTable(0.0, 1.0, 256, alpha=False)
    position = (expected - DISPLAY_LEVELS[0]) / (DISPLAY_LEVELS[1] - DISPLAY_LEVELS[0])
    rgb = view.shown_rgb()
    assert rgb.shape == (8, 10, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - lut[(position * 255).astype(int)]).max() <= 1
    assert view.grab().width() > 0  # paints
