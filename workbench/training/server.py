"""The training process's side of ``process.py``: a small job server in a spawned child, the one place
where torch runs for the GUI.

It owns what runs in the child: ``_child_main`` (its entry, named by ``process`` as a module path only),
the serving loop ``_serve`` (training runs one at a time; short jobs in ``JOB_KINDS`` while no run trains),
and the short jobs themselves (``score_job``, ``attribute_job``, ``what_if_job``, with their model cache;
``evaluate_job``, ``score_unlabelled_job``). The parent side (``TrainerProcess``, ``run_job``) lives in
``process.py``, which the GUI imports and which must never import this module: torch and transformers are
imported here, inside ``_serve``, in the child only.
"""

from __future__ import annotations

import signal
import threading
from collections import OrderedDict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from workbench.training.events import Paused
from workbench.training.process import DONE, READY
from workbench.training.run_control import RunControl, run_to_events


def _load_scorer(payload: dict) -> Any:
    """The ``scoring.Scorer`` of ``payload["model"]`` (an exported folder) or of run ``payload["run"]`` of
    ``payload["project"]`` (its latest checkpoint)."""
    from workbench.training.scoring import Scorer

    if payload.get("model"):
        return Scorer.load(payload["model"])
    from workbench.training.export import load_run_model
    from workbench.training.model import PairEncoder, to_sequence_classifier

    model, tokenizer, config, _ = load_run_model(payload["project"], int(payload["run"]))
    return Scorer(
        to_sequence_classifier(model),
        tokenizer,
        PairEncoder.for_model(model, tokenizer, config.max_length),
        "cpu",
        Path(payload["project"]),
        {},
    )


def score_job(payload: dict) -> list[float]:
    """Short job "score": one reward per (prompt, response) in ``payload["texts"]``, with the model of
    ``payload["model"]`` (an exported folder) or of run ``payload["run"]`` of ``payload["project"]``
    (its latest checkpoint). Reuses ``scoring.Scorer``, so the scores are those ``workbench score`` gives."""
    texts = payload["texts"]
    scorer = _load_scorer(payload)
    return scorer.score([t[0] for t in texts], [t[1] for t in texts]).tolist()


class _ModelCache:
    """The last ``size`` models that attribution and what-if jobs used, by (model folder) or (project,
    run, checkpoint): a what-if edit re-scores with the loaded model (milliseconds) instead of loading it
    again (seconds). A run that saved a newer checkpoint is a new key. Only the short-job thread uses it."""

    def __init__(self, size: int = 2):
        self.size = size
        self._items: OrderedDict[tuple, Any] = OrderedDict()

    @staticmethod
    def key(payload: dict) -> tuple:
        if payload.get("model"):
            folder = Path(payload["model"]).expanduser().resolve()
            weights = sorted(folder.glob("*.safetensors"))
            return ("model", str(folder), tuple(w.stat().st_mtime_ns for w in weights))
        project = Path(payload["project"]).expanduser().resolve()
        latest = project.with_name(project.name + ".checkpoints") / f"run-{int(payload['run'])}" / "latest.json"
        stamp = latest.stat().st_mtime_ns if latest.is_file() else None
        return ("run", str(project), int(payload["run"]), stamp)

    def attributor(self, payload: dict) -> Any:
        from workbench.training.attribution import Attributor

        key = self.key(payload)
        found = self._items.pop(key, None)
        if found is None:
            found = Attributor(_load_scorer(payload))
        self._items[key] = found
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return found

    def clear(self) -> None:
        self._items.clear()


_MODELS = _ModelCache()


def attribute_job(payload: dict) -> dict:
    """Short job "attribute": for ``payload["prompt"]``, ``["chosen"]`` and ``["rejected"]``, the rewards,
    the margin (chosen - rejected) and both responses' token and sentence attributions
    (``attribution.Attributor.pair``; ``payload["method"]`` picks one of ``attribution.METHODS``). The model
    is that of ``"model"`` or ``"project"`` + ``"run"``, as for "score", and stays loaded for the next job."""
    from workbench.training.attribution import DEFAULT_METHOD

    attributor = _MODELS.attributor(payload)
    return attributor.pair(
        payload["prompt"], payload["chosen"], payload["rejected"], payload.get("method") or DEFAULT_METHOD
    )


