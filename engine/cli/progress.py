"""A progress bar on stderr for the file commands (render, resynth), in seconds of audio.

The bar appears only on a terminal, only without ``--no-progress``, and only once the work
has run for ``DELAY_S`` (a render of a few seconds shows none); without tqdm there is none.
"""
from __future__ import annotations

import sys
from typing import Iterable, Iterator

import numpy as np

DELAY_S = 2.0


def with_progress(chunks: Iterable[np.ndarray], total_samples: int, sample_rate: int, label: str,
                  enabled: bool = True) -> Iterator[np.ndarray]:
    """``chunks`` unchanged, advancing a bar of ``total_samples`` as they pass."""
    bar = None
    if enabled and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:  # no bar, the same output
            tqdm = None
        if tqdm is not None:
            # counted in samples (float seconds summed past the total would warn), shown in seconds
            bar = tqdm(total=total_samples, unit="s", unit_scale=1.0 / sample_rate, desc=label, delay=DELAY_S,
                       file=sys.stderr, leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                       "{n:.1f}/{total:.1f} s of audio [{elapsed}<{remaining}]")
    try:
        for chunk in chunks:
            if bar is not None:
                bar.update(chunk.size)
            yield chunk
    finally:
        if bar is not None:
            bar.close()
