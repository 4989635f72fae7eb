"""Export a trained run as a Hugging Face folder: the reward model, the app's output besides datasets.

    result = export_run("p.wbp", run_id=3, out_dir="rm-3")
    # rm-3/: config.json, model.safetensors, tokenizer files, README.md (model card),
    #        reward_model.json (how inputs are built), training_run.json (the run, machine-readable)

The card's YAML carries what the Hub and TRL read (``base_model``, ``datasets``, ``license`` from the
backbone's own card, ``model-index`` metrics); the tokenizer carries the app's input format as a
``chat_template`` (``model.PLAIN_JOIN_TEMPLATE``) and ``config.json`` the reward mean and standard deviation
over the training responses (``reward_mean``/``reward_std``, and OpenRLHF's ``mean``/``std``).

What happens, in order:

1. the run is looked up and refused with a message that says what to do when it is unknown, failed, or
   has no checkpoint (:func:`check_run`);
2. its model is rebuilt from its latest checkpoint (:func:`load_run_model`, a thin wrapper over
   ``checkpoint.load_trained_model``: backbone from the folder its config names, LoRA adapters when it
   used them, the trained parameters copied in);
3. ``model.export_hf`` folds the head into a stock ``*ForSequenceClassification`` (LoRA merged) and
   checks it against the live model on a probe batch before it writes anything;
4. the written folder is loaded back with transformers alone (``scoring.Scorer``) and scores a sample
   of the run's pairs, which are compared with the scores the app stored at the same step
   (``Project.pair_scores``), to 1e-5 on the CPU. Only then is the folder moved to ``out_dir``.

Everything is written to a hidden folder beside ``out_dir`` and renamed into place, so a failed export
leaves nothing half-written. A non-empty ``out_dir`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core.outputs import check_output_path
from workbench.core.store import Project

#: statuses whose checkpoint is a complete model; "failed" is refused, "running" gets a warning
_EXPORTABLE = ("finished", "cancelled", "stopped", "paused", "running")
#: the bundled backbone's public name, for the card's metadata
_MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"

Progress = Callable[[str], None]


class RunExportError(ValueError):
    """The run cannot be exported; the message says why and what to do (a user error, one line)."""


@dataclass
class ExportResult:
    out_dir: Path
    run_id: int
    step: int
    status: str
    #: pairs whose exported scores were compared with the app's stored scores (0: none stored at ``step``)
    checked_pairs: int = 0
    #: the largest |exported - app| over those pairs' two scores
    max_abs_diff: float | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------- the run and its model
def check_run(project: Project, run_id: int) -> dict[str, Any]:
    """The run's row, or RunExportError for an unknown, failed or checkpoint-less run."""
    where = project.path.name
    try:
        run = project.run(run_id)
    except KeyError:
        ids = [int(i) for i in project.runs()["id"]]
        known = (
            f"its runs are {', '.join(map(str, ids))}"
            if ids
            else f"it has no runs yet: train one with `workbench train --project {project.path}`"
        )
        raise RunExportError(f"there is no run {run_id} in {where}; {known}") from None
    status = run["status"]
    if status == "failed":
        why = f" ({run['message']})" if run.get("message") else ""
        raise RunExportError(
            f"run {run_id} failed{why}, so it has no trained model to export; fix the cause and "
            f"start a new run with `workbench train --project {project.path}`"
        )
    if status not in _EXPORTABLE:
        raise RunExportError(f"run {run_id} has status {status!r}, which cannot be exported")
    from workbench.training import checkpoint

    if checkpoint.latest(project.checkpoint_dir(run_id)) is None:
        raise RunExportError(
            f"run {run_id} has no checkpoint (it stopped before its first epoch ended, or its checkpoint folder "
            f"{project.checkpoint_dir(run_id)} was removed); resume it with `workbench train --project "
            f"{project.path} --resume {run_id}` or start a new run"
        )
    return run


