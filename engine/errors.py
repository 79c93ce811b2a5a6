"""The error every melsynth command reports in one line (no traceback).

It lives at the bottom of the import graph so that any layer (engine, training,
app, the command line) can raise it without importing the layer above.
"""
from __future__ import annotations


class MelsynthError(Exception):
    """An error the CLI reports in one line, without a traceback."""
