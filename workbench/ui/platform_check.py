"""Before Qt starts: can its xcb platform plugin load here? (Qt-free: nothing from PySide6 is imported.)

On a Debian/Ubuntu desktop without ``libxcb-cursor0`` (not installed by default), Qt aborts the process
with "Could not load the Qt platform plugin xcb", a core dump and a hint that blames the wrong thing half
the time. ``ldd`` on PySide6's ``libqxcb.so`` lists every shared library its loading needs, the indirect
ones too (libxcb-cursor comes in through ``libQt6XcbQpa``), and marks the missing ones "not found"; so
the CLI can say which package to install instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

#: the Debian/Ubuntu package of each system library Qt 6's xcb plugin needs (packaging/README.md lists them too)
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}


def xcb_plugin() -> Path | None:
    """PySide6's xcb platform plugin, found without importing PySide6 (which would load Qt)."""
    spec = importlib.util.find_spec("PySide6")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        plugin = Path(folder) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def run_ldd(library: Path) -> str | None:
    """``ldd``'s output for ``library``; None when there is no ``ldd`` or it fails (then we say nothing)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        done = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def missing_libraries(ldd_output: str) -> list[str]:
    """The sonames ``ldd`` marks "not found", in its order, each once."""
    missing: list[str] = []
    for line in ldd_output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found" and name.strip() not in missing:
            missing.append(name.strip())
    return missing


def qt_tries_xcb_first(environ: Mapping[str, str]) -> bool:
    """Whether the platform Qt 6 tries first is xcb (``QGuiApplicationPrivate::createPlatformIntegration``):
    ``QT_QPA_PLATFORM`` decides when set (its first entry of a ``;`` list); otherwise wayland comes first
    when ``WAYLAND_DISPLAY`` is set or ``XDG_SESSION_TYPE`` is wayland, and xcb only when ``DISPLAY`` is set."""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(";")[0].split(":")[0].strip() == "xcb"
    if environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland":
        return False
    return bool(environ.get("DISPLAY"))


def xcb_problem(
    environ: Mapping[str, str] | None = None, ldd: Callable[[Path], str | None] | None = None
) -> str | None:
    """Why Qt's xcb plugin cannot load here (the libraries missing and the packages to install), or None.

    None too when Qt will not use xcb (Wayland, offscreen), when the plugin or ``ldd`` is not there, and on
    other systems than Linux. ``ldd`` (a path -> its output, or None; ``run_ldd`` by default, looked up at
    the call so a test may replace it) is the seam for tests: CI has the libraries."""
    environ = os.environ if environ is None else environ
    ldd = ldd or run_ldd
    if not sys.platform.startswith("linux") or not qt_tries_xcb_first(environ):
        return None
    plugin = xcb_plugin()
    output = ldd(plugin) if plugin is not None else None
    missing = missing_libraries(output or "")
    if not missing:
        return None
    packages = list(dict.fromkeys(DEBIAN_PACKAGES[name] for name in missing if name in DEBIAN_PACKAGES))
    unknown = [name for name in missing if name not in DEBIAN_PACKAGES]
    todo = []
    if packages:
        todo.append(
            f"install {'it' if len(missing) == 1 else 'them'} (Debian/Ubuntu): sudo apt install {' '.join(packages)}"
        )
    if unknown:
        todo.append(f"install the package that provides {', '.join(unknown)}")
    return (
        f"the window cannot open: Qt's X11 (xcb) platform plugin needs {', '.join(missing)}, which "
        f"{'is' if len(missing) == 1 else 'are'} not installed; {'; '.join(todo)}"
    )