def load_run_model(project_path: str | os.PathLike, run_id: int, device: str = "cpu") -> tuple[Any, Any, Any, int]:
    """(RewardModel in eval mode, tokenizer, TrainConfig, checkpoint step) of run ``run_id`` of a project.

    "Load the model of run N from project P": the run is checked first (:func:`check_run`), then
    ``checkpoint.load_trained_model`` rebuilds it from the latest checkpoint.
    """
    from workbench.training import checkpoint

    with Project.open(project_path) as project:
        check_run(project, run_id)
        run_dir = project.checkpoint_dir(run_id)
    try:
        step = int(json.loads((run_dir / checkpoint.LATEST).read_text(encoding="utf-8"))["step"])
        model, tokenizer, config = checkpoint.load_trained_model(run_dir, device=device)
    except (checkpoint.CheckpointError, OSError, json.JSONDecodeError, KeyError) as exc:
        raise RunExportError(f"run {run_id}: cannot load its checkpoint ({exc}); start a new run") from None
    return model, tokenizer, config, step


# --------------------------------------------------------------------- export
def export_run(
    project_path: str | os.PathLike,
    run_id: int,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    verify_pairs: int = 16,
    progress: Progress | None = None,
) -> ExportResult:
    """Write run ``run_id`` of the project as a Hugging Face folder at ``out_dir``; see the module doc."""
    from workbench.training.model import BackboneError, ExportError, export_hf

    t0 = time.perf_counter()
    say = progress or (lambda message: None)
    out = check_output_path(out_dir, kind="dir")
    if out.exists() and not out.is_dir():
        raise RunExportError(f"{out} is a file; give a folder to write the model into")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise RunExportError(f"{out} is not empty; choose a new folder or pass --overwrite to replace it")
        if not (out / "reward_model.json").is_file():  # --overwrite never deletes a folder of other files
            raise RunExportError(
                f"{out} holds files that are not an exported model, so --overwrite will not "
                "replace it; choose a new or empty folder"
            )
    project_path = Path(project_path)
    with Project.open(project_path) as project:
        run = check_run(project, run_id)
        facts = _run_facts(project, run_id, run)
    warnings = []
    if run["status"] == "running":
        warnings.append(
            f"run {run_id} is still marked running (being trained, or its process was killed); "
            "exporting its last checkpoint"
        )

    say(f"loading run {run_id}")
    try:
        model, tokenizer, config, step = load_run_model(project_path, run_id)
    except BackboneError as exc:
        raise RunExportError(f"run {run_id}'s backbone cannot be loaded: {exc}") from None
    facts["checkpoint_step"] = step
    summary_step = (run.get("summary") or {}).get("steps")
    if summary_step is not None and summary_step != step:
        warnings.append(f"the checkpoint is at step {step}, the run's summary at step {summary_step}")
    if facts["n_overlong"] is None:
        facts["n_overlong"] = _count_overlong(project_path, run, tokenizer, config.max_length)

    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        say("writing the Hugging Face folder")
        card = model_card(facts, config, run, evaluation_metrics(project_path, run_id, run))
        try:
            export_hf(model, tokenizer, tmp, card, max_length=config.max_length)
        except ExportError as exc:
            raise RunExportError(f"run {run_id}: {exc}") from None
        (tmp / "training_run.json").write_text(json.dumps(_jsonable(facts), indent=2) + "\n", encoding="utf-8")
        _add_reward_stats(tmp / "config.json", project_path, run_id, step)
        add_temperature(tmp, run)
        del model
        say("checking the exported folder against the app's scores")
        checked, diff = _verify_against_app(project_path, run_id, run, step, tmp, verify_pairs)
        _swap_in(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(out, run_id, step, run["status"], checked, diff, warnings, time.perf_counter() - t0)


def _swap_in(new: Path, out: Path) -> None:
    """Move the finished folder ``new`` to ``out``; what was at ``out`` (an empty folder or, with --overwrite,
    an earlier export) is removed only once the new folder is in place, and put back if the move fails."""
    old = out.parent / f".{out.name}.replaced-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    try:
        os.replace(new, out)
    except OSError:
        if old.exists():
            os.replace(old, out)
        raise
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)


