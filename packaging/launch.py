"""Entry point of the PyInstaller bundle: ``workbench.cli.main`` with three packaging-only additions.

* The window icon. When the app itself sets none (``QApplication.windowIcon()`` is null), the bundle
  sets the one from ``resources/icons`` so the window, the task bar and Alt+Tab show it. Once
  ``workbench/ui/app.py`` sets it itself, this does nothing.
* A smoke test for ``packaging/build.sh``: with ``WORKBENCH_SMOKE_TEST=/path/shot.png`` the bundle opens
  the demo project (``demo --annotator smoke-test`` unless other arguments are given), grabs the main
  window to that PNG after ``WORKBENCH_SMOKE_DELAY_MS`` (default 2000) and quits with 0. It exits 3 when
  the window could not be grabbed or saved, 4 when no window appeared within ``WORKBENCH_SMOKE_TIMEOUT_S``
  (default 60). It prints ``smoke-test: painted after N ms`` (from process start to the first paint of
  the main window) and ``smoke-test: title ...``.
* ``preference-workbench PATH.wbp`` (one argument that is a project path, as the .desktop entry's
  ``Exec=... %f`` passes it) opens that project: ``gui --project PATH``.

The first two wrap ``workbench.ui.app.create_app``; the app's code is not changed. Everything else
(subcommands, exit codes) is the ``workbench`` command's.
"""

from __future__ import annotations

import os
import sys
import time

_T0 = time.perf_counter()


def _ms_since_process_start() -> float:
    """Milliseconds since this process started (Linux: from /proc, so the bootloader and the interpreter's
    start count too); elsewhere since this module was first run."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        return (uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")) * 1000
    except (OSError, ValueError, IndexError, AttributeError):
        return (time.perf_counter() - _T0) * 1000


def _icon_folder():
    import importlib.resources

    try:
        return importlib.resources.files("workbench.resources") / "icons"
    except ModuleNotFoundError:  # run from a source checkout that was never installed
        from pathlib import Path

        return Path(__file__).resolve().parents[1] / "resources" / "icons"


def _app_icon():
    from PySide6.QtGui import QIcon

    icon = QIcon()
    folder = _icon_folder()
    for size in (16, 32, 48, 64, 128, 256):
        path = folder / f"workbench-{size}.png"
        if path.is_file():
            icon.addFile(str(path))
    return icon


def _wrap_create_app(smoke_shot: str | None) -> bool:
    """Wrap the app's ``create_app`` with the icon fallback (and the smoke test); False if it is gone."""
    try:
        from workbench.ui import app as ui_app

        original = ui_app.create_app
    except (ImportError, AttributeError) as exc:
        print(f"launch: cannot hook the GUI start-up ({exc})", file=sys.stderr)
        return False

    def create_app(*args, **kwargs):
        app = original(*args, **kwargs)
        if app.windowIcon().isNull():
            app.setWindowIcon(_app_icon())
        if smoke_shot and not getattr(app, "_workbench_smoke_armed", False):
            app._workbench_smoke_armed = True
            _arm_smoke_test(app, smoke_shot)
        return app

    ui_app.create_app = create_app
    return True


def _arm_smoke_test(app, shot: str) -> None:
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QMainWindow, QWidget

    delay_ms = int(os.environ.get("WORKBENCH_SMOKE_DELAY_MS", "2000"))
    timeout_s = float(os.environ.get("WORKBENCH_SMOKE_TIMEOUT_S", "60"))
    state = {"painted_ms": None, "shot_due": False}

    def main_window():
        windows = [w for w in app.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
        return windows[0] if windows else None

    class FirstPaint(QObject):
        """Notes when a main window is first painted, then schedules the grab ``delay_ms`` later."""

        def eventFilter(self, obj, event):  # Qt calls it by this name
            if (state["painted_ms"] is None and event.type() == QEvent.Type.Paint
                    and isinstance(obj, QWidget) and isinstance(obj.window(), QMainWindow)):
                state["painted_ms"] = _ms_since_process_start()
                print(f"smoke-test: painted after {state['painted_ms']:.0f} ms (since the process started)",
                      flush=True)
                if not state["shot_due"]:
                    state["shot_due"] = True
                    QTimer.singleShot(delay_ms, grab)
            return False

    def grab():
        window = main_window()
        if window is None:
            print("smoke-test: no main window is visible", file=sys.stderr, flush=True)
            app.exit(3)
            return
        print(f"smoke-test: title {window.windowTitle()!r}", flush=True)
        print(f"smoke-test: window icon {'set' if not app.windowIcon().isNull() else 'MISSING'}", flush=True)
        if not window.grab().save(shot):
            print(f"smoke-test: cannot save {shot}", file=sys.stderr, flush=True)
            app.exit(3)
            return
        print(f"smoke-test: wrote {shot}", flush=True)
        app.exit(0)

    def give_up():
        print(f"smoke-test: no main window was painted within {timeout_s:g} s", file=sys.stderr, flush=True)
        sys.stderr.flush()
        os._exit(4)

    app._workbench_smoke_filter = FirstPaint(app)  # keep a reference
    app.installEventFilter(app._workbench_smoke_filter)
    watchdog = QTimer(app)
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(give_up)
    watchdog.start(int(timeout_s * 1000))
    app._workbench_smoke_watchdog = watchdog


def main() -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # a frozen child process (spawn: macOS, Windows) runs its task and exits

    argv = sys.argv[1:]
    if len(argv) == 1 and (argv[0].endswith(".wbp") or os.sep in argv[0]) and not argv[0].startswith("-"):
        argv = ["gui", "--project", argv[0]]  # the .desktop entry's "Exec=... %f", a file manager's "Open with"
    smoke_shot = os.environ.get("WORKBENCH_SMOKE_TEST") or None
    if smoke_shot:
        smoke_shot = os.path.abspath(smoke_shot)
        if not argv:
            argv = ["demo", "--annotator", "smoke-test"]
    positional = [a for a in argv if not a.startswith("-")]
    gui = not positional or positional[0] in ("gui", "demo") or smoke_shot
    if gui and not _wrap_create_app(smoke_shot) and smoke_shot:
        return 3

    from workbench.cli import main as workbench_main

    return workbench_main(argv)


if __name__ == "__main__":
    sys.exit(main())