def what_if_job(payload: dict) -> dict:
    """Short job "what_if": the rewards and margin of edited texts (as "attribute"), with the attributions
    only when ``payload["attribute"]`` is true; nothing is stored."""
    from workbench.training.attribution import DEFAULT_METHOD

    method = (payload.get("method") or DEFAULT_METHOD) if payload.get("attribute") else None
    return _MODELS.attributor(payload).pair(payload["prompt"], payload["chosen"], payload["rejected"], method)


def evaluate_job(payload: dict) -> dict:
    """Short job "evaluate" (issue 13): ``eval_run.evaluate`` of ``payload["project"]`` with ``"run"`` (None:
    the latest finished run), ``"against"``, ``"input"`` or ``"model"``, as ``workbench eval`` does; with
    ``"report"`` (a folder) also its report. Returns {"result": the JSON-able figures, "report": path or None}."""
    from workbench.training.eval_run import evaluate

    result, _ = evaluate(
        project=payload.get("project"),
        run=payload.get("run"),
        model=payload.get("model"),
        input=payload.get("input"),
        against=payload.get("against"),
    )
    report = None
    if payload.get("report"):
        from workbench.training.report import write_report

        report = str(write_report(result, payload["report"]))
    return {"result": result, "report": report}


def score_unlabelled_job(payload: dict) -> dict:
    """Short job "score_unlabelled" (issue 16): ``evaluate.score_missing`` of ``payload["project"]`` and
    finished run ``payload["run"]``: the comparisons it has no score for, scored with its final model and
    stored for the model queues and the score hint. Returns {"run": run id, "scored": how many were written}."""
    from workbench.training.evaluate import score_missing

    run_id = int(payload["run"])
    return {"run": run_id, "scored": score_missing(payload["project"], run_id) or 0}


#: the short jobs the child runs, by kind: ``function(payload) -> picklable result``. A new kind
#: (evaluation, ...) is one function here; "train" is the long job.
JOB_KINDS = {
    "score": score_job,
    "attribute": attribute_job,
    "what_if": what_if_job,
    "evaluate": evaluate_job,
    "score_unlabelled": score_unlabelled_job,
}


class _ChildRun:
    """One training job in the child: its message and its controls (which buffer requests made before
    the trainer exists)."""

    def __init__(self, msg: dict):
        self.id, self.msg = msg["id"], msg
        self.control = RunControl(msg.get("resume_run"))
        for name in msg.get("controls", ()):
            self.control.apply(name)
        self.over = False


def _child_main(jobs: Connection, events: Connection) -> None:
    """The child's entry: Ctrl+C in a terminal reaches the whole process group, but the parent stops this
    process (a run first checkpoints), so SIGINT is ignored; a parent gone away (a closed pipe) ends it
    without a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from workbench.training.threads import reserve_cores

    reserve_cores(1)  # the window's GUI thread keeps a core: auto threads measure and use the others
    try:
        _serve(jobs, events)
    except (BrokenPipeError, ConnectionResetError, EOFError):
        pass


def _serve(jobs: Connection, events: Connection) -> None:
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
    events.send(READY)
    send_lock = threading.Lock()
    lock = threading.Condition()
    runs: list[_ChildRun | None] = []  # None: exit
    shorts: list[dict | None] = []
    live: dict[int, _ChildRun] = {}  # the runs announced and not over, by id
    idle = threading.Event()  # no run is training: short jobs may run
    idle.set()
    busy = threading.Lock()  # held while a short job runs

    def send(job_id: int, payload: object) -> None:
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
                    target = live.get(msg["id"])
                if target is not None:
                    with busy:  # a resume or cancel waits for the short job in progress
                        if msg["name"] != "pause":
                            idle.clear()
                        target.control.apply(msg["name"])
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
            for ev in run_to_events(
                trainer_module.Trainer,
                run.msg["project"],
                run.msg["config"],
                run.msg.get("resume_run"),
                control=run.control,
            ):
                if isinstance(ev, Paused):
                    idle.set()
                send(run.id, ev)
        except (BrokenPipeError, ConnectionResetError):
            raise SystemExit(1) from None  # the parent is gone (run_to_events kept the run resumable)
        finally:
            with lock:
                run.over = True
                live.pop(run.id, None)
        _MODELS.clear()  # a run may have replaced a cached run's checkpoint; and its memory goes back
        _release_memory()  # the child waits for the next run without the last one's model and optimizer
        idle.set()
        send(run.id, DONE)


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
