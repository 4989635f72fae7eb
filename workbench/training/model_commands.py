"""The model commands of ``workbench``: ``export-model`` and ``score``.

    workbench export-model --project P --run N --out DIR [--overwrite]
    workbench score --model DIR --input FILE --out FILE [--format SHAPE] [--batch-size 32]

Only argparse at import time (torch and transformers load inside the handlers). Handlers raise user
errors (ValueError, FileNotFoundError, ProjectError, FormatError) and ``workbench.cli`` prints them as
one line; progress goes to stderr, the one-line result to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from workbench.core.outputs import add_output_argument
from workbench.core.text import terminal_safe
from workbench.training import offline_environment

_SCORE_FORMATS = ("auto", "rows", "explicit", "implicit", "conversational", "unlabeled")  # scoring.SCORE_FORMATS


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_export_model(subparsers)
    _register_score(subparsers)


def _quiet_libraries() -> None:
    """Offline, no tokenizer thread pool, and no transformers progress bars or load reports."""
    offline_environment()
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _threads(n: int) -> None:
    """The setting, or (0) this machine's measured choice for scoring (``threads.py``; its cores until a run
    has measured it)."""
    import torch

    from workbench.training.threads import choose_threads

    torch.set_num_threads(choose_threads(n, "score", None).threads)


def _note(text: str, quiet: bool = False) -> None:
    if not quiet:
        print(terminal_safe(text), file=sys.stderr, flush=True)


# --------------------------------------------------------------------- export-model
def _register_export_model(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-model",
        help="export a trained run as a Hugging Face model folder",
        description="Write run N's reward model as a Hugging Face folder (config.json, model.safetensors, tokenizer, "
        "a model card README.md with the data and metrics) that AutoModelForSequenceClassification "
        "loads with num_labels=1 and that scores exactly as the app did. The export is checked "
        "against the app's stored scores before it is moved into place.",
    )
    p.add_argument("--project", required=True, metavar="P", help="the project file (.wbp)")
    p.add_argument(
        "--run",
        required=True,
        type=int,
        metavar="N",
        help="the run to export (see the Train view or `workbench stats`)",
    )
    add_output_argument(p, "--out", kind="dir", required=True, metavar="DIR", help="the folder to write (new or empty)")
    p.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")
    p.add_argument(
        "--verify-pairs",
        type=int,
        default=16,
        metavar="K",
        help="pairs scored with the exported folder and compared with the app's scores (0: skip; the "
        "export is always checked on a probe batch) (default: 16)",
    )
    p.add_argument("--threads", type=int, default=0, metavar="T", help="torch CPU threads (default: 1)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=export_model_command)


def export_model_command(args: argparse.Namespace) -> int:
    if args.verify_pairs < 0:
        raise ValueError(f"--verify-pairs must be 0 or more, got {args.verify_pairs}")
    from workbench.core.store import Project
    from workbench.training.export import check_run

    with Project.open(args.project) as project:  # an unknown project or run is reported before transformers loads
        check_run(project, args.run)
    _quiet_libraries()
    _threads(args.threads)
    from workbench.training.export import export_run

    result = export_run(
        args.project,
        args.run,
        args.out,
        overwrite=args.overwrite,
        verify_pairs=args.verify_pairs,
        progress=lambda message: _note(f"export-model: {message}", args.quiet),
    )
    for warning in result.warnings:
        print(f"workbench export-model: warning: {terminal_safe(warning)}", file=sys.stderr, flush=True)
    checked = (
        f"{result.checked_pairs} pairs score as in the app (max difference {result.max_abs_diff:.1e})"
        if result.checked_pairs
        else "checked on a probe batch (no stored scores at this step)"
    )
    print(
        terminal_safe(
            f"exported run {result.run_id} (step {result.step}, {result.status}) to {result.out_dir}: "
            f"{checked}; {result.seconds:.1f} s"
        ),
        flush=True,
    )
    return 0


# --------------------------------------------------------------------- score
def _register_score(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "score",
        help="score prompt/response rows or preference pairs with an exported model",
        description="Score FILE with an exported reward model (a folder written by export-model, loaded with "
        "transformers alone; inputs built as in the app). Rows with prompt and response get a score "
        "column; pairs (explicit, implicit HH transcripts, conversational) come back as prompt, "
        "chosen, rejected with score_chosen and score_rejected; unlabelled pairs as prompt, response_a, "
        "response_b with score_a and score_b; a responses list gets a scores list. The output format "
        "follows --out's extension: .jsonl, .csv or .parquet.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", required=True, metavar="DIR", help="the exported model folder")
    p.add_argument("--input", required=True, metavar="FILE", help="JSONL, JSON, CSV or Parquet (optionally .gz)")
    add_output_argument(p, "--out", required=True, metavar="FILE", help="the output file (.jsonl, .csv or .parquet)")
    p.add_argument(
        "--format",
        default="auto",
        choices=[*_SCORE_FORMATS, "unlabelled"],
        metavar="SHAPE",
        help=f"the shape of the input rows: {'|'.join(_SCORE_FORMATS)}",
    )
    p.add_argument("--batch-size", type=int, default=32, metavar="B", help="texts per forward pass")
    p.add_argument(
        "--max-length",
        type=int,
        default=None,
        metavar="L",
        help="tokens per text (default: the length the model was trained with)",
    )
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"), help="where to run the model")
    p.add_argument(
        "--threads", type=int, default=0, metavar="T", help="torch CPU threads (0: as measured on this machine)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=score_command)


def score_command(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_length is not None and args.max_length < 8:
        raise ValueError(f"--max-length must be at least 8 tokens, got {args.max_length}")
    _quiet_libraries()
    _threads(args.threads)
    from workbench.training.scoring import (
        Scorer,
        output_kind,
        read_scoring_input,
        score_file,
    )

    output_kind(args.out)  # a bad output name fails before anything is read
    table = read_scoring_input(args.input, args.format)  # ... and a bad input before the model loads
    scorer = Scorer.load(args.model, device=_device(args.device), max_length=args.max_length)
    if args.threads == 0 and scorer.device == "cpu":  # auto: measured on this model if this machine has no figure
        from workbench.training.threads import choose_threads

        choice = choose_threads(0, "score", _score_probe(scorer, args.batch_size))
        import torch

        torch.set_num_threads(choice.threads)
        _note(f"score: {choice.describe()}", args.quiet)
    bar = _Bar(enabled=not args.quiet)
    try:
        report = score_file(
            args.model,
            args.input,
            args.out,
            format=args.format,
            batch_size=args.batch_size,
            scorer=scorer,
            table=table,
            progress=bar.update,
        )
    finally:
        bar.close()
    line = (
        f"scored {report.rows} {report.unit} ({report.texts} texts, {report.overlong} over {scorer.max_length} tokens) "
        f"in {report.seconds:.1f} s -> {report.out_path}"
    )
    if report.accuracy is not None:
        line += f"; pairwise accuracy {report.accuracy:.3f} (score_chosen > score_rejected)"
    print(terminal_safe(line), flush=True)
    return 0


def _score_probe(scorer: Any, batch_size: int) -> Callable[[], None]:
    """One forward pass over ``batch_size`` texts of half the model's length, for the thread probe."""
    import torch

    width = max(8, scorer.max_length // 2)
    vocab = int(getattr(scorer.model.config, "vocab_size", 1000))
    ids = torch.randint(min(1000, vocab - 1), vocab, (batch_size, width), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        with torch.no_grad():
            scorer.model(input_ids=ids, attention_mask=torch.ones_like(ids))

    return step


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps was asked for but Apple MPS is not available; use --device cpu")
    return name


class _Bar:
    """A tqdm bar on stderr over the texts being scored."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc="scoring", unit="text", file=sys.stderr, dynamic_ncols=True, mininterval=0.2
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
