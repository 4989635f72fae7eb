"""The xcb library check that runs before Qt: a missing system library is a one-line answer, not Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workbench.ui import platform_check

ROOT = platform_check.Path(__file__).resolve().parents[2]

#: ``ldd`` on PySide6's libqxcb.so on a Debian desktop without libxcb-cursor0 (shortened)
LDD_WITHOUT_CURSOR = """\
\tlinux-vdso.so.1 (0x00007ffd1c5e6000)
\tlibQt6XcbQpa.so.6 => /opt/venv/lib/python3.11/site-packages/PySide6/Qt/plugins/platforms/../../lib/libQt6XcbQpa.so.6 (0x00007f3a1c2f0000)
\tlibQt6Gui.so.6 => /opt/venv/lib/python3.11/site-packages/PySide6/Qt/plugins/platforms/../../lib/libQt6Gui.so.6 (0x00007f3a1b800000)
\tlibxkbcommon-x11.so.0 => /lib/x86_64-linux-gnu/libxkbcommon-x11.so.0 (0x00007f3a1c2e0000)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => /lib/x86_64-linux-gnu/libxcb-icccm.so.4 (0x00007f3a1c2d0000)
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f3a1b7d0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3a1b400000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3a1c330000)
"""

X11 = {"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}


def fake_ldd(path):
    return LDD_WITHOUT_CURSOR


def test_a_missing_library_names_its_debian_package():
    problem = platform_check.xcb_problem(X11, ldd=fake_ldd)
    assert "libxcb-cursor.so.0" in problem
    assert "sudo apt install libxcb-cursor0" in problem
    assert "\n" not in problem


def test_several_missing_libraries_and_one_without_a_known_package():
    output = LDD_WITHOUT_CURSOR + "\tlibxkbcommon-x11.so.0 => not found\n\tlibxcb-foo.so.7 => not found\n"
    problem = platform_check.xcb_problem(X11, ldd=lambda path: output)
    assert "apt install libxcb-cursor0 libxkbcommon-x11-0" in problem
    assert "install the package that provides libxcb-foo.so.7" in problem


@pytest.mark.parametrize(
    "environ",
    [
        {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"},
        {"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"},
        {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
        {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"},  # Qt tries wayland first on either sign of it
        {"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"},
        {},  # no display at all: the no-display check answers that
    ],
    ids=["offscreen", "wayland-list", "wayland-session", "wayland-display", "wayland-type", "nothing"],
)
def test_silent_when_qt_will_not_use_xcb(environ):
    assert platform_check.xcb_problem(environ, ldd=fake_ldd) is None


@pytest.mark.parametrize(
    "environ",
    [
        X11,
        {"DISPLAY": ":0"},
        {"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"},
        {"DISPLAY": ":0", "WAYLAND_DISPLAY": "w-0", "QT_QPA_PLATFORM": "xcb"},
    ],
)
def test_checked_when_qt_will_use_xcb(environ):
    assert platform_check.xcb_problem(environ, ldd=fake_ldd) is not None


def test_silent_without_ldd():
    assert platform_check.xcb_problem(X11, ldd=lambda path: None) is None


def test_the_real_check_on_this_machine_says_nothing():
    """This machine has the xcb libraries (packaging/README.md): the real ldd runs on the real plugin and finds them all."""
    if not sys.platform.startswith("linux"):
        pytest.skip("xcb and ldd are Linux's")
    plugin = platform_check.xcb_plugin()
    assert plugin is not None, "PySide6 ships no xcb platform plugin here: a broken install"
    listing = platform_check.run_ldd(plugin)
    assert listing is not None, "ldd did not run on the xcb plugin"
    assert "libxcb-cursor.so.0 => /" in listing  # the indirect dependency is listed
    assert platform_check.xcb_problem(X11) is None


SCRIPT = """
import sys
from workbench.ui import platform_check
platform_check.run_ldd = lambda path: {output!r}
from workbench.cli import main
status = main(["{command}", "--annotator", "tester"])
print("qt modules:", sorted(m for m in sys.modules if m.startswith("PySide6")))
sys.exit(status)
"""


@pytest.mark.parametrize("command", ["demo", "gui"])
def test_the_commands_answer_before_qt_is_imported(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env.update(
        DISPLAY=":0",
        HOME=str(tmp_path),
        XDG_DATA_HOME=str(tmp_path / "data"),
        WORKBENCH_SETTINGS_DIR=str(tmp_path / "settings"),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(output=LDD_WITHOUT_CURSOR, command=command)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("workbench: error: ") and "apt install libxcb-cursor0" in lines[0]
    assert "qt modules: []" in done.stdout
    assert not (tmp_path / "data").exists()  # nothing made: the demo project was not built
