"""What the file commands share: output-path checks, ``--quality``, ``--vocoder``'s help, limits.

The path checks run before any work, so a bad ``--out`` never costs a render. The number checks
(``type=`` functions) are ``engine.argtypes``.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

# Longest render: a 32-bit float WAV at 44.1 kHz stays under the format's 4 GiB for 6 hours.
MAX_RENDER_SECONDS = 6 * 3600.0
# Longest headless play (it runs in real time; a week is far past any performance).
MAX_PLAY_SECONDS = 7 * 86400.0
OUTPUT_SUFFIXES = (".wav", ".flac")


def output_file(path: str | os.PathLike, option: str = "--out", suffixes=OUTPUT_SUFFIXES,
                inputs: tuple = ()) -> Path:
    """``path`` checked as a new output file: a known suffix, an existing parent folder, not a
    folder itself and none of ``inputs``. Raises ``MelsynthError`` naming the value."""
    from melsynth.engine.errors import MelsynthError

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise MelsynthError(f"{option} {path}: write {' or '.join(suffixes)}, not "
                            f"{repr(path.suffix) if path.suffix else 'a name without an extension'}")
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise MelsynthError(f"{option} {path}: the folder {parent} {what} (create it first)")
    if path.is_dir():
        raise MelsynthError(f"{option} {path}: is a folder")
    if not os.access(parent, os.W_OK):
        raise MelsynthError(f"{option} {path}: the folder {parent} is not writable")
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):  # links too
            raise MelsynthError(f"{option} {path}: is the input file; write to another name")
    return path


def add_quality_argument(parser: argparse.ArgumentParser) -> None:
    """``--quality`` of render and resynth: the classical vocoder's phase preset (engine.dsp.quality)."""
    from melsynth.engine.dsp.quality import FILE_QUALITY, QUALITIES

    points = ", ".join(f"{n} {p[0]}/{p[1]}" if p else f"{n} = the bundle's own (the live synth's)"
                       for n, p in QUALITIES.items())
    parser.add_argument("--quality", choices=tuple(QUALITIES), default=FILE_QUALITY,
                        help=f"phase quality of a classical vocoder, as iterations/look-ahead frames: {points}; "
                             "more is slower and closer to the original (docs/quality.md)")


def vocoder_help() -> str:
    """``--vocoder``'s help, naming the vocoders of the default bundle (read from its bundle.json)."""
    import json

    text = "vocoder by its bundle.json name (default: the bundle's default)"
    try:
        from melsynth.engine.runtime.bundle import BUNDLE_FILE, default_bundle_path

        root = Path(default_bundle_path())
        data = json.loads((root / BUNDLE_FILE).read_text())
        names = ", ".join(data["vocoders"])
        return (f"vocoder by its bundle.json name; {root} has {names} "
                f"(default: the bundle's default, {data['default_vocoder']} in {root})")
    except Exception:  # no default bundle here: the help stays generic; a wrong name lists them
        return text
