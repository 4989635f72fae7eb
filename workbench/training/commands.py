"""The training commands of ``workbench``: ``train`` (``export-model`` and ``score`` slot in beside it).

Only argparse and the config dataclass at import time: torch and transformers are imported inside the
handlers, so ``workbench --help`` stays fast. Each command is a ``_register_<name>`` function that adds
its parser and a handler returning the exit status; ``register`` calls them all.

    workbench train --project P [--mode head|finetune] [--backbone PATH] [--epochs N] [--lr X] ...
    torchrun --nproc_per_node 2 -m workbench train --project P --mode finetune ...

Exit status of ``train``: 0 finished, 1 failed (one line on stderr says why and what to do), 2 bad
arguments, 130 cancelled with Ctrl+C (checkpoint saved; ``--resume RUN`` continues it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from workbench.core.text import terminal_safe
from workbench.training import config as train_config
from workbench.training import offline_environment

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)
    # _register_export_model(subparsers) and _register_score(subparsers) go here.


def _add_project_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", metavar="P", required=True, help="the project file (.wbp)")


def _error(command: str, message: str) -> None:
    """One line on stderr, never a traceback, for errors a user can fix."""
    print(f"workbench {command}: error: {terminal_safe(' '.join(str(message).split()))}", file=sys.stderr, flush=True)


def score_missing_first(project: str | os.PathLike, say: Any = print) -> int:
    """For commands that hand out the latest run's scores of every comparison (``assign --with-scores``):
    score, synchronously, the comparisons the run the model queues read has no score for (a run does not
    score them at its end; issue 16), saying so in one line. Returns how many were scored (0: none missing,
    no finished run, or a run without a checkpoint)."""
    from pathlib import Path

    from workbench.core.store import Project

    if not Path(project).is_file():
        return 0  # the command itself says that the project is missing
    with Project.open(project) as p:
        due = p.scores_to_compute()
    if due is None:
        return 0
    run_id, missing = due
    say(f"scoring {missing:,} unlabelled comparisons with run {run_id} (its scores go into the files)")
    from workbench.training.model_commands import _quiet_libraries

    _quiet_libraries()  # the line above says what happens: no "Loading weights" bars on the terminal
    from workbench.training.evaluate import score_missing

    return score_missing(project, run_id) or 0


# --------------------------------------------------------------------- train
def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a reward model on the project's labels",
        description="Train a reward model on the project's labelled pairs and store the run (metrics, per-pair "
        "scores, checkpoints) in the project. Ctrl+C stops at the next step with a checkpoint; "
        "--resume continues a stopped run. Runs data-parallel under torchrun.",
    )
    _add_project_argument(parser)
    parser.add_argument(
        "--resume",
        metavar="RUN",
        type=int,
        default=None,
        help="continue run RUN from its last checkpoint with its own settings (only --threads and --device may change)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar; only the final line")
    train_config.add_arguments(parser.add_argument_group("training settings (unset: the defaults shown)"))
    parser.set_defaults(func=train_command)


def train_command(args: argparse.Namespace) -> int:
    try:
        config = train_config.from_args(args)
    except ValueError as exc:
        _error("train", str(exc))
        return EXIT_USAGE
    offline_environment()
    import signal

    import transformers

    from workbench.training.prepare import RESUME_OVERRIDES
    from workbench.training.run_control import RunControl, run_to_events
    from workbench.training.trainer import Trainer

    transformers.utils.logging.disable_progress_bar()  # our bar is the one that matters

    control = RunControl(args.resume)
    is_main = int(os.environ.get("RANK", "0")) == 0
    view = _TrainView(args.project, enabled=is_main and not args.quiet, is_main=is_main)
    if args.resume is not None:
        ignored = [
            f"--{name.replace('_', '-')}"
            for name in config.to_dict()
            if getattr(args, name, None) is not None and name not in RESUME_OVERRIDES
        ]
        if ignored:
            view.note(f"resuming run {args.resume} with its own settings; ignoring {' '.join(ignored)}")
    presses = 0

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal presses
        presses += 1
        if presses > 1:  # a second Ctrl+C: stop now (the last checkpoint stays resumable)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        control.cancel()
        view.note("stopping after this step, with a checkpoint; press Ctrl+C again to stop at once")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for event in run_to_events(Trainer, args.project, config, args.resume, control=control):
            code = view.show(event)
            if code is not None:
                return code
    except KeyboardInterrupt:
        view.close()
        if is_main:
            resume = f"; resume with: workbench train --project {args.project} --resume {control.run_id}"
            _error("train", "interrupted" + (resume if control.run_id is not None else ""))
        return EXIT_CANCELLED
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        view.close()
    return EXIT_FAILED  # the trainer always ends with Finished or Failed


class _TrainView:
    """Turns trainer events into a tqdm bar on stderr and one summary line on stdout (rank 0 only)."""

    def __init__(self, project: str, enabled: bool, is_main: bool):
        self.project, self.enabled, self.is_main = project, enabled, is_main
        self.bar: Any = None
        self.embed_bar: Any = None
        self.val_acc: float | None = None

    def note(self, text: str) -> None:
        if not self.is_main:
            return
        from tqdm import tqdm

        tqdm.write(terminal_safe(text), file=sys.stderr)

    def show(self, event: Any) -> int | None:
        """Display one event; the exit status once the run has ended, else None."""
        from tqdm import tqdm

        from workbench.training import events as ev

        if isinstance(event, ev.RunStarted) and self.enabled:
            d = event.details
            self.note(
                f"run {event.run_id}: {event.config['mode']} on {d.get('backbone_path', event.config['backbone'])}"
                f", {event.n_train} train / {event.n_val} validation pairs, {event.n_overlong} over-length, "
                f"{event.total_steps} steps of {d.get('batch_size')} pairs, lr {d.get('learning_rate'):g}"
                + (f", resumed at step {event.resumed_from_step}" if event.resumed_from_step else "")
                + (f"; {d['threads_note']}" if d.get("threads_note") else "")
            )
            self.bar = tqdm(
                total=event.total_steps,
                initial=event.resumed_from_step,
                desc=f"run {event.run_id}",
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
            )
        elif isinstance(event, ev.PhaseProgress) and self.enabled and event.phase in ("embedding", "folds"):
            if self.embed_bar is None:
                self.embed_bar = tqdm(
                    total=event.total,
                    desc="out-of-fold margins" if event.phase == "folds" else "embedding",
                    unit="step" if event.phase == "folds" else "text",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    leave=False,
                    mininterval=0.2,
                )
            self.embed_bar.update(event.done - self.embed_bar.n)
            if event.done >= event.total:
                self.embed_bar.close()
                self.embed_bar = None
        elif isinstance(event, ev.StepMetrics) and self.bar is not None:
            m = event.metrics
            postfix = {"loss": f"{m['loss']:.4f}", "acc": f"{m['accuracy']:.3f}"}
            if self.val_acc is not None:
                postfix["val_acc"] = f"{self.val_acc:.3f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(event.step - self.bar.n)
        elif isinstance(event, ev.Evaluation):
            self.val_acc = event.val.get("accuracy")
        elif isinstance(event, ev.Finished):
            self.close()
            return self._finished(event)
        elif isinstance(event, ev.Failed):
            self.close()
            if self.is_main:
                run = f"run {event.run_id} failed: " if event.run_id is not None else ""
                _error("train", f"{run}{event.message}" + (f"; {event.hint}" if event.hint else ""))
            return EXIT_FAILED
        return None

    def _finished(self, event: Any) -> int:
        s = event.summary
        if event.status != "finished":
            if self.is_main:
                print(
                    terminal_safe(
                        f"run {event.run_id} cancelled at step {s.get('steps')}/{s.get('total_steps')} "
                        f"(checkpoint saved); resume with: workbench train --project {self.project} "
                        f"--resume {event.run_id}"
                    ),
                    flush=True,
                )
            return EXIT_CANCELLED
        if self.is_main:
            acc = s.get("val_accuracy")
            rate = s.get("pairs_per_s")
            print(
                f"run {event.run_id} finished: validation accuracy "
                f"{'n/a' if acc is None else f'{acc:.3f}'} on {s.get('n_val')} pairs, "
                f"loss {_num(s.get('val_loss'))}, {s.get('time_s') or 0:.1f} s"
                + (f", {rate:.1f} pairs/s" if rate else ""),
                flush=True,
            )
        return EXIT_OK

    def close(self) -> None:
        for bar in (self.embed_bar, self.bar):
            if bar is not None:
                bar.close()
        self.bar = self.embed_bar = None


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------- standalone
def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.training.commands train ...``: the training commands without the rest of
    the CLI (what ``workbench train`` runs)."""
    parser = argparse.ArgumentParser(prog="workbench", description="Preference Workbench training commands")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
