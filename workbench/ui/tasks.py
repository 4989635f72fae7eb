"""Long project work (import, export) off the GUI thread.

A ``ProjectTask`` runs one function in a QThread with its OWN ``Project`` (sqlite connections belong
to the thread that made them). The function gets ``progress(done, total)`` and ``cancel()`` callables;
results and errors come back as signals carrying plain data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal


class ProjectTask(QThread):
    progressed = Signal(int, int)  # done, total
    succeeded = Signal(object)  # the function's result
    failed = Signal(str)  # a one-line message for the user
    cancelled = Signal()

    def __init__(
        self, project_path: str | Path, fn: Callable[..., Any], description: str = "", parent: QObject | None = None
    ):
        super().__init__(parent)
        self.project_path = Path(project_path)
        self.fn = fn
        self.description = description
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:  # runs in the worker thread
        from workbench.core.formats import FormatError, ImportCancelled
        from workbench.core.store import Project, ProjectError

        project = None
        try:
            project = Project.open(self.project_path)
            result = self.fn(project, progress=self._progress, cancel=self._cancel.is_set)
        except ImportCancelled:
            self.cancelled.emit()
            return
        except FormatError as exc:
            self.failed.emit(str(exc))
            return
        except ProjectError as exc:
            self.failed.emit(str(exc))
            return
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            self.failed.emit(f"{where}{exc.strerror or exc}")
            return
        except Exception as exc:  # noqa: BLE001 - every error becomes a message, not a crash
            self.failed.emit(f"{self.description or 'The task'} failed: {type(exc).__name__}: {exc}")
            return
        finally:
            if project is not None:
                project.close()
        if self._cancel.is_set() and result is None:
            self.cancelled.emit()
            return
        self.succeeded.emit(result)

    def _progress(self, done: int, total: int) -> None:
        self.progressed.emit(int(done), int(total))
