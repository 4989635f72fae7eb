"""The Inspect commands of ``workbench``: ``suspects`` (which labels look wrong, and why).

    workbench suspects --project P [--run N] [--top N] --out FILE.csv|.jsonl|.parquet

A run finished by this version has its out-of-fold scores (the trainer stores them); for an older run, or
one whose folds were skipped, ``suspects`` computes them (K head-mode folds on the cached embeddings,
seconds) and stores them, then writes the table of ``core/suspects.py``. Torch is imported inside the
handler only.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import TYPE_CHECKING

from workbench.core.outputs import add_output_argument
from workbench.core.text import terminal_safe
from workbench.training import offline_environment

if TYPE_CHECKING:
    from workbench.core.store import Project


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "suspects",
        help="rank a run's labelled pairs by the probability that their label is wrong",
        description="Write a run's labelled pairs, most suspect first: label, annotator, in-sample and out-of-fold "
        "margins, p_label_wrong, category (likely mislabelled, ambiguous, hard to learn, easy), "
        "confidence and variability. Computes and stores the run's out-of-fold margins when it has none.",
    )
    parser.add_argument("--project", metavar="P", required=True, help="the project file (.wbp)")
    parser.add_argument("--run", metavar="N", type=int, default=None, help="the run (default: the latest finished run)")
    parser.add_argument("--top", metavar="N", type=int, default=None, help="only the N most suspect pairs")
    add_output_argument(
        parser, "--out", kind="file", metavar="FILE", required=True, help="the table to write: .csv, .jsonl or .parquet"
    )
    parser.set_defaults(func=suspects_command)


def suspects_command(args: argparse.Namespace) -> int:
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    from workbench.core import suspects
    from workbench.core.store import Project
    from workbench.training.scoring import output_kind, write_table

    kind = output_kind(args.out)
    with Project.open(args.project) as project:
        run_id = args.run if args.run is not None else suspects.latest_finished_run(project.runs())
        try:
            run = project.run(run_id)
        except KeyError:
            raise ValueError(f"there is no run {run_id} in {project.path.name}") from None
        if project.oof_scores(run_id).empty:
            _compute_folds(project, run_id, run["config"])
        table = suspects.suspects_for_run(project, run_id)
    if args.top is not None:
        table = table.head(args.top)
    write_table(dict(suspects.as_mapping(table)), args.out, kind)
    counts = Counter(table["category"])
    summary = ", ".join(f"{counts[c]} {c}" for c in suspects.CATEGORIES if counts[c])
    print(terminal_safe(f"wrote {len(table)} pairs of run {run_id} to {args.out}: {summary or 'none'}"), flush=True)
    few = suspects.too_few_points(table)
    if few:
        print(
            f"training dynamics not used for {few} pair(s): too few points (fewer than "
            f"{suspects.MIN_DYNAMICS_POINTS} training steps saw them; train more epochs)",
            flush=True,
        )
    return 0


def _compute_folds(project: Project, run_id: int, stored: dict) -> None:
    """Out-of-fold scores for a run that has none, stored as the run's (source "head-folds")."""
    offline_environment()
    import torch

    from workbench.training import threads
    from workbench.training.config import TrainConfig
    from workbench.training.folds import SOURCE, out_of_fold_margins

    config = TrainConfig.from_dict(stored)
    k = config.resolved_folds() or 5
    print(
        terminal_safe(
            f"run {run_id} has no out-of-fold scores: computing them now ({k} head-mode folds on the "
            f"cached embeddings of {config.backbone}) and storing them"
        ),
        flush=True,
    )
    torch.set_num_threads(threads.choose_threads(config.threads, "score", None).threads)
    oof = out_of_fold_margins(project, run_id, config, k)
    project.add_oof_scores(
        run_id, zip(oof["comparison_id"], oof["chosen"], oof["fold"], oof["r_chosen"], oof["r_rejected"]), SOURCE
    )
