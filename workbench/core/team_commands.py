"""The team subcommands of ``workbench``: merge, assign.

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

    from workbench.core.outputs import add_output_argument

    p = subparsers.add_parser(
        "assign",
        help="split a project's comparisons into blind work packages, one project file per annotator",
        description="Write one project file per annotator into DIR holding only that person's comparisons (no "
        "labels of anyone, no model scores), and DIR/manifest.json. --overlap F gives a fraction F of the "
        "comparisons to two annotators and the rest to one; --per-item N gives every comparison to N annotators. "
        "The assignment is recorded in P, so that after 'workbench merge DIR/*.wbp --into P' the Data view shows "
        "each annotator's progress against it. Warns when a pair of annotators shares fewer than 50 comparisons.",
    )
    p.add_argument("--project", required=True, metavar="P", help="the project whose comparisons are assigned")
    p.add_argument("--annotators", required=True, metavar="NAMES", help="comma-separated names, e.g. alice,bob,carol")
    design = p.add_mutually_exclusive_group()  # one of them: assign_work says so (exit 1) when neither is given
    design.add_argument("--overlap", type=float, metavar="F", help="fraction of comparisons given to two annotators")
    design.add_argument("--per-item", type=int, metavar="N", help="annotators per comparison (balanced)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle (default: 0)")
    p.add_argument(
        "--with-scores",
        action="store_true",
        help="copy the latest run's rewards into each file (the Label view's score hint); off: no model hint",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_output_argument(p, "--out", kind="dir", required=True, metavar="DIR", help="folder for the files")
    p.set_defaults(handler=cmd_assign)


def cmd_merge(args: argparse.Namespace) -> int:
    from workbench.core.team import merge_projects
    from workbench.core.text import terminal_safe

    summary = merge_projects(args.sources, args.into)
    print(terminal_safe(summary.line()))  # file names are data
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    import sys

    from workbench.core.assign import assign_work
    from workbench.core.text import dumps_safe, terminal_safe

    summary = assign_work(
        args.project,
        args.annotators.split(","),
        args.out,
        overlap=args.overlap,
        per_item=args.per_item,
        seed=args.seed,
        with_scores=args.with_scores,
    )
    if args.json:
        print(dumps_safe(summary.as_dict(), indent=2))
    else:
        for line in summary.lines():
            print(terminal_safe(line))
    for warning in summary.warnings:
        print(terminal_safe(f"warning: {warning}"), file=sys.stderr)
    return 0
