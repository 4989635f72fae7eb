"""The team subcommand of ``workbench``: merge.

Like ``workbench.core.commands``, handlers import the store (and so pandas) only when they run, and raise
user errors (ProjectError, ValueError, OSError) for ``workbench.cli`` to print as one line.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "merge",
        help="merge other annotators' projects into one (creating it if missing)",
        description="Bring the prompts, comparisons, judgments (with their history) and pair marks of each "
        "SRC project into P, matched by content, in one transaction: all of it or, on any error, "
        "nothing. Merging the same projects again adds nothing.",
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="a project file to merge from")
    p.add_argument("--into", required=True, metavar="P", help="the project file to merge into; created if missing")
    p.set_defaults(handler=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from workbench.core.team import merge_projects
    from workbench.core.text import terminal_safe

    summary = merge_projects(args.sources, args.into)
    print(terminal_safe(summary.line()))  # file names are data
    return 0
