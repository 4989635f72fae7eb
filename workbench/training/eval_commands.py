"""``workbench eval``: a run or an exported model on held-out pairs, with intervals, slices, length control
and calibration (``training/eval_run.py``; the figures are ``core/evaluation.py``)."""

from __future__ import annotations

import argparse
import sys

from workbench.core.outputs import add_output_argument
from workbench.core.text import dumps_safe, terminal_safe


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a run (on the project's test split) or an exported model (on a labelled file)",
        description="Accuracy (strict; ties reported) and loss with 95%% intervals (bootstrap by prompt), slices "
        "(subset, source, annotator, strength, prompt length), accuracy by length difference beside the "
        "'always prefer the longer response' baseline, and calibration (reliability, ECE, the run's fitted "
        "temperature). Default: the latest finished run on the project's test split (import one with "
        "`workbench import FILE --project P --test`). A run's scores of its test pairs are read from the "
        "project; only pairs it never scored are scored with its checkpoint.",
    )
    p.add_argument("--project", metavar="P", help="the project file")
    p.add_argument("--run", type=int, metavar="N", help="the run to evaluate (default: the latest finished run)")
    p.add_argument("--against", type=int, metavar="M", help="compare with run M on the same pairs (McNemar, paired CI)")
    p.add_argument("--model", metavar="DIR", help="an exported model folder (needs --input)")
    p.add_argument("--input", metavar="FILE", help="a labelled file to evaluate on instead of the test split")
    p.add_argument("--format", default="auto", metavar="SHAPE", help="the shape of --input's rows (default: auto)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_output_argument(p, "--report", kind="dir", metavar="DIR", help="write report.md and PNG figures into DIR")
    add_output_argument(
        p, "--out", kind="file", metavar="FILE", help="write the per-pair results (.jsonl, .csv or .parquet)"
    )
    p.set_defaults(func=eval_command)


def eval_command(args: argparse.Namespace) -> int:
    from workbench.training import offline_environment
    from workbench.training.eval_run import evaluate, format_result, write_pairs

    offline_environment()
    if args.out is not None:
        from workbench.training.scoring import output_kind

        output_kind(args.out)  # a bad output name fails before any work
    result, frame = evaluate(
        project=args.project,
        run=args.run,
        model=args.model,
        input=args.input,
        against=args.against,
        format=args.format,
        progress=None if args.json else lambda text: print(terminal_safe(text), file=sys.stderr, flush=True),
    )
    if args.out is not None:
        write_pairs(frame, args.out)
    if args.report is not None:
        from workbench.training.report import write_report

        path = write_report(result, args.report)
        if not args.json:
            print(terminal_safe(f"wrote {path}"), file=sys.stderr)
    if args.json:
        print(dumps_safe(result, indent=2, default=float))
    else:
        for line in format_result(result).splitlines():  # terminal_safe escapes newlines: one line at a time
            print(terminal_safe(line))
    return 0
