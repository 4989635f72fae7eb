"""What scoring the unlabelled comparisons on demand (issue 16) saves at a run's end, before/after in one call.

    python benchmarks/bench_run_end.py [--before REV] [--labelled 300] [--unlabelled 1500] [--mode head]

One project: the first ``--labelled`` pairs of ../shared/data/hh-harmless-dev as labelled pairs, the next
``--unlabelled`` as comparisons without a label (imported for labelling). The same run (MiniLM, ``--mode``) is
trained twice, each in a fresh process on a fresh copy of the project (no embedding cache carried over): with
the code of git revision ``--before`` (default: the commit before issue 16, which scored every unlabelled
comparison at the run's end) and with this checkout. Prints each run's wall time from start to Finished and
from its last training step to Finished (the run's end), the ratios, and what ``evaluate.score_missing`` then
costs when a queue asks for those scores (the work moved, not removed: paid once, only when asked).

    python benchmarks/bench_run_end.py --scoring [--labelled 300] [--unlabelled 500]

What a head run's on-demand scoring costs through the embedding cache, against the full-model path it replaced,
on the same data and the same run (one head run with this checkout, in a fresh process): the full model on the
unlabelled comparisons' tokens (``export.load_run_model`` + ``evaluate.score_tokens``, what ``score_missing``
did in both modes before), ``score_missing`` with the cache cold (their texts never embedded: one backbone pass,
then cached) and warm (a copy of the project, run and checkpoint included, whose cache holds them: no backbone
pass). Each timing includes loading the run's model; the scores of all three are checked equal (1e-5).
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


def full_model_scores(project: Path, run_id: int) -> tuple[list[int], list[float], list[float]]:
    """The path ``score_missing`` took in both modes before: the run's whole model on every unlabelled
    comparison's tokens (each distinct text once, length-sorted batches); nothing is written."""
    import torch

    from workbench.core.store import Project
    from workbench.training import data
    from workbench.training.evaluate import score_comparison_tokens
    from workbench.training.export import load_run_model
    from workbench.training.model import PairEncoder
    from workbench.training.run_control import RunControl

    with Project.open(project) as p:
        unl = data.unlabelled_from_frame(p.comparisons_frame(p.unscored_comparison_ids(run_id)), [])
    model, tokenizer, config, _ = load_run_model(project, run_id)
    encoder = PairEncoder.for_model(model, tokenizer, config.max_length)
    gen = score_comparison_tokens(
        model, encoder, config, unl, device=torch.device("cpu"), control=RunControl(), run_id=run_id
    )
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            r_a, r_b = stop.value
            break
    return unl.comparison_ids.tolist(), r_a.tolist(), r_b.tolist()


def copy_project(src: Path, dst: Path) -> None:
    """A project file with its checkpoints folder (a run's model lives beside the file)."""
    shutil.copy(src, dst)
    shutil.copytree(src.with_name(src.name + ".checkpoints"), dst.with_name(dst.name + ".checkpoints"))


def child_scoring(project: Path, epochs: int) -> dict:
    """One head run on ``project``, then its unlabelled comparisons scored three ways (see the module doc)."""
    import numpy as np

    from workbench.core.store import Project
    from workbench.training import data
    from workbench.training.config import TrainConfig
    from workbench.training.evaluate import score_missing
    from workbench.training.events import Finished
    from workbench.training.model import PairEncoder, load_tokenizer, resolve_backbone_path
    from workbench.training.trainer import Trainer, warm_up_torch

    warm_up_torch()
    cfg = TrainConfig(mode="head", epochs=epochs, threads=1)
    finished = [e for e in Trainer(str(project), cfg).events() if isinstance(e, Finished)][-1]
    assert finished.status == "finished", finished
    run_id = finished.run_id
    warm = project.with_name("warm.wbp")
    copy_project(project, warm)  # no unlabelled score yet; its cache is filled below

    t0 = time.perf_counter()
    ids, full_a, full_b = full_model_scores(project, run_id)
    full_s = time.perf_counter() - t0
    counts: list = []
    t0 = time.perf_counter()
    n_cold = score_missing(project, run_id, device="cpu", embedding_counts=counts.append)
    cold_s = time.perf_counter() - t0

    # the warm copy's cache gets the vectors the cold call computed (what any earlier run or scoring leaves)
    with Project.open(project) as p:
        frame = p.comparisons_frame(ids)
    encoder = PairEncoder(load_tokenizer(resolve_backbone_path(cfg.backbone)), cfg.max_length)
    texts = [
        encoder.text(q, r)[0] for side in ("response_a", "response_b") for q, r in zip(frame["prompt"], frame[side])
    ]
    key = data.embedding_key(resolve_backbone_path(cfg.backbone), "first_token", cfg.max_length)
    with Project.open(project) as p:
        vectors = p.cached_embeddings(key, [data.text_hash(t) for t in texts])
    with Project.open(warm) as p:
        p.store_embeddings(key, vectors)
    t0 = time.perf_counter()
    n_warm = score_missing(warm, run_id, device="cpu", embedding_counts=counts.append)
    warm_s = time.perf_counter() - t0

    full = np.r_[full_a, full_b]
    diffs = []
    for path in (project, warm):
        with Project.open(path) as p:
            s = p.pair_scores(run_id).set_index("comparison_id").loc[ids]
        diffs.append(float(np.abs(np.r_[s["r_chosen"], s["r_rejected"]] - full).max()))
    return {
        "comparisons": len(ids),
        "distinct_texts": len(set(texts)),
        "scored": [n_cold, n_warm],
        "full_s": full_s,
        "cold_s": cold_s,
        "warm_s": warm_s,
        "cold_embedded": counts[0].embedded_texts,
        "warm_embedded": counts[1].embedded_texts,
        "warm_cached": counts[1].cached_texts,
        "max_diff_vs_full": max(diffs),
        "score_scale": float(np.abs(full).max()),
    }


def scoring(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="wb-scoring-") as tmp:
        project = Path(tmp) / "scoring.wbp"
        sys.path.insert(0, str(REPO))
        make_project(project, args.labelled, args.unlabelled)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(project), "--scoring"]
        done = subprocess.run(
            [*command, "--epochs", str(args.epochs)], env=env, cwd=REPO, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"the scoring run failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()}))
    print(
        f"head run, MiniLM, {args.labelled} labelled pairs; on-demand scoring of {r['comparisons']:,} unlabelled "
        f"comparisons ({r['distinct_texts']:,} distinct texts), same run: full model {r['full_s']:.1f} s, "
        f"cache cold {r['cold_s']:.1f} s ({r['full_s'] / r['cold_s']:.2f}x), cache warm {r['warm_s']:.1f} s "
        f"({r['full_s'] / r['warm_s']:.1f}x faster than the full model; {r['warm_embedded']} texts embedded); "
        f"scores equal to {r['max_diff_vs_full']:.1e} (scale {r['score_scale']:.2f})"
    )


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
    parser.add_argument(
        "--scoring", action="store_true", help="head mode: on-demand scoring, cache warm/cold vs the full model"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--on-demand", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.scoring:
            print(json.dumps(child_scoring(Path(args.child), args.epochs)))
        else:
            print(json.dumps(child(args.child, args.mode, args.epochs, args.on_demand)))
        return
    if args.scoring:
        scoring(args)
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
