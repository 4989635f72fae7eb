"""Training in a child process: the trainer's events, pickled over a pipe.

``TrainerProcess`` has the :class:`~workbench.training.trainer.Trainer` interface (``events()``,
``pause``, ``resume``, ``cancel``, ``run_id``) but runs the trainer in a spawned process. The GUI uses it
for two reasons:

- a training thread shares the GIL with the GUI thread: every stretch of Python or GIL-holding C in the
  trainer (model loading, tokenising, the head's many small steps, writing scores) delays the GUI's event
  loop. Measured with ``benchmarks/bench_gui_responsiveness.py`` during a 10,000-pair head-mode run: p99
  tick gap 24-26 ms, max 87-90 ms with the trainer in a thread; 10 ms and 39 ms in a process (with the GUI's
  own fixes in ``ui/app.py`` and ``ui/plots.py``; the README has the table);
- a crash, or the kernel killing the trainer for memory, ends the child, not the app: the run is marked
  failed (resumable from its last checkpoint) and the window says what happened.

One child serves one run at a time and then waits for the next, so torch and transformers are imported
once (``prestart`` at start-up makes one in the background). Between runs it gives the last run's memory
back (an idle child after a MiniLM fine-tune: 887 MB resident before, 508 MB with ``_release_memory``). Controls go to the child on one pipe, events
come back on another; the events are plain dataclasses, as in a thread.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from workbench.training.config import TrainConfig
from workbench.training.events import Event, Failed, Finished, RunStarted

_log = logging.getLogger(__name__)

OOM_HINT = "lower batch_size or max_length, or use head mode or LoRA, then start a new run"
#: a cancelled run checkpoints at the next step boundary; a child that takes longer is killed
CANCEL_TIMEOUT_S = 120.0
_DONE = "done"  # the child's last message of a run
_READY = "ready"  # the child's first message: torch and the trainer are imported


def failure_event(exc: BaseException, run_id: int | None) -> Failed:
    """The ``Failed`` event for an error the trainer let through: a hint for running out of memory,
    the type and message otherwise."""
    if is_out_of_memory(exc):
        first = (str(exc).splitlines() or [""])[0]
        return Failed(run_id, f"out of memory: {first}".rstrip(": "), OOM_HINT)
    return Failed(run_id, f"training stopped with an unexpected error: {type(exc).__name__}: {exc}",
                  "start a new run; if it happens again, report it with the project's run list")


def is_out_of_memory(exc: BaseException) -> bool:
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def mark_failed(project_path: str | Path, ev: Failed) -> None:
    """Record a failure on its run, whatever state the trainer left it in (a new connection)."""
    if ev.run_id is None:
        return
    try:
        from workbench.core.store import Project

        with Project.open(project_path) as project:
            project.update_run(ev.run_id, status="failed", message=ev.message)
    except Exception:  # noqa: BLE001 - the caller still reports the failure
        _log.warning("could not mark run %s failed", ev.run_id, exc_info=True)


def exit_description(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (the system may have run out of memory)" if -exitcode == signal.SIGKILL else ""
        return f"it was killed by {name}{hint}"
    return f"it exited with code {exitcode}"


# ------------------------------------------------------------------------------ the child
class _ChildRun:
    """One run in the child: its arguments, its trainer once built, and controls that came before it."""

    def __init__(self, project_path: str, config: TrainConfig, resume_run: int | None, controls: list[str]):
        self.project_path, self.config, self.resume_run = project_path, config, resume_run
        self.controls = list(controls)
        self.trainer = None
        self.over = False


def _child_main(jobs, events) -> None:
    """The child's entry: Ctrl+C in a terminal reaches the whole process group, but the parent stops this
    process (a run first checkpoints), so SIGINT is ignored; a parent gone away (a closed pipe) ends it
    without a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _serve(jobs, events)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass


