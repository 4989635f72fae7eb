"""One training run's controls and its one error boundary, shared by the CLI, the GUI worker and the
training process (superqt's worker: one owner of pause and abort, thin bridges around it).

    control = RunControl()                       # pause / resume / cancel from any thread, at any time
    for ev in run_to_events(Trainer, project, config, control=control):
        ...                                      # always ends with Finished or Failed

``RunControl`` holds the requests as state, so a request made before the trainer exists is simply there
when it starts (no per-layer buffers); the trainer checks it between steps. ``run_to_events`` builds the
trainer through a factory and turns any exception into a ``Failed`` event, marking the run failed.

No torch here: the GUI process imports this module and must stay free of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from workbench.training.events import Event, Failed, Finished

_log = logging.getLogger(__name__)

OOM_HINT = "lower batch_size or max_length, or use head mode or LoRA, then start a new run"


class RunControl:
    """Pause, resume and cancel requests for one run, thread-safe; the trainer checks them between steps.

    ``listeners`` are called with "pause", "resume" or "cancel" after each request (the training process
    forwards them to its child with one)."""

    def __init__(self, run_id: int | None = None):
        #: the run being trained: the resumed run at once, a new run once the trainer has created it
        self.run_id = run_id
        self._cancel = threading.Event()
        self._go = threading.Event()  # cleared while paused
        self._go.set()
        self._listeners: list[Callable[[str], None]] = []

    def pause(self) -> None:
        """Stop at the next step boundary (after ``Paused``) until ``resume`` or ``cancel``."""
        self._go.clear()
        self._tell("pause")

    def resume(self) -> None:
        self._go.set()
        self._tell("resume")

    def cancel(self) -> None:
        """Stop at the next step boundary: checkpoint, run marked 'cancelled', ``Finished('cancelled')``."""
        self._cancel.set()
        self._go.set()
        self._tell("cancel")

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def pause_requested(self) -> bool:
        return not self._go.is_set()

    def wait_while_paused(self) -> None:
        self._go.wait()

    def requests(self) -> list[str]:
        """The requests in force, as control names (what a fresh copy of this control must be told)."""
        return ["cancel"] if self.cancel_requested else ["pause"] if self.pause_requested else []

    def apply(self, name: str) -> None:
        """Apply a request by name ("pause", "resume" or "cancel"), e.g. one that came over a pipe."""
        if name not in ("pause", "resume", "cancel"):
            raise ValueError(f"unknown control {name!r}")
        getattr(self, name)()

    def listen(self, callback: Callable[[str], None]) -> None:
        self._listeners.append(callback)

    def _tell(self, name: str) -> None:
        for callback in list(self._listeners):
            callback(name)


#: what builds a trainer: ``factory(project_path, config, resume_run, control=control)`` returns an object
#: with ``events()`` (``Trainer``, ``TrainerProcess``, or a test's own)
TrainerFactory = Callable[..., Any]


def run_to_events(
    factory: TrainerFactory,
    project_path: str | Path,
    config: Any,
    resume_run: int | None = None,
    *,
    control: RunControl | None = None,
    **options: Any,
) -> Iterator[Event]:
    """The run's events, ending with ``Finished`` or ``Failed`` whatever goes wrong: the one place where an
    exception becomes a ``Failed`` event (with a hint for running out of memory) and a failed run.

    KeyboardInterrupt and SystemExit pass through (the CLI's second Ctrl+C, a child whose parent went away).
    Closing this generator closes the trainer's, which keeps the run resumable."""
    control = control if control is not None else RunControl(resume_run)
    stream = None
    ended = False
    try:
        trainer = factory(project_path, config, resume_run, control=control, **options)
        stream = trainer.events()
        for ev in stream:
            ended = isinstance(ev, (Finished, Failed))
            yield ev
    except Exception as exc:  # noqa: BLE001 - every error ends the run with a message, never a crash
        if ended:  # after the last event: nothing left to report
            _log.warning("error after run %s ended", control.run_id, exc_info=True)
            return
        if stream is not None:
            stream.close()  # the trainer's own clean-up first (it may mark the run cancelled)
        ev = failure_event(exc, control.run_id)
        mark_failed(project_path, ev)
        yield ev
    finally:
        if stream is not None:
            stream.close()


def failure_event(exc: BaseException, run_id: int | None) -> Failed:
    """The ``Failed`` event for an error the trainer let through: a hint for running out of memory,
    the type and message otherwise."""
    if is_out_of_memory(exc):
        first = (str(exc).splitlines() or [""])[0]
        return Failed(run_id, f"out of memory: {first}".rstrip(": "), OOM_HINT)
    return Failed(
        run_id,
        f"training stopped with an unexpected error: {type(exc).__name__}: {exc}",
        "start a new run; if it happens again, report it with the project's run list",
    )


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
