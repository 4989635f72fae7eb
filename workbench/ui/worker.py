"""Running the trainer off the GUI thread.

``TrainWorker`` is a QObject moved to a QThread; its ``run`` slot iterates ``Trainer.events()`` and
forwards each event, unchanged, as a signal. The events are plain dataclasses (floats, dicts, numpy
arrays, never tensors), so the GUI thread can keep them without touching the live model. ``TrainingRun``
owns the thread and the worker and is what a view holds.

Controls (``pause``, ``resume``, ``cancel``) may be called from the GUI thread at any time, also before
the trainer exists: the trainer is built in the worker thread (importing it imports torch, which must
not happen on the GUI thread) and picks up a control given earlier.

The worker turns the errors the trainer lets through into a ``Failed`` event: running out of memory
(``torch.OutOfMemoryError`` or a RuntimeError saying "out of memory") gets a hint of what to do; anything
else is reported with its type and message. Either way the run ends and the GUI keeps working.

Keeping the GUI smooth beside a Python training thread (measured with
``benchmarks/bench_gui_responsiveness.py``):

- ``warm_up`` at start-up pays torch's and transformers' first imports and a first model load off the GUI
  thread, then ``gc.freeze()``s what they left: without it every full garbage collection during a run
  walked ~450,000 objects and stalled the GUI for ~220 ms;
- the ``PaintGate`` makes the worker wait (at most 0.1 s, between events) while the window paints, which
  halved the paint time during a head-mode run (Qt calls release the GIL, and the trainer took it);
- one event at a time with ``time.sleep(0)`` after each, so a waiting GUI thread gets the GIL at once.

``WORKBENCH_PAINT_GATE=0`` turns the gate off and ``WORKBENCH_TRAIN_NICE=n`` makes the training thread
nicer on Linux (default 0: nice 5 cut GUI stalls further but halved training speed on a machine busy
with other processes), both for measuring.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QEventLoop,
    QObject,
    Qt,
    QThread,
    QTimer,
    Signal,
    Slot,
)

from workbench.training import offline_environment
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

OOM_HINT = "lower batch_size or max_length, or use head mode or LoRA, then start a new run"

_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_up() -> None:
    """Pay the one-time costs of a first run: import the trainer (torch, transformers), create a first
    optimizer (more of torch), and load the bundled MiniLM once (``from_pretrained`` imports accelerate,
    scipy and the model's module on first use).

    Done once per process. Those imports hold the GIL in long C stretches (loading extension modules):
    in a worker thread they stall the GUI thread for 200-1000 ms at a time, so the app does this at
    start-up, before any plot is live, instead of inside the first run.
    """
    offline_environment()
    import torch

    from workbench.training import trainer
    from workbench.training.model import PairEncoder, build_reward_model

    trainer.warm_up_torch()
    try:
        model, tokenizer = build_reward_model("minilm")
    except Exception:  # noqa: BLE001 - no bundled model: the imports above are most of the cost anyway
        return
    encoder = PairEncoder.for_model(model, tokenizer, 32)
    ids = encoder.encode_many(["A warm-up prompt."], ["A warm-up answer."])[0].input_ids
    with torch.inference_mode():
        model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    del model, tokenizer, encoder
    freeze_startup_objects()


def freeze_startup_objects() -> None:
    """Move everything alive now (torch's and transformers' ~450,000 module-level objects) out of the
    garbage collector's sight. Otherwise each full collection walks them all, holding the GIL for about
    200 ms, and a run's data preparation triggers several: measured as 215-230 ms GUI stalls (the
    benchmark in benchmarks/bench_gui_responsiveness.py). With ``gc.freeze`` a full collection takes
    about 10 ms. The one collection here runs at start-up, before plots are live."""
    import gc

    gc.collect()
    gc.freeze()


def warm_up_in_background() -> threading.Thread:
    """Start ``warm_up`` in a plain thread (once); ``join`` it before the process exits."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm_quietly, name="workbench-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def _warm_quietly() -> None:
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - a failed warm-up only costs time later; the run reports real errors
        pass


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread nicer (Linux, where niceness is per thread; elsewhere nothing).

    On a machine with about one core the GUI thread and a training thread share it: every time the GUI
    calls into Qt (which releases the GIL) the trainer takes the core and the GIL, and a 2 ms repaint
    took 20-40 ms. A nice trainer still gets all the CPU the GUI does not use."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (OSError, AttributeError):
        pass


