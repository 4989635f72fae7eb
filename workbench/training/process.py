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

The child is the one place where torch runs for the GUI: a small job server. Jobs are dicts
``{"kind": ..., "id": ..., **payload}``; "train" is a training run (its events come back tagged with its
id), the other kinds are short jobs in ``JOB_KINDS`` (``run_job("score", ...)``; attribution, what-if
scoring or evaluation add a kind, not a process or a pipe). Runs go one at a time, in order; a short job
runs only while no run is training (between runs, or while the run is paused) and otherwise waits until
the run pauses or ends. torch and transformers are imported once (``prestart`` at start-up makes the child
in the background). Between runs it gives the last run's memory back (an idle child after a MiniLM
fine-tune: 887 MB resident before, 508 MB with ``_release_memory``).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from workbench.training.config import TrainConfig
from workbench.training.events import Event, Failed, Paused
from workbench.training.run_control import (  # noqa: F401 - failure_event and OOM_HINT: this module's API too
    OOM_HINT,
    RunControl,
    failure_event,
    mark_failed,
    run_to_events,
)

_log = logging.getLogger(__name__)

#: a cancelled run checkpoints at the next step boundary; a child that takes longer is killed
CANCEL_TIMEOUT_S = 120.0
_DONE = "done"  # the child's last message of a run
_READY = "ready"  # the child's first message: torch and the trainer are imported


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
def score_job(payload: dict) -> list[float]:
    """Short job "score": one reward per (prompt, response) in ``payload["texts"]``, with the model of
    ``payload["model"]`` (an exported folder) or of run ``payload["run"]`` of ``payload["project"]``
    (its latest checkpoint). Reuses ``scoring.Scorer``, so the scores are those ``workbench score`` gives."""
    from workbench.training.scoring import Scorer

    texts = payload["texts"]
    if payload.get("model"):
        scorer = Scorer.load(payload["model"])
    else:
        from workbench.training.export import load_run_model
        from workbench.training.model import PairEncoder, to_sequence_classifier

        model, tokenizer, config, _ = load_run_model(payload["project"], int(payload["run"]))
        scorer = Scorer(to_sequence_classifier(model), tokenizer, PairEncoder.for_model(model, tokenizer,
                        config.max_length), "cpu", Path(payload["project"]), {})
    return scorer.score([t[0] for t in texts], [t[1] for t in texts]).tolist()


#: the short jobs the child runs, by kind: ``function(payload) -> picklable result``. A new kind
#: (attribution, what-if scoring, evaluation) is one function here; "train" is the long job.
JOB_KINDS = {"score": score_job}


class _ChildRun:
    """One training job in the child: its message and its controls (which buffer requests made before
    the trainer exists)."""

    def __init__(self, msg: dict):
        self.id, self.msg = msg["id"], msg
        self.control = RunControl(msg.get("resume_run"))
        for name in msg.get("controls", ()):
            self.control.apply(name)
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
    """The child's main loop, a small job server: training runs one at a time, in order, in this thread;
    short jobs (``JOB_KINDS``) one at a time in a second thread; until "exit" or the parent goes away.

    Messages are dicts ``{"kind": ..., "id": ..., **payload}``; replies are ``(id, event or result)``.
    A control (``{"kind": "control", "id": run's id, "name": "pause"}``) goes to the run with that id while
    it is on, and is dropped after it ended: it never touches the next run.

    The rule for short jobs: one runs only while no run is training, that is between runs or while the
    run is paused (from its ``Paused`` event); one that arrives during training waits until the run pauses
    or ends. A resume or cancel that arrives while a short job runs takes effect when it is done."""
    from workbench.training import offline_environment

    offline_environment()
    from transformers.utils import logging as hf_logging

    from workbench.training import trainer as trainer_module

    hf_logging.disable_progress_bar()  # "Loading weights" bars on the app's terminal: the window shows progress

    trainer_module.warm_up_torch()
    events.send(_READY)
    send_lock = threading.Lock()
    lock = threading.Condition()
    runs: list[_ChildRun | None] = []  # None: exit
    shorts: list[dict | None] = []
    live: dict[int, _ChildRun] = {}  # the runs announced and not over, by id
    idle = threading.Event()  # no run is training: short jobs may run
    idle.set()
    busy = threading.Lock()  # held while a short job runs

    def send(job_id, payload) -> None:
        with send_lock:
            events.send((job_id, payload))

    def read_jobs() -> None:
        while True:
            try:
                msg = jobs.recv()
            except (EOFError, OSError):
                msg = {"kind": "exit"}
            kind = msg["kind"]
            if kind == "train":
                with lock:
                    run = live[msg["id"]] = _ChildRun(msg)
                    runs.append(run)
                    lock.notify_all()
            elif kind == "control":
                with lock:
                    run = live.get(msg["id"])
                if run is not None:
                    with busy:  # a resume or cancel waits for the short job in progress
                        if msg["name"] != "pause":
                            idle.clear()
                        run.control.apply(msg["name"])
            elif kind == "exit":
                with lock:
                    for run in live.values():
                        run.control.cancel()
                    runs.append(None)
                    shorts.append(None)
                    lock.notify_all()
                return
            else:
                with lock:
                    shorts.append(msg)
                    lock.notify_all()

    def run_short_jobs() -> None:
        while True:
            with lock:
                while not shorts:
                    lock.wait()
                msg = shorts.pop(0)
            if msg is None:
                return
            while True:
                idle.wait()
                with busy:
                    if not idle.is_set():
                        continue  # a run resumed meanwhile
                    send(msg["id"], _short_job(msg))
                    break

    threading.Thread(target=read_jobs, name="workbench-train-controls", daemon=True).start()
    threading.Thread(target=run_short_jobs, name="workbench-short-jobs", daemon=True).start()
    while True:
        with lock:
            while not runs:
                lock.wait()
            run = runs.pop(0)
        if run is None:
            return
        idle.clear()
        try:
            for ev in run_to_events(trainer_module.Trainer, run.msg["project"], run.msg["config"],
                                    run.msg.get("resume_run"), control=run.control):
                if isinstance(ev, Paused):
                    idle.set()
                send(run.id, ev)
        except (BrokenPipeError, ConnectionResetError):
            raise SystemExit(1) from None  # the parent is gone (run_to_events kept the run resumable)
        finally:
            with lock:
                run.over = True
                live.pop(run.id, None)
        _release_memory()  # the child waits for the next run without the last one's model and optimizer
        idle.set()
        send(run.id, _DONE)


