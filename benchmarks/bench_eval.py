"""The README's evaluation example on the shared HH pairs, and the check that `workbench eval --input` on an
exported model gives the accuracy `workbench score` plus a hand count gives, to the pair.

    python benchmarks/bench_eval.py [--out DIR] [--test N]

Steps (all through the `workbench` command, in process): the last N pairs of ../shared/data/hh-harmless-dev
imported with --test, the rest as training data; two head-mode runs on frozen MiniLM (a linear head for the default
20 epochs, then for 60); `workbench eval` of run 2 against run 1 with a report; the export of run 2 scored with `workbench
score` on the test file and counted by hand, against `workbench eval --model --input` on the same file. Prints
the figures and the ECE on the held-out pairs before and after temperature scaling.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HH = REPO.parent / "shared" / "data" / "hh-harmless-dev.jsonl.gz"

import pandas as pd  # noqa: E402

from workbench import cli  # noqa: E402


def run(*args: str) -> str:
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = cli.main(list(args))
    if status != 0:
        raise SystemExit(f"workbench {' '.join(args)} exited {status}")
    print(f"$ workbench {' '.join(args)}   ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/wb-eval-example", help="a scratch folder (its contents are replaced)")
    parser.add_argument("--test", type=int, default=400, help="pairs held out as the test split")
    args = parser.parse_args()
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)
    for name in ("hh.wbp", "hh.wbp-wal", "hh.wbp-shm"):
        (root / name).unlink(missing_ok=True)
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        lines = fh.readlines()
    (root / "hh-train.jsonl").write_text("".join(lines[: -args.test]), encoding="utf-8")
    (root / "hh-test.jsonl").write_text("".join(lines[-args.test :]), encoding="utf-8")
    project = str(root / "hh.wbp")
    print(run("import", str(root / "hh-train.jsonl"), "--project", project).strip())
    print(run("import", str(root / "hh-test.jsonl"), "--project", project, "--test").strip())
    print(run("train", "--project", project, "--mode", "head", "--quiet").strip().splitlines()[-1])
    print(run("train", "--project", project, "--mode", "head", "--epochs", "60", "--quiet").strip().splitlines()[-1])
    report = root / "report"
    print(run("eval", "--project", project, "--run", "2", "--against", "1", "--report", str(report)))
    result = json.loads(run("eval", "--project", project, "--run", "2", "--json"))
    cal = result["calibration"]
    print(
        f"held-out ECE: {cal['raw']['ece']:.4f} at T=1, {cal['scaled']['ece']:.4f} at T={cal['temperature']:.3f} "
        f"(fitted on the run's validation pairs); loss {result['overall']['loss']:.4f} -> {cal['loss_scaled']:.4f}"
    )
    model = root / "rm-2"
    run("export-model", "--project", project, "--run", "2", "--out", str(model), "--overwrite")
    scored = root / "scored.jsonl"
    run("score", "--model", str(model), "--input", str(root / "hh-test.jsonl"), "--out", str(scored), "--quiet")
    frame = pd.read_json(scored, lines=True)
    hand = int((frame["score_chosen"] > frame["score_rejected"]).sum())
    by_eval = json.loads(run("eval", "--model", str(model), "--input", str(root / "hh-test.jsonl"), "--json"))
    o = by_eval["overall"]
    print(
        f"score + hand count: {hand} of {len(frame)} right ({hand / len(frame):.4f}); "
        f"eval --model --input: {o['correct']} of {o['n']} ({o['accuracy']:.4f}); "
        f"{'the same' if (hand, len(frame)) == (o['correct'], o['n']) else 'DIFFERENT'}"
    )
    print(f"report: {report / 'report.md'}")


if __name__ == "__main__":
    main()