def _serve(jobs, events) -> None:
    """The child's main loop: one run per "run" message, until "exit" or the parent goes away.

    A thread reads the pipe, so that controls reach the trainer while this thread trains. A control
    belongs to the last run announced before it (the pipe keeps the order); one that comes after its run
    ended is dropped, never applied to the next run."""
    from workbench.training import offline_environment

    offline_environment()
    from transformers.utils import logging as hf_logging

    from workbench.training import trainer as trainer_module

    hf_logging.disable_progress_bar()  # "Loading weights" bars on the app's terminal: the window shows progress

    trainer_module.warm_up_torch()
    events.send(_READY)
    lock = threading.Condition()
    queue: list[_ChildRun | None] = []  # None: exit
    latest: list[_ChildRun | None] = [None]

    def read_controls() -> None:
        while True:
            try:
                msg = jobs.recv()
            except (EOFError, OSError):
                msg = ("exit",)
            with lock:
                run = latest[0]
                if msg[0] == "run":
                    latest[0] = _ChildRun(*msg[1:])
                    queue.append(latest[0])
                    lock.notify()
                elif msg[0] == "exit":
                    if run is not None and run.trainer is not None:
                        run.trainer.cancel()
                    queue.append(None)
                    lock.notify()
                    return
                elif run is not None and not run.over:
                    if run.trainer is None:
                        run.controls.append(msg[0])
                    else:
                        getattr(run.trainer, msg[0])()

    threading.Thread(target=read_controls, name="workbench-train-controls", daemon=True).start()
    while True:
        with lock:
            while not queue:
                lock.wait()
            run = queue.pop(0)
        if run is None:
            return
        trainer = trainer_module.Trainer(run.project_path, run.config, resume_run=run.resume_run)
        with lock:
            run.trainer = trainer
            for name in run.controls:
                getattr(trainer, name)()
        try:
            _run_one(trainer, events)
        finally:
            with lock:
                run.over, run.trainer = True, None
        del trainer
        _release_memory()  # the child waits for the next run without the last one's model and optimizer
        events.send(_DONE)


def _release_memory() -> None:
    """Free what the finished run left (reference cycles included) and hand glibc's free pages back."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): the allocator keeps them
        pass


def _run_one(trainer, events) -> None:
    stream = trainer.events()
    ended = False
    try:
        for ev in stream:
            ended = isinstance(ev, (Finished, Failed))
            events.send(ev)
    except (BrokenPipeError, ConnectionResetError):
        stream.close()  # the parent is gone: keep the run resumable, then end this process
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - every error ends the run with a message
        if not ended:
            stream.close()  # the trainer's own clean-up first
            ev = failure_event(exc, trainer.run_id)
            mark_failed(trainer.project_path, ev)
            events.send(ev)
    finally:
        stream.close()


# ------------------------------------------------------------------------------ the parent
class _Child:
    """A spawned training process and its two pipes."""

    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.jobs, child_jobs = ctx.Pipe(duplex=False)[::-1]  # (send end here, receive end there)
        child_events, self.events = ctx.Pipe(duplex=False)[::-1]
        self.process = ctx.Process(target=_child_main, args=(child_jobs, child_events),
                                   name="workbench-trainer", daemon=True)
        # Born ignoring SIGINT (the disposition survives exec; Python keeps it), so that a Ctrl+C while
        # the child's interpreter starts cannot kill it with a traceback before _child_main ignores it.
        main = threading.current_thread() is threading.main_thread()  # signal.signal works there only
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self.process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        _register_shutdown()
        child_jobs.close()  # so that a dead child shows as EOF here
        child_events.close()
        self._send_lock = threading.Lock()
        self.ready = False

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the child has imported the trainer (its first message); False on timeout or death."""
        if not self.ready:
            try:
                if self.events.poll(timeout):
                    self.ready = self.events.recv() == _READY
            except (EOFError, OSError):
                return False
        return self.ready

    def send(self, *msg) -> bool:
        with self._send_lock:
            try:
                self.jobs.send(msg)
                return True
            except (OSError, ValueError):
                return False

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self.send("exit")
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        for conn in (self.jobs, self.events):
            conn.close()


