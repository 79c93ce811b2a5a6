"""argparse ``type=`` functions: a number checked to be finite and in range, with the limit in the
message (argparse turns the ``ArgumentTypeError`` into ``melsynth CMD: error: argument --x: ...``:
one line, exit 2). At the bottom of the engine's layers, so every command can use them."""
from __future__ import annotations

import argparse
import math
from typing import Callable

MAX_SEED = 2 ** 32 - 1


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _limits(lo, hi, lo_open: bool) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    if lo is None:
        return f"<= {_num(hi)}"
    return f"{'>' if lo_open else '>='} {_num(lo)} and <= {_num(hi)}"


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 zero: bool = False) -> Callable[[str], float]:
    """A ``type=`` for a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``);
    ``zero`` also lets 0 through (an option where 0 means "off" or "automatic")."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number (must be {_limits(lo, hi, lo_open)})")
        if zero and value == 0:
            return value
        if (lo is not None and (value < lo or (lo_open and value == lo))) or (hi is not None and value > hi):
            either = "0 or " if zero else ""
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be {either}{_limits(lo, hi, lo_open)})")
        return value

    parse.__name__ = "number"  # argparse names the type in "invalid number value" messages
    return parse


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """A ``type=`` for an integer in ``[lo, hi]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be {_limits(lo, hi, False)})")
        return value

    parse.__name__ = "integer"
    return parse


def seed() -> Callable[[str], int]:
    return int_range(0, MAX_SEED)
