"""The ``workbench`` command.

Subcommands come from command modules, each exposing ``register(subparsers)`` and giving every parser
a ``func(args) -> int | None`` default (``set_defaults(func=...)``, as in argparse's documentation;
``handler`` is accepted too); docs/architecture.md#adding-a-cli-command-with-an-output. When two modules
register the same name, the earlier one in :data:`COMMAND_MODULES` wins (the GUI's ``demo`` opens the
window; the core one only prints statistics).

Handlers import heavy libraries (torch, Qt) themselves, so that ``workbench stats`` starts fast.

Exit status: 0 success; 1 a user error (bad file, missing project, invalid value: one line on stderr,
no traceback); 2 a usage error (argparse); 130 interrupted; 70 an internal error (a bug: one line, and
the traceback with ``--debug`` or ``WORKBENCH_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from workbench import __version__
from workbench.core import commands as core_commands
from workbench.core import team_commands
from workbench.core.text import terminal_safe
from workbench.training import commands as training_commands
from workbench.training import eval_commands, inspect_commands, model_commands
from workbench.ui import commands as ui_commands

#: In priority order: the first module to register a command name owns it.
COMMAND_MODULES = (
    ui_commands,
    training_commands,
    model_commands,
    inspect_commands,
    eval_commands,
    core_commands,
    team_commands,
)
#: commands that hand out the latest run's scores of every comparison, when asked to: what that run has not
#: scored is scored first (training.commands.score_missing_first), since a run scores only its training pairs
SCORES_FIRST = {"assign": lambda args: bool(args.with_scores)}
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_INTERNAL_ERROR = 70


class _WorkbenchParser(argparse.ArgumentParser):
    """The top-level parser, which also keeps its subcommands' parsers by name."""

    #: name -> the subcommand's parser, for the output guard (and its test, which walks them all).
    workbench_subparsers: dict[str, argparse.ArgumentParser]


class _Subcommands:
    """Hands ``add_parser`` through to argparse, ignoring a name that a higher-priority module owns
    (argparse itself refuses duplicate names, and the later module's parser must still be usable)."""

    def __init__(self, action: argparse._SubParsersAction):
        self._action = action
        self.names: list[str] = []
        self.parsers: dict[str, argparse.ArgumentParser] = {}

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if name in self.names:
            return argparse.ArgumentParser(prog=f"workbench {name}", add_help=False)  # shadowed: never used
        self.names.append(name)
        self.parsers[name] = self._action.add_parser(name, **kwargs)
        return self.parsers[name]

    def __getattr__(self, attribute: str) -> Any:  # everything else is argparse's own action
        return getattr(self._action, attribute)


def build_parser() -> tuple[_WorkbenchParser, list[str]]:
    """The parser and the names of the subcommands it knows."""
    parser = _WorkbenchParser(
        prog="workbench",
        description="Preference Workbench: label preference pairs, train a reward model, inspect its mistakes.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors (anywhere on the line)")
    subparsers = _Subcommands(parser.add_subparsers(dest="command", metavar="COMMAND"))
    for module in COMMAND_MODULES:
        module.register(subparsers)
    #: name -> the subcommand's parser, for the output guard (and its test, which walks them all).
    parser.workbench_subparsers = subparsers.parsers
    return parser, subparsers.names


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line (before "--"), not only before the subcommand.
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut] or os.environ.get("WORKBENCH_DEBUG", "") not in ("", "0")
    argv = [a for a in argv[:cut] if a != "--debug"] + argv[cut:]

    parser, _ = build_parser()
    if len(argv) == 1 and argv[0].endswith(".wbp"):  # "workbench FILE.wbp", as a desktop entry opens a file
        argv = ["gui", "--project", argv[0]]
    if not argv:  # no subcommand: the GUI
        argv = ["gui"]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse has printed it)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    handler = getattr(args, "func", None) or getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        # Every file or folder a command writes goes through the one guard first (core/outputs.py).
        from workbench.core.outputs import check_parsed_outputs

        subparser = parser.workbench_subparsers.get(getattr(args, "command", None) or "")
        if subparser is not None:
            check_parsed_outputs(subparser, args)
        wants_scores = SCORES_FIRST.get(getattr(args, "command", None) or "")
        if wants_scores is not None and wants_scores(args):
            # on stderr: stdout may be the command's --json
            training_commands.score_missing_first(
                args.project, say=lambda line: print(terminal_safe(line), file=sys.stderr)
            )
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        _report(debug, "interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `workbench stats --json | head`: the reader left; not an error worth a word
        _silence_stdout()
        return EXIT_USER_ERROR
    except Exception as exc:  # noqa: BLE001 - the one place where every error becomes a message
        if _is_user_error(exc):
            _report(debug, _message(exc))
            return EXIT_USER_ERROR
        _report(
            debug,
            f"internal error: {type(exc).__name__}: {_message(exc)} (run with --debug for the "
            f"traceback, and please report it)",
        )
        return EXIT_INTERNAL_ERROR


def _is_user_error(exc: BaseException) -> bool:
    # Look the classes up only if their modules were loaded: if they were not, exc cannot be one, and
    # importing them here would cost a pandas import on every error.
    types: list[type] = [ValueError, OSError]
    for module, name in (
        ("workbench.core.store", "ProjectError"),
        ("workbench.core.formats", "FormatError"),
        ("workbench.core.formats", "ImportCancelled"),
    ):
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None:
            types.append(cls)
    return isinstance(exc, tuple(types))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())  # one line, whatever the exception held


def _report(debug: bool, message: str) -> None:
    if debug:
        traceback.print_exc()
    print(f"workbench: error: {terminal_safe(message)}", file=sys.stderr)  # data in a message stays inert


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
