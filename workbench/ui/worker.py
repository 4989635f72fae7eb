"""Running the trainer off the GUI thread (docs/architecture.md#the-run-pipeline).

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

The worker is a thin bridge: the controls (``pause``, ``resume``, ``cancel``, from the GUI thread at any
time, also before the trainer exists) are a :class:`~workbench.training.run_control.RunControl`, and
``run_control.run_to_events`` builds the trainer with the injected factory and turns any error into a
``Failed`` event (running out of memory with a hint; a child that dies with how it ended). Either way the
run ends and the GUI keeps working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from workbench.training.run_control import RunControl, TrainerFactory, run_to_events


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
    # every event, after its own signal. The name shadows QObject.event (Qt's C++ dispatch is unaffected: a
    # queued call still arrives); kept for its subscribers (tests, benchmarks).
    event = Signal(object)  # type: ignore[assignment]
    done = Signal()  # ``run`` returned; nothing more comes

    def __init__(
        self,
        project_path: str | Path,
        config: TrainConfig,
        resume_run: int | None = None,
        trainer_factory: TrainerFactory | None = None,
    ):
        """``trainer_factory`` builds what runs the training: None for the trainer in the training
        process; ``Trainer`` itself runs it in the worker thread (tests use that to inject failures)."""
        super().__init__()
        self.project_path = Path(project_path)
        self.config = config
        self.resume_run = resume_run
        self.trainer_factory = trainer_factory or process.TrainerProcess
        self.control = RunControl(resume_run)
        #: what the factory built, while the run is on (diagnostics: a TrainerProcess's ``pid``)
        self.trainer: object | None = None
        self._signals = {
            RunStarted: self.run_started,
            PhaseProgress: self.progress,
            StepMetrics: self.step,
            Evaluation: self.evaluated,
            CheckpointSaved: self.checkpoint_saved,
            Paused: self.paused,
            Resumed: self.resumed,
            Finished: self.finished,
            Failed: self.failed,
        }

    @property
    def run_id(self) -> int | None:
        return self.control.run_id

    # ------------------------------------------------------------------ controls (any thread)
    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def cancel(self) -> None:
        self.control.cancel()

    # ------------------------------------------------------------------ the run (worker thread)
    def _build_trainer(self, *args: Any, **kwargs: Any) -> Any:  # a TrainerFactory (Callable[..., Any])
        self.trainer = self.trainer_factory(*args, **kwargs)
        return self.trainer

    @Slot()
    def run(self) -> None:
        events = run_to_events(
            self._build_trainer, self.project_path, self.config, self.resume_run, control=self.control
        )
        try:
            for ev in events:
                self._signals[type(ev)].emit(ev)
                self.event.emit(ev)
        finally:
            # a run left mid-way keeps a resumable checkpoint (run_to_events is a generator, annotated Iterator)
            events.close()  # type: ignore[attr-defined]
            self.trainer = None  # the model, optimizer and data go now, not when the worker does
            app = QCoreApplication.instance()
            if app is not None:  # back to the GUI thread, so that Python may delete it there
                self.moveToThread(app.thread())
            self.done.emit()


class TrainingRun(QObject):
    """One run in its own QThread: ``start``, the controls, and ``wait`` (keeping the GUI alive)."""

    ended = Signal()  # the thread has finished; the run is over

    def __init__(
        self,
        project_path: str | Path,
        config: TrainConfig,
        resume_run: int | None = None,
        parent: QObject | None = None,
        trainer_factory: TrainerFactory | None = None,
    ):
        super().__init__(parent)
        self.worker_thread = QThread()  # not self.thread: that is QObject.thread()
        self.worker_thread.setObjectName("workbench-training")
        self.worker = TrainWorker(project_path, config, resume_run, trainer_factory)
        self.worker.moveToThread(self.worker_thread)
        self.worker_thread.started.connect(self.worker.run)
        # Direct: quit from the worker thread itself, so that a GUI thread blocked in wait() is released.
        self.worker.done.connect(self.worker_thread.quit, Qt.ConnectionType.DirectConnection)
        self.worker_thread.finished.connect(self._on_thread_finished)
        self._running = False
        self.paused = False
        self.cancelling = False

    def start(self) -> None:
        self._running = True
        self.worker_thread.start()

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
