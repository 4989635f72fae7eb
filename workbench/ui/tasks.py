"""Long project work (import, export) off the GUI thread.

A ``ProjectTask`` runs one function in a QThread with its OWN ``Project`` (sqlite connections belong
to the thread that made them). The function gets ``progress(done, total)`` and ``cancel()`` callables;
results and errors come back as signals carrying plain data.

Numeric libraries in a task (numpy's and SciPy's OpenBLAS, scikit-learn's OpenMP) run at most
``background_threads()`` threads: all cores but one, which stays free for the GUI thread. With OpenBLAS's
default of one thread a core, the Inspect view's load (cleanlab, the error map's PCA) left a worker
spinning after its last BLAS call (OpenBLAS threads busy-wait before they sleep), and on a machine with
about one core of real throughput the runnable GUI thread waited for the CPU: one 54-83 ms stall per
load in ``benchmarks/bench_gui_responsiveness.py``, measured with the kernel's per-thread run-queue
times (``/proc/<pid>/task/<tid>/schedstat``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal


def background_threads() -> int:
    """Threads a background task's numeric libraries may use: the cores this process may run on, less one
    for the GUI thread (at least one). Measured when asked, never assumed."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@contextlib.contextmanager
def limit_numeric_threads() -> Iterator[int]:
    """Cap the BLAS and OpenMP thread pools at ``background_threads()`` for the calling (task) thread's work;
    yields the cap. threadpoolctl (scikit-learn's own dependency) is the maintained way to reach every
    loaded runtime (numpy and SciPy each ship their own OpenBLAS). OpenMP's cap is per thread. OpenBLAS's
    pool is process-wide, and threadpoolctl lets one thread at a time set it: the task takes that role,
    sets the cap and gives the role up at the end without restoring the old size, so that the next task's
    thread (or one running beside it) can set it, and no task undoes another's cap halfway through."""
    from threadpoolctl import threadpool_limits

    n = background_threads()
    threadpool_limits(limits=n)
    try:
        yield n
    finally:
        import threadpoolctl

        # Before threadpoolctl 3.8 any thread could size the pool: there is no role to give up.
        release = getattr(getattr(threadpoolctl, "OpenBLASController", None), "clear_controlling_thread", None)
        if release is not None:
            release()


#: the "score_unlabelled" job: scoring every comparison of a large project on a CPU takes minutes; past this
#: it is reported failed
SCORE_JOB_TIMEOUT_S = 3600.0
#: a short job's call: payload in, result out (``training_job``; tests pass a function of their own)
JobRunner = Callable[[dict[str, Any]], dict[str, Any]]


def training_job(kind: str, timeout: float) -> JobRunner:
    """A runner that sends its payload as short job ``kind`` to the training process (``training/server.py``):
    torch runs there, never in the GUI process."""

    def run(payload: dict[str, Any]) -> dict[str, Any]:
        from workbench.training import process

        result = process.run_job(kind, timeout=timeout, **payload)
        assert isinstance(result, dict)
        return result

    return run


class JobThread(QThread):
    """One ``runner(payload)`` waited for in a worker thread; its result or error comes back as a signal,
    never raised into Qt."""

    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, runner: JobRunner, payload: dict[str, Any], parent: QObject | None = None):
        super().__init__(parent)
        self.runner, self.payload = runner, payload

    def run(self) -> None:  # the worker thread
        try:
            result = self.runner(self.payload)
        except Exception as exc:  # noqa: BLE001 - the view shows it
            self.failed.emit(str(exc) or type(exc).__name__)
        else:
            self.succeeded.emit(result)


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
            with limit_numeric_threads():
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


class Recomputation(QObject):
    """Figures over the open project that every change asks for again (agreement, reliability): one
    computation at a time in a :class:`ProjectTask`; a request while one runs is served once more when it
    ends; a result or failure for a project other than the one asked for last is dropped."""

    ready = Signal(object)  # the result
    failed = Signal(str)  # a one-line message

    def __init__(self, work: Callable[..., Any], description: str, parent: QObject | None = None):
        super().__init__(parent)
        self._work, self._description = work, description
        self.task: ProjectTask | None = None
        self._path: Path | None = None  # the project asked for last
        self._stale = False

    def request(self, path: str | Path) -> ProjectTask:
        self._path = Path(path)
        if self.task is not None:
            self._stale = True
            return self.task
        asked = self._path
        task = ProjectTask(asked, self._work, description=self._description, parent=self)
        task.succeeded.connect(lambda result: self._deliver(asked, self.ready, result))
        task.failed.connect(lambda message: self._deliver(asked, self.failed, message))
        task.finished.connect(self._on_finished)
        self._stale = False
        self.task = task
        task.start()
        return task

    def forget(self) -> None:
        """The project is closing: a running computation ends, and its result is dropped."""
        self._path, self._stale = None, False
        if self.task is not None:
            self.task.wait()

    def _deliver(self, asked: Path, signal: Any, value: object) -> None:
        if asked == self._path:
            signal.emit(value)

    def _on_finished(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.deleteLater()
        if self._stale and self._path is not None:
            self.request(self._path)
