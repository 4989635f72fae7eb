"""Running the trainer off the GUI thread.

``TrainWorker`` is a QObject moved to a QThread; its ``run`` slot iterates a trainer's events and forwards
each event, unchanged, as a signal. The events are plain dataclasses (floats, dicts, numpy arrays, never
tensors), so the GUI thread can keep them without touching the live model. ``TrainingRun`` owns the
thread and the worker and is what a view holds.

The trainer itself runs in a child process (:class:`~workbench.training.process.TrainerProcess`): the
worker thread only waits on a pipe (without the GIL), unpickles events and emits them. In a thread of
this process the trainer's Python and GIL-holding C code (model loading, tokenising, the head's small
steps) kept delaying the GUI's event loop; ``benchmarks/bench_gui_responsiveness.py`` measures both, and
the README has the figures. The GUI process never imports torch; the app calls ``process.prestart`` at
start-up, so that the child's imports are paid before the first run.

Controls (``pause``, ``resume``, ``cancel``) may be called from the GUI thread at any time, also before
the trainer exists: the trainer picks up a control given earlier.

The worker turns the errors that come through into a ``Failed`` event (``process.failure_event``):
running out of memory gets a hint of what to do; a child that dies (a crash, or the kernel killing it for
memory) is reported with how it ended. Either way the run ends and the GUI keeps working.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import (
    QCoreApplication,
    QEventLoop,
    QObject,
    Qt,
    QThread,
    QTimer,
    Signal,
    Slot,
)

from workbench.training import process
from workbench.training.config import TrainConfig
from workbench.training.events import (
    CheckpointSaved,
    Evaluation,
    Failed,
    Finished,
    Paused,
    PhaseProgress,
    Resumed,
    RunStarted,
    StepMetrics,
)

#: what runs a training: the trainer in a child process. Any class with the ``Trainer`` interface fits
#: (``Trainer`` itself runs in the worker thread, which tests use to inject failures into it).
TRAINER_CLASS = process.TrainerProcess


class TrainWorker(QObject):
    """Iterates a trainer's events in the thread it lives in; one signal per event type, in order."""

    run_started = Signal(object)  # RunStarted
    progress = Signal(object)  # PhaseProgress
    step = Signal(object)  # StepMetrics
    evaluated = Signal(object)  # Evaluation
    checkpoint_saved = Signal(object)  # CheckpointSaved
    paused = Signal(object)  # Paused
    resumed = Signal(object)  # Resumed
    finished = Signal(object)  # Finished: the run ended (finished or cancelled)
    failed = Signal(object)  # Failed: the run could not go on
    event = Signal(object)  # every event, after its own signal
    done = Signal()  # ``run`` returned; nothing more comes

    def __init__(self, project_path: str | Path, config: TrainConfig, resume_run: int | None = None):
        super().__init__()
        self.project_path = Path(project_path)
        self.config = config
        self.resume_run = resume_run
        self.trainer = None
        self.run_id: int | None = resume_run
        self._lock = threading.Lock()
        self._pending_pause = False
        self._pending_cancel = False
        self._signals = {
            RunStarted: self.run_started, PhaseProgress: self.progress, StepMetrics: self.step,
            Evaluation: self.evaluated, CheckpointSaved: self.checkpoint_saved, Paused: self.paused,
            Resumed: self.resumed, Finished: self.finished, Failed: self.failed,
        }

    # ------------------------------------------------------------------ controls (any thread)
    def pause(self) -> None:
        with self._lock:
            self._pending_pause = True
            if self.trainer is not None:
                self.trainer.pause()

    def resume(self) -> None:
        with self._lock:
            self._pending_pause = False
            if self.trainer is not None:
                self.trainer.resume()

    def cancel(self) -> None:
        with self._lock:
            self._pending_cancel = True
            if self.trainer is not None:
                self.trainer.cancel()

    # ------------------------------------------------------------------ the run (worker thread)
    @Slot()
    def run(self) -> None:
        events = None
        ended = False
        try:
            trainer = TRAINER_CLASS(self.project_path, self.config, resume_run=self.resume_run)
            with self._lock:
                self.trainer = trainer
                if self._pending_cancel:
                    trainer.cancel()
                elif self._pending_pause:
                    trainer.pause()
            events = trainer.events()
            for ev in events:
                if isinstance(ev, RunStarted):
                    self.run_id = ev.run_id
                ended = isinstance(ev, (Finished, Failed))
                self._signals[type(ev)].emit(ev)
                self.event.emit(ev)
        except Exception as exc:  # noqa: BLE001 - every error ends the run with a message, never a crash
            if not ended:
                ev = process.failure_event(exc, getattr(self.trainer, "run_id", None) or self.run_id)
                ended = True
                if events is not None:
                    events.close()  # the trainer's own clean-up first (it may mark the run cancelled)
                    events = None
                process.mark_failed(self.project_path, ev)
                self.failed.emit(ev)
                self.event.emit(ev)
        finally:
            if events is not None:
                events.close()  # a run left mid-way keeps a resumable checkpoint
            with self._lock:
                self.trainer = None  # the model, optimizer and data go now, not when the worker does
            app = QCoreApplication.instance()
            if app is not None:  # back to the GUI thread, so that Python may delete it there
                self.moveToThread(app.thread())
            self.done.emit()


class TrainingRun(QObject):
    """One run in its own QThread: ``start``, the controls, and ``wait`` (keeping the GUI alive)."""

    ended = Signal()  # the thread has finished; the run is over

    def __init__(self, project_path: str | Path, config: TrainConfig, resume_run: int | None = None, parent=None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("workbench-training")
        self.worker = TrainWorker(project_path, config, resume_run)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        # Direct: quit from the worker thread itself, so that a GUI thread blocked in wait() is released.
        self.worker.done.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread.finished.connect(self._on_thread_finished)
        self._running = False
        self.paused = False
        self.cancelling = False

    def start(self) -> None:
        self._running = True
        self.thread.start()

    def is_running(self) -> bool:
        return self._running

    @property
    def run_id(self) -> int | None:
        return self.worker.run_id

    def pause(self) -> None:
        self.paused = True
        self.worker.pause()

    def resume(self) -> None:
        self.paused = False
        self.worker.resume()

    def cancel(self) -> None:
        self.cancelling = True
        self.worker.cancel()

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Run the GUI's event loop until the thread ends (signals still arrive); False on timeout."""
        if not self._running:
            return True
        loop = QEventLoop()
        self.ended.connect(loop.quit)
        timer = None
        if timeout_ms is not None:
            timer = QTimer()
            timer.setSingleShot(True)
            timer.timeout.connect(loop.quit)
            timer.start(timeout_ms)
        if self._running:
            loop.exec()
        self.ended.disconnect(loop.quit)
        if timer is not None:
            timer.stop()
        return not self._running

    def _on_thread_finished(self) -> None:
        self._running = False
        self.ended.emit()
