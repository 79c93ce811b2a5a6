"""Qt's xcb libraries are checked before Qt starts: a missing one is a line naming its package."""
from __future__ import annotations

from melsynth.app.xcb_libraries import XCB_LIBRARIES, uses_xcb, xcb_problem


def loader_without(*absent):
    def load(soname):
        if soname in absent:
            raise OSError(f"{soname}: cannot open shared object file")
        return object()
    return load


def test_a_missing_library_names_its_package_and_the_install_line():
    env = {"DISPLAY": ":99"}
    problem = xcb_problem(env, loader_without("libxcb-icccm.so.4", "libxcb-keysyms.so.1"))
    assert problem is not None and "\n" not in problem
    assert "libxcb-icccm4, libxcb-keysyms1" in problem
    assert "apt-get install -y libxcb-icccm4 libxcb-keysyms1" in problem


def test_nothing_missing_or_no_x_display_is_no_problem():
    assert xcb_problem({"DISPLAY": ":99"}, loader_without()) is None
    everything_missing = loader_without(*XCB_LIBRARIES)
    assert xcb_problem({}, everything_missing) is None  # no display: Qt will not load xcb
    assert xcb_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, everything_missing) is None
    assert uses_xcb({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"})


def test_this_machine_has_the_libraries_setup_installs():
    """bash .ci/setup synth installs them (and the test environment has them)."""
    from pathlib import Path

    from tests.paths import REPO

    setup = Path(REPO, ".ci", "setup").read_text()
    for package in XCB_LIBRARIES.values():
        assert package in setup, f".ci/setup synth does not install {package}"