def _verify_against_app(
    project_path: Path, run_id: int, run: dict, step: int, folder: Path, n: int
) -> tuple[int, float | None]:
    """Score up to ``n`` of the run's pairs with the exported folder (transformers alone) and compare
    with the scores the trainer stored at ``step``. Returns (pairs checked, max abs diff).

    The tolerance is relative to the scores' scale: |Δ| ≤ 1e-5 · max(1, max |r|) over the checked scores on
    the CPU (1e-3 of max |r| after a GPU run). The folding is exact (the same pairs batched as the trainer batched them
    score bit for bit alike), but the app's scores come from embeddings computed in other batches, with other
    padding, so float32 rounding differs; a head's output sums terms of the size of the largest rewards,
    so that rounding grows with them, not with each score (a small score can be a large cancellation). An
    MLP head on 300 HH pairs, rewards up to 68, differed by 7.3e-5 (1.1e-6 of the scale; each side is as far
    from a float64 computation); a fixed 1e-5 refused it."""
    if n <= 0:
        return 0, None
    import numpy as np

    from workbench.training import data
    from workbench.training.scoring import Scorer

    with Project.open(project_path) as project:
        stored = project.pair_scores(run_id, step)
        # A fine-tune's training-split scores at an epoch's end come from that epoch's passes (each pair under
        # the model of its own step, ``evaluate.evaluate``): only freshly scored pairs can match the final model.
        passes = bool((run.get("summary") or {}).get("train_scores_from_passes"))
        stored = stored[stored["split"].isin(["val"] if passes else ["train", "val"])]
        if stored.empty:
            return 0, None
        try:
            pairs, _ = data.pairs_from_snapshot(project.comparisons_frame(), run["data_snapshot"])
        except data.DataError:
            return 0, None  # the pairs were deleted since: nothing to compare with
    position = {int(c): i for i, c in enumerate(pairs.comparison_ids)}
    stored = stored[stored["comparison_id"].isin(list(position))]
    if stored.empty:
        return 0, None
    # A spread of pairs: evenly spaced over the run's pairs, so short, long and truncated ones all appear.
    pick = np.unique(np.linspace(0, len(stored) - 1, num=min(n, len(stored))).round().astype(int))
    rows = stored.iloc[pick]
    index = [position[int(c)] for c in rows["comparison_id"]]
    scorer = Scorer.load(folder)
    prompts = [pairs.prompts[i] for i in index]
    got = scorer.score(prompts + prompts, [pairs.chosen[i] for i in index] + [pairs.rejected[i] for i in index])
    want = np.concatenate([rows["r_chosen"].to_numpy(), rows["r_rejected"].to_numpy()])
    diff = float(np.abs(got - want).max())
    on_gpu = str((run.get("summary") or {}).get("device", "cpu")).startswith(("cuda", "mps"))
    # A run trained (and evaluated) on a GPU used other kernels (TF32, fused attention): 1e-3 relative there.
    scale = float(np.abs(want).max())
    tolerance = max(1e-5 * max(1.0, scale), 1e-3 * scale if on_gpu else 0.0)
    if diff > tolerance:
        raise RunExportError(
            f"run {run_id}: the exported model's scores differ from the app's stored scores by {diff:.2e} (more "
            f"than {tolerance:.1e}); nothing was written. Has the backbone folder {run['config'].get('backbone')} "
            "changed since the run was trained?"
        )
    return len(index), diff


