"""Starting the GUI: the QApplication, the look, the main window."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from workbench.ui import settings, style


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
    return app


def app_icon() -> QIcon:
    """The app's icon at every size it ships in (resources/icons), so each platform picks its best."""
    import importlib.resources

    folder = importlib.resources.files("workbench.resources") / "icons"
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256):
        icon.addFile(str(folder / f"workbench-{size}.png"))
    return icon


def run_gui(project: str | os.PathLike | None = None, annotator: str | None = None, demo: bool = False) -> int:
    """Open the main window (on ``project``, or the demo) and run until it closes; the exit status."""
    from workbench.ui.main_window import MainWindow
    from workbench.ui.worker import warm_up_in_background

    app = create_app()
    # torch's first import and first optimizer (2 s) now, off the GUI thread, before any plot is live.
    warm = warm_up_in_background()
    window = MainWindow(annotator=annotator)
    window.install_training_views()
    window.show()
    if demo:
        window.open_demo()
    elif project is not None:
        path = Path(project).expanduser()
        window.open_project(path, create=not path.exists())
    status = app.exec()
    warm.join(timeout=30)  # never leave the interpreter while the warm-up thread is inside an import
    return status
