"""The core subcommands of ``workbench``: import, export, stats, and demo (until the GUI overrides it).

Handlers import the store (and so pandas) only when they run, so ``workbench --help`` stays instant.
They raise user errors (FormatError, ProjectError, ValueError, OSError) and let ``workbench.cli`` print
them as one line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.core.formats import FORMATS
from workbench.core.outputs import add_output_argument
from workbench.core.text import dumps_safe, terminal_safe, terminal_safe_data

if TYPE_CHECKING:
    from workbench.core.store import Project


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import",
        help="import a data file into a project (creating the project if missing)",
        description="Read FILE (JSONL, JSON, CSV or Parquet; .gz allowed), check every row, then add it to the "
        "project in one transaction: all of it or, on any error, nothing.",
    )
    p.add_argument(
        "file",
        metavar="FILE",
        help="the data file, or a dataset folder (datasets' save_to_disk, or a Hub dataset download)",
    )
    p.add_argument("--project", required=True, metavar="P", help="the project file (.wbp); created if missing")
    p.add_argument(
        "--format",
        default="auto",
        choices=[*FORMATS, "unlabelled"],
        metavar="SHAPE",
        help=f"the shape of the rows: {'|'.join(FORMATS)} (default: auto, detected from the columns)",
    )
    p.add_argument(
        "--annotator",
        metavar="NAME",
        help="who labelled the pairs (default: import:<file name>; a per-row annotator column wins)",
    )
    p.add_argument(
        "--split",
        metavar="NAME",
        help="the dataset split to read from a dataset folder (train, test, ...); not --test, which marks "
        "imported pairs evaluation-only",
    )
    p.add_argument(
        "--columns",
        metavar="MAP",
        help="our column names for the file's, e.g. prompt=question,chosen=good,rejected=bad",
    )
    p.add_argument(
        "--test",
        action="store_true",
        help="put the file's pairs in the test split: evaluated by `workbench eval`, never trained on or "
        "validated on (nor is any other pair of their prompts)",
    )
    p.set_defaults(func=cmd_import)

    p = subparsers.add_parser(
        "export",
        help="export preference pairs (TRL format) or the judgment log",
        description="Write the project's labelled pairs as a TRL preference dataset (.jsonl or .parquet), or "
        "its full judgment log (.csv, .parquet or .jsonl); with --splits, a dataset folder (train and test "
        "split by prompt, ties apart, a dataset card) that datasets.load_dataset(DIR) reads.",
    )
    p.add_argument("--project", required=True, metavar="P", help="the project file")
    add_output_argument(
        p, "--out", required=True, metavar="FILE", help="the output file; its extension picks the format"
    )
    p.add_argument("--what", choices=("pairs", "judgments"), default="pairs", help="what to export (default: pairs)")
    p.add_argument(
        "--with-margin",
        nargs="?",
        const="small",
        default=None,
        metavar="SCALE",
        help="add a margin column from each judgment's strength (Llama 2 scale: small (default) or large)",
    )
    p.add_argument(
        "--include-ties", action="store_true", help="also write ties and both-bad pairs, with a label column"
    )
    p.add_argument(
        "--splits",
        action="store_true",
        help="write a dataset folder at --out: train.jsonl and test.jsonl split by prompt (the project's test "
        "split when it has one), ties.jsonl, and a README.md dataset card",
    )
    p.set_defaults(func=cmd_export)

    p = subparsers.add_parser(
        "stats",
        help="print a project's statistics",
        description="Counts, labels and per-annotator progress of a project.",
    )
    p.add_argument("--project", required=True, metavar="P", help="the project file")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=cmd_stats)

    p = subparsers.add_parser(
        "demo",
        help="create the demo project (if needed) and show its statistics",
        description="Create the built-in demo project in the user's data folder if it "
        "is not there yet, then print its path and statistics.",
    )
    p.set_defaults(func=cmd_demo)


# ------------------------------------------------------------------------------------------- handlers
def cmd_import(args: argparse.Namespace) -> int:
    from workbench.core.formats import import_records, read_records
    from workbench.core.store import Project, remove_new_project

    if args.annotator is not None and not args.annotator.strip():
        raise ValueError("--annotator is empty; give a name or leave the option out")
    progress = _Progress() if sys.stderr.isatty() else None
    # Reading is the first half of the work, storing the second (import_records counts from there).
    from workbench.core.hub import parse_columns

    columns = parse_columns(args.columns)
    records, info = read_records(
        args.file,
        args.format,
        progress and (lambda done, total: progress(done, 2 * total)),
        split=args.split,
        columns=columns,
    )
    path = Path(args.project)
    was_empty = path.is_file() and path.stat().st_size == 0
    created = was_empty or not path.exists()
    project = Project.open_or_create(path)
    try:
        summary = import_records(
            project, records, info, args.annotator, progress, use_for="test" if args.test else None
        )
    except BaseException:
        project.close()
        if created:  # the import wrote nothing: leave no empty project behind either
            remove_new_project(path, was_empty_file=was_empty)
        raise
    finally:
        if progress is not None:
            progress.clear()
    project.close()
    s = summary.as_dict()
    identical = s.get("identical_pairs", 0)
    print(
        terminal_safe(
            f"imported {info.path.name}{f' [{info.split}]' if info.split else ''} ({info.shape}, {info.rows:,} rows) into {path}: added {s['prompts_added']:,} "
            f"prompts, {s['responses_added']:,} responses, {s['comparisons_added']:,} comparisons, "
            f"{s['judgments_added']:,} judgments; {s['duplicates']:,} duplicates "
            f"({info.duplicate_rows:,} repeated rows in the file)"
            + (f"; {identical:,} pairs with identical responses skipped" if identical else "")
            + (
                f"; {s.get('test_comparisons', 0):,} comparisons in the test split (never trained on)"
                if args.test
                else ""
            )
        )
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.core.formats import export_judgments, export_pairs

    with _open_existing(args.project) as project:
        if args.splits:
            from workbench.core.hub import export_splits

            if args.what != "pairs" or args.include_ties:
                raise ValueError(
                    "--splits writes pairs, with ties always apart in ties.jsonl; drop --what/--include-ties"
                )
            counts = export_splits(project, args.out, with_margin=args.with_margin or False)
            print(
                terminal_safe(
                    f"wrote {args.out}: train {counts['train']:,} pairs, test {counts['test']:,}, "
                    f"ties and both-bad {counts['ties']:,} (ties.jsonl)"
                )
            )
            return 0
        if args.what == "judgments":
            if args.with_margin is not None or args.include_ties:
                raise ValueError("--with-margin and --include-ties apply to --what pairs only")
            n = export_judgments(project, args.out)
            print(terminal_safe(f"wrote {n:,} judgments to {args.out}"))
            return 0
        n = export_pairs(project, args.out, with_margin=args.with_margin or False, include_ties=args.include_ties)
    note = "" if n else " (the project has no labelled pairs to train on)"
    print(terminal_safe(f"wrote {n:,} pairs to {args.out}{note}"))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from workbench.core.team import format_team_statistics, team_statistics

    with _open_existing(args.project) as project:
        stats = project.statistics()
        team = team_statistics(project)
    if args.json:
        print(dumps_safe({**stats, **team}, indent=2, default=str))  # names and keys are data: no raw controls
    else:  # each name, key and path made one-line safe before it is laid out in the table
        print(format_statistics(terminal_safe_data(stats)))
        print(format_team_statistics(terminal_safe_data(team)))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from workbench.core.demo import ensure_demo_project
    from workbench.core.store import Project

    path = ensure_demo_project()
    with Project.open(path) as project:
        stats = project.statistics()
    print(format_statistics(terminal_safe_data(stats)))
    print("\n(the GUI is not installed yet; open this project with it once it is)")
    return 0


# -------------------------------------------------------------------------------------------- helpers
def _open_existing(path: str) -> Project:
    """Open a project that must already exist (never create one by accident)."""
    from workbench.core.store import Project, ProjectError

    if not Path(path).exists():
        raise ProjectError(f"{path}: no such project file; create one with 'workbench import FILE --project {path}'")
    return Project.open(path)


def format_statistics(stats: dict[str, Any]) -> str:
    """A short human-readable table of ``Project.statistics()``."""
    labels = stats.get("labels", {})
    lines = [
        f"project      {stats.get('project')}  ({stats.get('path')})",
        f"prompts      {stats.get('prompts', 0):>8,}    responses   {stats.get('responses', 0):>8,}",
        f"comparisons  {stats.get('comparisons', 0):>8,}    judged      {stats.get('judged_comparisons', 0):>8,}",
        f"judgments    {stats.get('judgments', 0):>8,}    trainable   {stats.get('trainable_pairs', 0):>8,}",
        f"excluded     {stats.get('excluded', 0):>8,}    flagged     {stats.get('flagged', 0):>8,}",
        f"test split   {stats.get('splits', {}).get('test', 0):>8,}    held out    "
        f"{stats.get('splits', {}).get('held_out', 0):>8,}",
        # a and b pooled: which of the two was stored first says nothing (imports store the chosen one as a).
        "labels       "
        + ", ".join(
            [f"a or b {labels.get('a_or_b', 0):,}"]
            + [f"{name} {count:,}" for name, count in labels.items() if name != "a_or_b"]
        ),
    ]
    rows = stats.get("annotators_detail") or []
    if rows:
        lines.append("")
        lines.append(
            f"{'annotator':<28} {'kind':<8} {'judged':>7} {'a/b':>7} {'tie':>5} {'both bad':>8} "
            f"{'skips':>6} {'s/item':>7}"
        )
        for row in rows:
            seconds = row.get("seconds_per_item")
            lines.append(
                f"{str(row.get('name'))[:28]:<28} {str(row.get('kind'))[:8]:<8} {row.get('judged') or 0:>7,} "
                f"{row.get('preferences') or 0:>7,} {row.get('ties') or 0:>5,} {row.get('both_bad') or 0:>8,} "
                f"{row.get('skips') or 0:>6,} {'-' if seconds is None else f'{seconds:.1f}':>7}"
            )
    return "\n".join(lines)


class _Progress:
    """A one-line progress display on a terminal's stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        percent = 100 * done // total if total else 100
        sys.stderr.write(f"\rimporting: {percent:3d}% ")
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r" + " " * 20 + "\r")
        sys.stderr.flush()
