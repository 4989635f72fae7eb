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

This module is the parent's side (the client): ``TrainerProcess``, ``run_job``, the thread that routes
the child's replies. It imports nothing that uses torch, not even inside a function, since the GUI imports
it (``lint-imports`` checks that). The child's side is ``server.py``, reached only by its module name.

The child is the one place where torch runs for the GUI: a small job server. Jobs are dicts
``{"kind": ..., "id": ..., **payload}``; "train" is a training run (its events come back tagged with its
id), the other kinds are short jobs in ``JOB_KINDS`` (``run_job("score", ...)``; attribution, what-if
scoring or evaluation add a kind, not a process or a pipe). Runs go one at a time, in order; a short job
runs only while no run is training (between runs, or while the run is paused) and otherwise waits until
the run pauses or ends. torch and transformers are imported once (``prestart`` at start-up makes the child
in the background). Between runs it gives the last run's memory back (an idle child after a MiniLM
fine-tune: 887 MB resident before, 508 MB with ``server._release_memory``).
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

from workbench.training.config import TrainConfig
from workbench.training.events import Event, Failed
from workbench.training.run_control import (  # noqa: F401 - failure_event and OOM_HINT: this module's API too
    OOM_HINT,
    RunControl,
    failure_event,
    mark_failed,
)

_log = logging.getLogger(__name__)

#: a cancelled run checkpoints at the next step boundary; a child that takes longer is killed
CANCEL_TIMEOUT_S = 120.0
DONE = "done"  # the child's last message of a run
READY = "ready"  # the child's first message: torch and the trainer are imported


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


#: the child's side, imported in the child only (see ``_child_entry``)
SERVER_MODULE = "workbench.training.server"


def _child_entry(jobs: Connection, events: Connection) -> None:
    """The spawn target: runs in the child and hands over to ``server._child_main``.

    The server module is imported by name, as a string, which import-linter does not follow; that is honest
    here, since this function runs in another process (the training process, where torch belongs), never in
    the GUI's. The parent keeps this module, and so itself, free of torch."""
    importlib.import_module(SERVER_MODULE)._child_main(jobs, events)


# ------------------------------------------------------------------------------ the parent
class JobError(RuntimeError):
    """A short job failed in the training process (or the process ended); the message says why."""


_GONE = object()  # put in every open job's queue when the child has ended


class _Child:
    """A spawned training process, its two pipes, and a thread that routes its replies to the open jobs."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.jobs, child_jobs = ctx.Pipe(duplex=False)[::-1]  # (send end here, receive end there)
        child_events, self.events = ctx.Pipe(duplex=False)[::-1]
        self.process = ctx.Process(
            target=_child_entry, args=(child_jobs, child_events), name="workbench-trainer", daemon=True
        )
        # Born ignoring SIGINT (the disposition survives exec; Python keeps it), so that a Ctrl+C while
        # the child's interpreter starts cannot kill it with a traceback before server._child_main ignores it.
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
        self._lock = threading.Lock()
        self._queues: dict[int, queue.Queue] = {}
        self._ids = itertools.count(1)
        self._ready = threading.Event()
        self._gone = False
        threading.Thread(target=self._route, name="workbench-train-replies", daemon=True).start()

    def _route(self) -> None:
        try:
            if self.events.recv() == READY:
                self._ready.set()
            while True:
                job_id, payload = self.events.recv()
                with self._lock:
                    q = self._queues.get(job_id)
                if q is not None:
                    q.put(payload)
        except (EOFError, OSError, ValueError, TypeError):
            pass
        with self._lock:
            self._gone = True
            for q in self._queues.values():
                q.put(_GONE)
        self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the child has imported the trainer (its first message); False on timeout or death."""
        return self._ready.wait(timeout) and not self._gone

    def open_job(self, kind: str, **payload: object) -> tuple[int, queue.Queue]:
        """Send a job; its replies arrive in the returned queue (``_GONE`` if the child ends)."""
        q: queue.Queue = queue.Queue()
        with self._lock:
            job_id = next(self._ids)
            self._queues[job_id] = q
            if self._gone:
                q.put(_GONE)
        if not self.send({"kind": kind, "id": job_id, **payload}):
            q.put(_GONE)
        return job_id, q

    def close_job(self, job_id: int) -> None:
        with self._lock:
            self._queues.pop(job_id, None)

    def send(self, msg: dict) -> bool:
        with self._send_lock:
            try:
                self.jobs.send(msg)
                return True
            except (OSError, ValueError):
                return False

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self.send({"kind": "exit"})
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout)
        for conn in (self.jobs, self.events):
            conn.close()


_shared_lock = threading.Lock()
_shared: _Child | None = None
_shutdown_registered = False


def _register_shutdown() -> None:
    global _shutdown_registered
    if not _shutdown_registered:
        _shutdown_registered = True
        atexit.register(shutdown)