_standby_lock = threading.Lock()
_standby: _Child | None = None
_shutdown_registered = False


def _register_shutdown() -> None:
    global _shutdown_registered
    if not _shutdown_registered:
        _shutdown_registered = True
        atexit.register(shutdown)


def prestart() -> None:
    """Start a child now (it imports torch and transformers in the background) for the next run."""
    global _standby
    with _standby_lock:
        if _standby is None or not _standby.alive():
            _standby = _Child()


def wait_ready(timeout: float | None = None) -> bool:
    """Wait for the child ``prestart`` started to be ready to train (benchmarks: exclude its imports)."""
    with _standby_lock:
        child = _standby
    return child is not None and child.wait_ready(timeout)


def _take() -> _Child:
    global _standby
    with _standby_lock:
        child, _standby = _standby, None
    if child is None or not child.alive():
        child = _Child()
    return child


def _give_back(child: _Child) -> None:
    global _standby
    with _standby_lock:
        if _standby is None and child.alive():
            _standby, child = child, None
    if child is not None:
        child.stop()


def shutdown() -> None:
    """Stop the standby child; at interpreter exit too (registered with the first child, so that it runs
    before multiprocessing's own exit handler, which would SIGTERM the child without its clean-up)."""
    global _standby
    with _standby_lock:
        child, _standby = _standby, None
    if child is not None:
        child.stop()


class TrainerProcess:
    """A :class:`Trainer` whose run happens in a child process. Controls are thread-safe."""

    def __init__(self, project_path: str | Path, config: TrainConfig, resume_run: int | None = None):
        self.project_path = Path(project_path)
        self.config = config
        self.resume_run = resume_run
        self.run_id: int | None = resume_run
        self._child: _Child | None = None
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._started = False
        #: the child's pid while a run is on (tests and diagnostics)
        self.pid: int | None = None

    def pause(self) -> None:
        self._control("pause")

    def resume(self) -> None:
        self._control("resume")

    def cancel(self) -> None:
        self._control("cancel")

    def _control(self, name: str) -> None:
        with self._lock:
            if self._child is None:
                self._pending.append(name)
            else:
                self._child.send(name)

    def events(self) -> Iterator[Event]:
        """The run's events as the trainer yields them in the child; ``Failed`` when the child dies."""
        if self._started:
            raise RuntimeError("TrainerProcess.events() runs once; make a new one for another run")
        self._started = True
        child = _take()
        with self._lock:  # controls given before the child was there go with the run, in order
            child.send("run", str(self.project_path), self.config, self.resume_run, list(self._pending))
            self._pending.clear()
            self._child, self.pid = child, child.process.pid
        over = False
        try:
            while True:
                try:
                    if not child.wait_ready():
                        raise EOFError
                    ev = child.events.recv()
                except (EOFError, OSError):
                    child.process.join(5)
                    yield self._died(child)
                    over = True
                    return
                if ev == _DONE:
                    over = True
                    break
                if isinstance(ev, RunStarted):
                    self.run_id = ev.run_id
                yield ev
        finally:
            with self._lock:
                self._child = None
            if over:
                _give_back(child)
            else:  # the consumer stopped mid-run (e.g. the window closed): checkpoint, then let the child go
                self._cancel_and_drain(child)

    def _died(self, child: _Child) -> Failed:
        ev = Failed(self.run_id, f"the training process ended unexpectedly: {exit_description(child.process.exitcode)}",
                    "resume the run from its last checkpoint if it saved one (Train view, past runs), or start a "
                    "new one with a smaller batch_size or max_length")
        mark_failed(self.project_path, ev)
        child.stop()
        return ev

    def _cancel_and_drain(self, child: _Child) -> None:
        child.send("cancel")
        try:
            while child.events.poll(CANCEL_TIMEOUT_S):
                if child.events.recv() == _DONE:
                    _give_back(child)
                    return
        except (EOFError, OSError):
            pass
        child.stop()
