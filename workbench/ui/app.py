"""Starting the GUI: the QApplication, the look, the main window."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from workbench.ui import settings, style

if TYPE_CHECKING:
    from workbench.ui.main_window import MainWindow


def create_app(argv: list[str] | None = None) -> QApplication:
    """The process's QApplication, made and styled once."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else [sys.argv[0]])
        app.setOrganizationName(settings.ORGANISATION)
        app.setApplicationName(settings.APPLICATION)
        app.setApplicationDisplayName("Preference Workbench")
        app.setDesktopFileName("preference-workbench")
        app.setWindowIcon(app_icon())
        style.apply(app)
    if not isinstance(app, QApplication):  # a QCoreApplication made elsewhere: it cannot show a window
        raise RuntimeError("the process already has a QCoreApplication; the GUI needs a QApplication")
    return app


def app_icon() -> QIcon:
    """The app's icon at every size it ships in (resources/icons), so each platform picks its best."""
    import importlib.resources

    folder = importlib.resources.files("workbench.resources") / "icons"
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256):
        icon.addFile(str(folder / f"workbench-{size}.png"))
    return icon


#: how long after start-up the training process is started (see ``run_gui``)
PRESTART_DELAY_MS = 1000


def run_gui(project: str | os.PathLike | None = None, annotator: str | None = None, demo: bool = False) -> int:
    """Open the main window (on ``project``, or the demo) and run until it closes; the exit status."""
    from workbench.training.process import prestart
    from workbench.ui.main_window import MainWindow

    app = create_app()
    # The training process imports torch in the background, not when Train is pressed; a second after the
    # loop starts, so that its imports do not slow the first paint (1.2 s instead of 0.7 s on one core).
    QTimer.singleShot(PRESTART_DELAY_MS, prestart)
    QTimer.singleShot(PRESTART_DELAY_MS, preload_in_background)
    window = MainWindow(annotator=annotator)
    window.install_training_views()
    window.show()
    if demo:
        window.open_demo()
    elif project is not None:
        path = Path(project).expanduser()
        window.open_project(path, create=not path.exists())
    received = quit_on_signals(window)
    freeze_startup_objects()
    status = app.exec()
    signal.set_wakeup_fd(-1)  # the window and its wake-up socket go now; a late signal writes nowhere
    return 128 + received[0] if received else status  # the shell's convention: 130 for Ctrl+C, 143 for SIGTERM


def quit_on_signals(window: MainWindow) -> list[int]:
    """SIGTERM and Ctrl+C (SIGINT) close the window as its close button does (views save, the project
    closes, the training process is stopped at exit), a running run first stopping with a checkpoint,
    without the question a person gets. Returns the list the signal received is put in.

    Qt's event loop runs no Python, so a Python handler would wait for the next Python slot (Ctrl+C did
    nothing; SIGTERM killed the app and left the training child to a broken pipe): the C-level handler
    writes to a wake-up socket that Qt watches, and reading it runs the handler at once."""
    import socket

    from PySide6.QtCore import QSocketNotifier

    received: list[int] = []

    def close() -> None:
        for _, view in window.views:
            if hasattr(view, "stop_and_wait"):
                view.stop_and_wait()
        window.close()
        QApplication.quit()  # even if something kept the window open

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not received:  # a second one while closing changes nothing
            received.append(signum)
            QTimer.singleShot(0, close)  # not inside the handler: it may interrupt any Python code

    reader, writer = socket.socketpair()
    for sock in (reader, writer):
        sock.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    notifier = QSocketNotifier(reader.fileno(), QSocketNotifier.Type.Read, window)
    notifier.activated.connect(lambda *_: reader.recv(64))
    window._signal_wakeup = (reader, writer, notifier)  # kept as long as the window
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    return received


def preload_modules() -> None:
    """Import what the Inspect view's first load would otherwise import in its task thread: cleanlab,
    and with it scikit-learn and SciPy (2,000 modules, 2-3 s here). Imported in a task thread they
    still held the GUI thread (module code and extension start-up hold the GIL, and the new objects
    set off full garbage collections of 50-80 ms): 100-130 ms gaps when Inspect first showed a run."""
    from workbench.core import suspects

    suspects.preload()


#: the background preload (``preload_in_background``), once started
_PRELOAD: threading.Thread | None = None


def preload_in_background() -> threading.Thread:
    """``preload_modules`` in a daemon thread, started once (at start-up, beside the training process's
    start), then a collection and ``gc.freeze`` of what it made, as ``freeze_startup_objects`` does.
    The thread is returned (to wait for it)."""
    global _PRELOAD
    if _PRELOAD is None:

        def work() -> None:
            import gc

            with contextlib.suppress(Exception):  # a missing extra only costs the delay it would have saved
                preload_modules()
            gc.collect()
            gc.freeze()

        _PRELOAD = threading.Thread(target=work, name="workbench-preload", daemon=True)
        _PRELOAD.start()
    return _PRELOAD


def freeze_startup_objects() -> None:
    """Move what start-up created (Qt's, pyqtgraph's, numpy's and pandas' module-level objects, about
    200,000) out of the garbage collector's sight, once, before any run. Otherwise each full collection
    walks them all, holding the GUI thread for ~50 ms; the events of a head-mode run (hundreds a
    minute) trigger several (``benchmarks/bench_gui_responsiveness.py`` lists the collections inside
    each long gap)."""
    import gc

    gc.collect()
    gc.freeze()
