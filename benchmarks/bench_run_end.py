"""What scoring the unlabelled comparisons on demand (issue 16) saves at a run's end, before/after in one call.

    python benchmarks/bench_run_end.py [--before REV] [--labelled 300] [--unlabelled 1500] [--mode head]

One project: the first ``--labelled`` pairs of ../shared/data/hh-harmless-dev as labelled pairs, the next
``--unlabelled`` as comparisons without a label (imported for labelling). The same run (MiniLM, ``--mode``) is
trained twice, each in a fresh process on a fresh copy of the project (no embedding cache carried over): with
the code of git revision ``--before`` (default: the commit before issue 16, which scored every unlabelled
comparison at the run's end) and with this checkout. Prints each run's wall time from start to Finished and
from its last training step to Finished (the run's end), the ratios, and what ``evaluate.score_missing`` then
costs when a queue asks for those scores (the work moved, not removed: paid once, only when asked).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HH = REPO.parent / "shared" / "data" / "hh-harmless-dev.jsonl.gz"
BEFORE = "58f519e"  # the last commit whose runs scored the unlabelled comparisons at their end


def make_project(path: Path, labelled: int, unlabelled: int) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from common import load_hh_pairs

    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project

    pairs = load_hh_pairs(HH, limit=labelled + unlabelled)
    if len(pairs) < labelled + unlabelled:
        raise SystemExit(f"{HH} has {len(pairs)} pairs; ask for fewer")
    records = [
        PairRecord(Text(p["prompt"]), Text(p["chosen"]), Text(p["rejected"]), choice="a") for p in pairs[:labelled]
    ]
    records += [PairRecord(Text(p["prompt"]), Text(p["rejected"]), Text(p["chosen"])) for p in pairs[labelled:]]
    with Project.create(path) as project:
        project.add_records(records, source="hh-harmless-dev")


def child(project: str, mode: str, epochs: int, on_demand: bool) -> dict:
    """One run in this process (whose ``workbench`` is the tree under test); its timings as a dict."""
    from workbench.training.config import TrainConfig
    from workbench.training.events import Finished, StepMetrics
    from workbench.training.trainer import Trainer, warm_up_torch

    warm_up_torch()
    t0 = time.perf_counter()
    last_step = None
    finished = None
    for event in Trainer(project, TrainConfig(mode=mode, epochs=epochs, threads=1)).events():
        if isinstance(event, StepMetrics):
            last_step = time.perf_counter()
        if isinstance(event, Finished):
            finished = event
    t1 = time.perf_counter()
    assert finished is not None and finished.status == "finished", finished
    out = {
        "run_s": t1 - t0,
        "end_s": t1 - (last_step or t0),
        "unlabelled_scored_at_end": finished.summary.get("n_unlabelled_scored"),
    }
    if on_demand:
        from workbench.training.evaluate import score_missing

        t2 = time.perf_counter()
        out["on_demand_scored"] = score_missing(project, finished.run_id)
        out["on_demand_s"] = time.perf_counter() - t2
    return out


def timed(tree: Path, project: Path, args: argparse.Namespace, on_demand: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(project), "--mode", args.mode]
    command += ["--epochs", str(args.epochs)] + (["--on-demand"] if on_demand else [])
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the run with {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git revision of the code that scored at the end")
    parser.add_argument("--labelled", type=int, default=300)
    parser.add_argument("--unlabelled", type=int, default=1500)
    parser.add_argument("--mode", default="head", choices=["head", "finetune"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--on-demand", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.mode, args.epochs, args.on_demand)))
        return
    with tempfile.TemporaryDirectory(prefix="wb-run-end-") as tmp:
        root = Path(tmp)
        before_tree = root / "before"
        before_tree.mkdir()
        archive = subprocess.run(["git", "archive", args.before], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before_tree)], input=archive, check=True)
        sys.path.insert(0, str(REPO))
        make_project(root / "base.wbp", args.labelled, args.unlabelled)
        results = {}
        for name, tree, on_demand in (("before", before_tree, False), ("after", REPO, True)):
            project = root / f"{name}.wbp"
            shutil.copy(root / "base.wbp", project)
            results[name] = timed(tree, project, args, on_demand)
            print(
                f"{name:>6}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in results[name].items()})}",
                flush=True,
            )
    b, a = results["before"], results["after"]
    print(
        f"{args.mode} run, MiniLM, {args.labelled} labelled pairs, {args.unlabelled:,} unlabelled comparisons: "
        f"run {b['run_s']:.1f} s -> {a['run_s']:.1f} s ({a['run_s'] / b['run_s']:.2f}x), its end (last step to "
        f"Finished) {b['end_s']:.1f} s -> {a['end_s']:.1f} s ({b['end_s'] - a['end_s']:.1f} s saved); scoring them "
        f"on demand afterwards: {a['on_demand_s']:.1f} s for {a['on_demand_scored']:,} comparisons"
    )


if __name__ == "__main__":
    main()