def reward_stats(project_path: Path, run_id: int, step: int) -> dict[str, float] | None:
    """Mean and standard deviation of the app's rewards over the training split's responses (chosen and
    rejected) at ``step``; None when no scores were stored there."""
    import numpy as np

    with Project.open(project_path) as project:
        scores = project.pair_scores(run_id, step)
    train = scores[scores["split"] == "train"]
    if train.empty:
        return None
    rewards = np.concatenate([train["r_chosen"].to_numpy(float), train["r_rejected"].to_numpy(float)])
    return {"reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()), "n": int(len(rewards))}


def _add_reward_stats(config_path: Path, project_path: Path, run_id: int, step: int) -> None:
    """Write the reward statistics into config.json: ours, and the ``mean``/``std`` keys OpenRLHF reads with
    ``normalize_reward`` (off: the scores stay the app's raw scores)."""
    stats = reward_stats(project_path, run_id, step)
    if stats is None:
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(
        reward_mean=stats["reward_mean"],
        reward_std=stats["reward_std"],
        reward_stats_over=f"{stats['n']} training responses (chosen and rejected) at step {step}",
        mean=stats["reward_mean"],
        std=stats["reward_std"],
        normalize_reward=False,
    )
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --------------------------------------------------------------------- the model card
def _run_facts(project: Project, run_id: int, run: dict) -> dict[str, Any]:
    """What the card reports: data counts, annotators, labels, metrics (plain JSON-able values)."""
    snapshot = run.get("data_snapshot") or {}
    summary = run.get("summary") or {}
    ids = [int(j) for j in snapshot.get("judgment_ids", [])]
    # Who labelled the trained pairs: one grouped query (the judgment log would carry every text along).
    annotators = Counter(project.judgment_annotators(ids).values())
    strengths = Counter("unset" if s is None else int(s) for s in snapshot.get("strengths", []))
    choices = Counter(snapshot.get("choices", ""))
    stats = project.statistics()
    metrics = project.run_metrics(run_id)
    last_val: dict[str, float] = {}
    val = metrics[metrics["split"] == "val"]
    if len(val):
        at = val["step"].max()
        last_val = {str(k): float(v) for k, v in zip(val[val["step"] == at]["name"], val[val["step"] == at]["value"])}
    n_pairs = int(snapshot.get("n_pairs", len(snapshot.get("comparison_ids", []))))
    n_val = int(snapshot.get("n_val", len(snapshot.get("val_comparison_ids", []))))
    return {
        "project": project.name,
        "project_file": project.path.name,
        "run_id": run_id,
        "status": run["status"],
        "message": run.get("message") or "",
        "mode": run["mode"],
        "backbone": run["backbone"],
        "created_at": run.get("created_at"),
        "finished_at": run.get("finished_at"),
        "n_pairs": n_pairs,
        "n_train": n_pairs - n_val,
        "n_val": n_val,
        "n_excluded": int(snapshot.get("n_excluded", 0)),
        "n_overlong": summary.get("n_overlong"),
        "annotators": dict(annotators.most_common()),
        "preferred_side": {"a": choices.get("a", 0), "b": choices.get("b", 0)},
        "strengths": {str(k): v for k, v in sorted(strengths.items(), key=lambda kv: str(kv[0]))},
        "project_labels": stats.get("labels", {}),
        "project_comparisons": stats.get("comparisons"),
        "summary": summary,
        "val_metrics": last_val,
    }


def _count_overlong(project_path: Path, run: dict, tokenizer: Any, max_length: int) -> int | None:
    """Pairs of the run with a response longer than max_length (when the run's summary lacks it)."""
    import numpy as np

    from workbench.training import data
    from workbench.training.model import PairEncoder

    with Project.open(project_path) as project:
        try:
            pairs, _ = data.pairs_from_snapshot(project.comparisons_frame(), run["data_snapshot"])
        except data.DataError:
            return None
    encoder = PairEncoder(tokenizer, max_length)
    c = data.encode_sides(encoder, pairs.prompts, pairs.chosen)
    r = data.encode_sides(encoder, pairs.prompts, pairs.rejected)
    return int(np.count_nonzero(c.overlong | r.overlong))


def model_card(facts: dict[str, Any], config: Any, run: dict, metrics: dict[str, dict[str, Any]] | None = None) -> str:
    """The README.md text above ``export_hf``'s "Scoring" section: metadata, data, metrics (``model-index``
    from ``metrics``, :func:`evaluation_metrics`; the validation figures when None), config."""
    s = facts["summary"]
    v = facts["val_metrics"]
    backbone_card = _backbone_card(str(facts["backbone"]))
    base = _MINILM_HUB if str(facts["backbone"]).strip().lower() == "minilm" else backbone_card.get("base_model")
    if isinstance(base, list):
        base = base[0] if base else None
    name = f"run {facts['run_id']} of {facts['project']}"
    if metrics is None:
        metrics = {"validation": {"accuracy": s.get("val_accuracy"), "loss": s.get("val_loss")}}
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["reward-model", "preference-workbench"],
    }
    if base:
        meta["base_model"] = str(base)
    if backbone_card.get("license"):
        meta["license"] = backbone_card["license"]
    meta["datasets"] = [str(facts["project"])]
    index = model_index(name, str(facts["project"]), metrics)
    if index:
        meta["model-index"] = index
    import yaml

    front = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---"]
    backbone = f"{facts['backbone']} ({base})" if base else str(facts["backbone"])
    mode = facts["mode"] + (" with LoRA (merged into the weights)" if config.lora else "")
    if facts["mode"] == "head":
        mode += f" (frozen backbone, {config.head} head, folded into the classifier)"
    lines = [
        *front,
        "",
        f"# Reward model: run {facts['run_id']} of {facts['project']}",
        "",
        f"A scalar reward model trained with Preference Workbench on the project `{facts['project_file']}`.",
        "",
        f"- Backbone: {backbone}",
        f"- Mode: {mode}",
        f"- Run status: {facts['status']}"
        + (f" ({facts['message']})" if facts["message"] else "")
        + f"; exported from the checkpoint at step {facts.get('checkpoint_step', '?')}",
        "",
        "## Data",
        "",
        "| | pairs |",
        "|---|---:|",
        f"| trained on (preferences A or B) | {facts['n_pairs']} |",
        f"| training split | {facts['n_train']} |",
        f"| validation split (by prompt, seed {config.seed}) | {facts['n_val']} |",
        f"| excluded by the user | {facts['n_excluded']} |",
        (
            f"| over-length (response alone longer than {config.max_length} tokens; kept, cut from the left) "
            f"| {_fmt(facts['n_overlong'])} |"
        ),
        "",
        "Annotators of the trained pairs: "
        + (", ".join(f"{name} ({n})" for name, n in facts["annotators"].items()) or "none recorded")
        + ".",
        "",
        "Labels in the project at export time (current label per annotator): "
        + ", ".join(f"{k} {n}" for k, n in facts["project_labels"].items())
        + ".",
        f"Preferred side of the trained pairs: A {facts['preferred_side']['a']}, B {facts['preferred_side']['b']}; "
        "strengths (4 = significantly better ... 1 = negligibly): "
        + ", ".join(f"{k}: {n}" for k, n in facts["strengths"].items())
        + ".",
        "",
        "## Metrics",
        "",
        "Accuracy counts a pair as right only when r(chosen) > r(rejected) strictly (ties are wrong).",
        "",
        "| | validation | training |",
        "|---|---:|---:|",
        f"| accuracy | {_fmt(s.get('val_accuracy'))} | {_fmt(s.get('train_accuracy'))} |",
        f"| loss | {_fmt(s.get('val_loss'))} | {_fmt(s.get('train_loss'))} |",
        f"| mean margin r(chosen) - r(rejected) | {_fmt(v.get('margin'))} | |",
        f"| ties | {_fmt(s.get('val_ties'))} | |",
        "",
        (
            f"- Steps: {_fmt(s.get('steps'))} of {_fmt(s.get('total_steps'))} ({_fmt(s.get('epochs'))} epochs of "
            f"{_fmt(s.get('batch_size'))} pairs); learning rate {_fmt(s.get('learning_rate'))}"
        ),
        f"- Time: {_fmt(s.get('time_s'))} s in all, {_fmt(s.get('train_s'))} s in steps "
        f"({_fmt(s.get('pairs_per_s'))} pairs/s) on {s.get('device', '?')}"
        + (
            f"; {s.get('embedded_texts')} texts embedded in {_fmt(s.get('embed_s'))} s"
            if facts["mode"] == "head"
            else ""
        ),
        "",
        "## Training configuration",
        "",
        "```json",
        json.dumps(config.to_dict(), indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def model_index(name: str, dataset: str, metrics: dict[str, dict[str, Any]]) -> list[dict]:
    """The card's ``model-index`` block from any metrics dict ``{split: {metric: value}}`` (validation today;
    a test split's metrics slot in as another split). Missing values are left out; [] when none remain."""
    results = []
    for split, values in metrics.items():
        entries = [
            {"type": metric, "value": round(float(value), 6), "name": f"{split} {metric.replace('_', ' ')}"}
            for metric, value in values.items()
            if value is not None and math.isfinite(float(value))
        ]
        if entries:
            results.append(
                {
                    "task": {"type": "text-classification", "name": "Reward modeling"},
                    "dataset": {"name": dataset, "type": dataset, "split": split},
                    "metrics": entries,
                }
            )
    return [{"name": name, "results": results}] if results else []


def _backbone_card(backbone: str) -> dict[str, Any]:
    """The YAML of the backbone folder's own README (its ``license``, ``base_model``); {} when it has none."""
    from workbench.core.hub import read_card_yaml
    from workbench.training.model import BackboneError, resolve_backbone_path

    try:
        folder = Path(resolve_backbone_path(backbone))
    except BackboneError:
        return {}
    return read_card_yaml(folder / "README.md")


# --------------------------------------------------------------------- evaluation figures
def add_temperature(folder: Path, run: dict) -> None:
    """The run's fitted temperature into ``config.json`` and ``reward_model.json``, so that a user turns a
    margin into a probability: p = sigmoid((r_a - r_b) / temperature)."""
    temperature = ((run.get("summary") or {}).get("calibration") or {}).get("temperature")
    if temperature is None:
        return
    for name in ("config.json", "reward_model.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            data["temperature"] = float(temperature)
            path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def evaluation_metrics(project_path: Path, run_id: int, run: dict) -> dict[str, dict[str, Any]]:
    """The card's figures as ``{split: {metric: value}}``: the run's ``workbench eval`` result on the
    project's test split when it has one, else its validation figures; the fitted temperature and the ECE
    before and after it either way."""
    from workbench.training.eval_run import EvalError, evaluate

    summary = run.get("summary") or {}
    cal = summary.get("calibration") or {}
    try:
        result: dict[str, Any] | None = evaluate(project=project_path, run=run_id)[0]
    except (EvalError, ValueError):  # no test split, or nothing labelled in it
        result = None
    if result is None:
        return {
            "validation": {
                "accuracy": summary.get("val_accuracy"),
                "loss": summary.get("val_loss"),
                "ece": cal.get("val_ece"),
                "ece_at_temperature": cal.get("val_ece_scaled"),
                "temperature": cal.get("temperature"),
            }
        }
    o, c, length = result["overall"], result["calibration"], result["length"]
    low, high = o.get("accuracy_ci") or (None, None)
    return {
        "test": {
            "accuracy": o["accuracy"],
            "accuracy_ci_low": low,
            "accuracy_ci_high": high,
            "loss": o["loss"],
            "ece": c["raw"]["ece"],
            "ece_at_temperature": (c.get("scaled") or {}).get("ece"),
            "longer_wins_baseline_accuracy": length["longer_baseline_accuracy"],
            "prefers_longer_rate": length["model_prefers_longer"],
            "temperature": cal.get("temperature"),
        }
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value
