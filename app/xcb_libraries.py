"""The X11 libraries Qt's xcb platform plugin loads, checked before Qt starts.

Without one of them Qt aborts the process (SIGABRT) with a message that names another
library ("could not load the Qt platform plugin xcb"). Checking the sonames first turns
that into one line naming the Debian packages to install (``bash .ci/setup synth``
installs them).
"""
from __future__ import annotations

import ctypes
import os
import sys

# soname -> the Debian/Ubuntu package that ships it (Qt 6's xcb plugin and its XcbQpa library)
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
}


def uses_xcb(environ=os.environ) -> bool:
    """Whether Qt will start its xcb platform: Linux, an X display, no other platform asked for."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    return sys.platform.startswith("linux") and bool(environ.get("DISPLAY")) and platform in ("", "xcb")


def missing_xcb_packages(load=ctypes.CDLL) -> list[str]:
    """The packages whose libraries the dynamic loader cannot find, in ``XCB_LIBRARIES`` order."""
    missing = []
    for soname, package in XCB_LIBRARIES.items():
        try:
            load(soname)
        except OSError:
            missing.append(package)
    return missing


def xcb_problem(environ=os.environ, load=ctypes.CDLL) -> str | None:
    """None, or one line saying which packages Qt's xcb platform lacks and how to install them."""
    if not uses_xcb(environ):
        return None
    missing = missing_xcb_packages(load)
    if not missing:
        return None
    return (f"Qt's X11 (xcb) platform needs {', '.join(missing)}: sudo apt-get install -y {' '.join(missing)} "
            "(or run bash .ci/setup synth; QT_QPA_PLATFORM=offscreen runs without a display)")
