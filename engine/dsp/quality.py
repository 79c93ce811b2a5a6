"""Phase quality presets: how many RTISI-LA iterations and frames of look-ahead the classical
vocoder runs.

``realtime`` keeps the bundle's own settings (what the live synth runs: 6 iterations,
look-ahead 2 in ``models/default``). ``high`` and ``max`` trade CPU for quality where time
does not matter (renders and resynths of files); ``docs/quality.md`` has the measured
curve behind them and the command that measures it. A preset never lowers a bundle's own
iterations or look-ahead, and only touches those two fields (momentum and the start phase
stay the bundle's).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI's parser reads the presets; phase.py loads only when a vocoder is built
    from melsynth.engine.dsp.phase import PhaseConfig

# name -> (iterations, lookahead); None: the bundle's own settings
QUALITIES: dict[str, tuple[int, int] | None] = {
    "realtime": None,
    "high": (12, 8),
    "max": (32, 8),
}
LIVE_QUALITY = "realtime"   # the synth and the app start here
FILE_QUALITY = "high"       # render and resynth default to this
# x real time of models/default's classical vocoder streaming one frame per push, one thread, at
# each preset (docs/quality.md, with the command): what the app shows as each preset's CPU cost.
MEASURED_X_REALTIME = {"realtime": 86.5, "high": 24.5, "max": 10.1}


def cpu_cost_text(name: str) -> str:
    """``"~4% of a core"``: the measured CPU share of the classical vocoder at preset ``name``."""
    x = MEASURED_X_REALTIME.get(name)
    if not x:
        return "CPU cost not measured"
    share = 100.0 / x
    return f"~{share:.0f}% of a core" if share >= 1 else "<1% of a core"


def describe_quality(name: str) -> str:
    """``"high: 12 iterations, look-ahead 8, ~4% of a core"``, for a chooser."""
    preset = QUALITIES[check_quality(name)]
    what = "the bundle's own settings" if preset is None else f"{preset[0]} iterations, look-ahead {preset[1]}"
    return f"{name}: {what}, {cpu_cost_text(name)}"


def check_quality(name: str) -> str:
    if name not in QUALITIES:
        raise ValueError(f"unknown phase quality {name!r}; choose one of {', '.join(QUALITIES)}")
    return name


def with_quality(config: PhaseConfig, quality: str | None) -> PhaseConfig:
    """``config`` with the iterations and look-ahead of ``quality`` (None or "realtime": unchanged)."""
    preset = QUALITIES[check_quality(quality)] if quality else None
    if preset is None:
        return config
    iterations, lookahead = preset
    return dataclasses.replace(config, iterations=max(config.iterations, iterations),
                               lookahead=max(config.lookahead, lookahead))


def parse_phase_point(text: str) -> tuple[int, int]:
    """``"ITERATIONS/LOOKAHEAD"`` (e.g. ``"12/3"``) -> ``(12, 3)``, checked by ``PhaseConfig``."""
    parts = text.replace(",", "/").split("/")
    try:
        iterations, lookahead = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"phase point {text!r}: write ITERATIONS/LOOKAHEAD, e.g. 12/3") from None
    from melsynth.engine.dsp.phase import PhaseConfig

    PhaseConfig(iterations=iterations, lookahead=lookahead)  # ValueError naming the limit
    return iterations, lookahead