def _the_child() -> _Child:
    """The one training process, started now if there is none (or the last one died)."""
    global _shared
    with _shared_lock:
        if _shared is None or not _shared.alive():
            if _shared is not None:
                _shared.stop()
            _shared = _Child()
        return _shared


def prestart() -> None:
    """Start the child now (it imports torch and transformers in the background) for the first job."""
    _the_child()


def wait_ready(timeout: float | None = None) -> bool:
    """Wait for the child ``prestart`` started to be ready to train (benchmarks: exclude its imports)."""
    with _shared_lock:
        child = _shared
    return child is not None and child.wait_ready(timeout)


def shutdown() -> None:
    """Stop the child; at interpreter exit too (registered with the first child, so that it runs before
    multiprocessing's own exit handler, which would SIGTERM the child without its clean-up)."""
    global _shared
    with _shared_lock:
        child, _shared = _shared, None
    if child is not None:
        child.stop()


def run_job(kind: str, timeout: float | None = None, **payload: object) -> object:
    """Run short job ``kind`` (see ``server.JOB_KINDS``) in the training process and return its result.

    It runs when no run is training (see ``server._serve``), so during a run it waits until the run pauses or
    ends. Raises JobError with the child's message, or when the child ends or ``timeout`` passes."""
    child = _the_child()
    job_id, q = child.open_job(kind, **payload)
    try:
        reply = q.get(timeout=timeout)
    except queue.Empty:
        raise JobError(f"the {kind} job did not finish within {timeout:g} s") from None
    finally:
        child.close_job(job_id)
    if reply is _GONE:
        raise JobError(f"the training process ended during the {kind} job: {exit_description(child.process.exitcode)}")
    status, value = reply
    if status == "error":
        raise JobError(value)
    return value


class TrainerProcess:
    """A :class:`Trainer` whose run happens in the training process (a "train" job). Controls are
    thread-safe and go through its :class:`RunControl`."""

    def __init__(
        self,
        project_path: str | Path,
        config: TrainConfig,
        resume_run: int | None = None,
        *,
        control: RunControl | None = None,
    ):
        self.project_path = Path(project_path)
        self.config = config
        self.resume_run = resume_run
        self.control = control if control is not None else RunControl(resume_run)
        if resume_run is not None:
            self.control.run_id = resume_run
        self.control.listen(self._forward)
        self._child: _Child | None = None
        self._job: int | None = None
        self._lock = threading.Lock()
        self._started = False
        #: the child's pid while a run is on (tests and diagnostics)
        self.pid: int | None = None

    @property
    def run_id(self) -> int | None:
        return self.control.run_id

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def cancel(self) -> None:
        self.control.cancel()

    def _forward(self, name: str) -> None:
        with self._lock:  # before the job is sent, its message carries control.requests() instead
            if self._child is not None:
                self._child.send({"kind": "control", "id": self._job, "name": name})

    def events(self) -> Iterator[Event]:
        """The run's events as the trainer yields them in the child; ``Failed`` when the child dies."""
        if self._started:
            raise RuntimeError("TrainerProcess.events() runs once; make a new one for another run")
        self._started = True
        child = _the_child()
        with self._lock:  # controls given before the child had the run go with the run
            self._job, q = child.open_job(
                "train",
                project=str(self.project_path),
                config=self.config,
                resume_run=self.resume_run,
                controls=self.control.requests(),
            )
            self._child, self.pid = child, child.process.pid
        over = False
        try:
            while True:
                ev = q.get()
                if ev is _GONE:
                    child.process.join(5)
                    over = True
                    yield self._died(child)
                    return
                if ev == DONE:
                    over = True
                    return
                if getattr(ev, "run_id", None) is not None:
                    self.control.run_id = ev.run_id
                yield ev
        finally:
            with self._lock:
                self._child = None
            if not over:  # the consumer stopped mid-run (e.g. the window closed): checkpoint, then go
                child.send({"kind": "control", "id": self._job, "name": "cancel"})
                self._drain(child, q)
            child.close_job(self._job)

    def _died(self, child: _Child) -> Failed:
        ev = Failed(
            self.run_id,
            f"the training process ended unexpectedly: {exit_description(child.process.exitcode)}",
            "resume the run from its last checkpoint if it saved one (Train view, past runs), or start a "
            "new one with a smaller batch_size or max_length",
        )
        mark_failed(self.project_path, ev)
        child.stop()
        return ev

    @staticmethod
    def _drain(child: _Child, q: queue.Queue) -> None:
        """Wait for the cancelled run's end; a child that takes longer than CANCEL_TIMEOUT_S is stopped."""
        try:
            while True:
                ev = q.get(timeout=CANCEL_TIMEOUT_S)
                if ev is _GONE or ev == DONE:
                    return
        except queue.Empty:
            child.stop()