def _is_oom(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (isinstance(exc, (RuntimeError, MemoryError))
                                          and ("out of memory" in str(exc).lower() or isinstance(exc, MemoryError)))


class PaintGate(QObject):
    """Lets a window paint without a training thread in its way.

    While a Python training thread runs, every Qt call that releases the GIL (QPainter's, most of them)
    has to win the GIL back from it: a plot repaint that takes 2 ms alone took 15-60 ms with a busy head-
    mode run beside it. Installed on a top-level window, the gate closes when the window is about to
    paint (its UpdateRequest) and opens again once the event loop is past that paint; the worker waits at
    the gate (at most ``MAX_WAIT_S``) before each event, so it steps aside for the paint. A run loses a
    few milliseconds per repaint, ten repaints a second at most.
    """

    MAX_WAIT_S = 0.1

    def __init__(self, parent=None):
        super().__init__(parent)
        self._open = threading.Event()
        self._open.set()
        self.enabled = os.environ.get("WORKBENCH_PAINT_GATE", "1") != "0"

    def eventFilter(self, obj, event):  # noqa: N802
        if self.enabled and event.type() == QEvent.Type.UpdateRequest:
            self._open.clear()
            QTimer.singleShot(0, self._open.set)  # runs after this paint, in the next loop iteration
        return False

    def close_for_paint(self) -> None:
        """GUI thread, before changes that will repaint: close now; the paint (or 50 ms) opens again."""
        if not self.enabled:
            return
        self._open.clear()
        QTimer.singleShot(50, self._open.set)  # in case nothing paints after all

    def wait(self) -> None:
        """Called by a worker thread between steps."""
        if not self._open.is_set():
            self._open.wait(self.MAX_WAIT_S)

    def open(self) -> None:
        self._open.set()


#: the application's gate; ``MainWindow`` (or any window) installs it with ``window.installEventFilter``
paint_gate: PaintGate | None = None


def install_paint_gate(window) -> PaintGate:
    global paint_gate
    if paint_gate is None:
        paint_gate = PaintGate(QCoreApplication.instance())
    window.installEventFilter(paint_gate)
    return paint_gate


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

    def __init__(self, project_path: str | Path, config: TrainConfig, resume_run: int | None = None,
                 yield_every_event: bool = True):
        super().__init__()
        self.project_path = Path(project_path)
        self.config = config
        self.resume_run = resume_run
        #: release the GIL after each event so that the GUI thread gets it at once (time.sleep(0))
        self.yield_every_event = yield_every_event
        #: niceness of the training thread (Linux): the GUI thread wins the CPU when both want it
        self.nice = int(os.environ.get("WORKBENCH_TRAIN_NICE", "0"))
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
            offline_environment()
            lower_thread_priority(self.nice)
            from workbench.training.trainer import Trainer

            trainer = Trainer(self.project_path, self.config, resume_run=self.resume_run)
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
                if self.yield_every_event:
                    time.sleep(0)  # let a waiting GUI thread take the GIL now, not at the switch interval
                gate = paint_gate
                if gate is not None:
                    gate.wait()  # a window is painting: step aside until it is done
        except Exception as exc:  # noqa: BLE001 - every error ends the run with a message, never a crash
            if not ended:
                run_id = getattr(self.trainer, "run_id", None) or self.run_id
                if _is_oom(exc):
                    first = (str(exc).splitlines() or [""])[0]
                    ev = Failed(run_id, f"out of memory: {first}".rstrip(": "), OOM_HINT)
                else:
                    ev = Failed(run_id, f"training stopped with an unexpected error: {type(exc).__name__}: {exc}",
                                "start a new run; if it happens again, report it with the project's run list")
                ended = True
                if events is not None:
                    events.close()  # the trainer's own clean-up first (it may mark the run cancelled)
                    events = None
                self._mark_failed(ev)
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


    def _mark_failed(self, ev: Failed) -> None:
        """Record the failure on the run, whatever state the trainer left it in (own connection, this thread)."""
        if ev.run_id is None:
            return
        try:
            from workbench.core.store import Project

            with Project.open(self.project_path) as project:
                project.update_run(ev.run_id, status="failed", message=ev.message)
        except Exception:  # noqa: BLE001 - the dialog still tells the user
            pass


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