def _short_job(msg: dict) -> tuple[str, object]:
    """("result", value) or ("error", message) of one short job; an error ends the job, never the child."""
    function = JOB_KINDS.get(msg["kind"])
    if function is None:
        return "error", f"unknown job kind {msg['kind']!r}; known: {', '.join(sorted(JOB_KINDS))}"
    try:
        return "result", function(msg)
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        return "error", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)


def _release_memory() -> None:
    """Free what the finished run left (reference cycles included) and hand glibc's free pages back."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): the allocator keeps them
        pass



# ------------------------------------------------------------------------------ the parent
class JobError(RuntimeError):
    """A short job failed in the training process (or the process ended); the message says why."""


_GONE = object()  # put in every open job's queue when the child has ended


class _Child:
    """A spawned training process, its two pipes, and a thread that routes its replies to the open jobs."""

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
        self._lock = threading.Lock()
        self._queues: dict[int, queue.Queue] = {}
        self._ids = itertools.count(1)
        self._ready = threading.Event()
        self._gone = False
        threading.Thread(target=self._route, name="workbench-train-replies", daemon=True).start()

    def _route(self) -> None:
        try:
            if self.events.recv() == _READY:
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

    def open_job(self, kind: str, **payload) -> tuple[int, queue.Queue]:
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


def run_job(kind: str, timeout: float | None = None, **payload) -> object:
    """Run short job ``kind`` (see ``JOB_KINDS``) in the training process and return its result.

    It runs when no run is training (see ``_serve``), so during a run it waits until the run pauses or
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
        raise JobError(f"the training process ended during the {kind} job: "
                       f"{exit_description(child.process.exitcode)}")
    status, value = reply
    if status == "error":
        raise JobError(value)
    return value


class TrainerProcess:
    """A :class:`Trainer` whose run happens in the training process (a "train" job). Controls are
    thread-safe and go through its :class:`RunControl`."""

    def __init__(self, project_path: str | Path, config: TrainConfig, resume_run: int | None = None, *,
                 control: RunControl | None = None):
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
            self._job, q = child.open_job("train", project=str(self.project_path), config=self.config,
                                          resume_run=self.resume_run, controls=self.control.requests())
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
                if ev == _DONE:
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
        ev = Failed(self.run_id, f"the training process ended unexpectedly: {exit_description(child.process.exitcode)}",
                    "resume the run from its last checkpoint if it saved one (Train view, past runs), or start a "
                    "new one with a smaller batch_size or max_length")
        mark_failed(self.project_path, ev)
        child.stop()
        return ev

    @staticmethod
    def _drain(child: _Child, q: queue.Queue) -> None:
        """Wait for the cancelled run's end; a child that takes longer than CANCEL_TIMEOUT_S is stopped."""
        try:
            while True:
                ev = q.get(timeout=CANCEL_TIMEOUT_S)
                if ev is _GONE or ev == _DONE:
                    return
        except queue.Empty:
            child.stop()
