"""``workbench eval`` and the Train view's Evaluation panel: which pairs, which model, which margins.

    result = evaluate(project="p.wbp")                          # latest finished run, the project's test split
    result = evaluate(project="p.wbp", run=7, against=5)        # two runs on the same pairs (McNemar, paired CI)
    result = evaluate(model="rm-7", input="rewardbench.jsonl")  # an exported folder on a labelled file

The figures themselves are ``core.evaluation`` (torch-free); this module finds the pairs and their margins:

- the pairs: the project's test split (``Project.test_pairs``), or any labelled file (``--input``, read as
  ``workbench score`` reads it, so the margins are those its ``score_chosen - score_rejected`` give);
- the margins of a run on its project's test pairs are *read* from its stored scores (``pair_scores``); test
  pairs a finished run has no score for yet (a run scores the comparisons it did not train on only when asked,
  and not those imported after it) are scored once with its checkpoint and stored
  (``evaluate.score_missing``, split "unlabelled"), so that the next evaluation reads them. An exported
  folder, or a run on a file, scores;
- the temperature is the run's (fitted on its validation pairs when it finished, in its summary) or the
  exported folder's (``config.json``'s ``temperature``).

Results are plain JSON-able dicts (they cross the training process's pipe to the GUI) plus, on request, a
per-pair frame. torch is imported only when something must be scored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.core import evaluation
from workbench.core.store import Project, ProjectError

Say = Callable[[str], None]


class EvalError(ValueError):
    """The evaluation cannot be done as asked; the message says what to do."""


@dataclass
class Model:
    """One model to evaluate: a run of the project, or an exported folder."""

    label: str
    run_id: int | None = None
    folder: str | None = None
    temperature: float | None = None
    run: dict | None = None


def latest_finished_run(project: Project) -> int:
    runs = project.runs()
    done = runs[runs["status"] == "finished"]
    if done.empty:
        raise EvalError(
            f"{project.path.name} has no finished run to evaluate; train one with `workbench train --project "
            f"{project.path}` (or name one with --run)"
        )
    return int(done["id"].max())


def run_model(project: Project, run_id: int) -> Model:
    try:
        run = project.run(run_id)
    except KeyError:
        ids = ", ".join(str(int(i)) for i in project.runs()["id"]) or "none"
        raise EvalError(f"there is no run {run_id} in {project.path.name} (its runs: {ids})") from None
    if run["status"] == "failed":
        raise EvalError(f"run {run_id} failed, so it has no model to evaluate; start a new run")
    calibration = (run.get("summary") or {}).get("calibration") or {}
    return Model(f"run {run_id}", run_id=run_id, temperature=calibration.get("temperature"), run=run)


def _folder_model(folder: str | os.PathLike) -> Model:
    path = Path(folder)
    temperature = None
    try:
        temperature = json.loads((path / "config.json").read_text(encoding="utf-8")).get("temperature")
    except (OSError, ValueError):
        pass  # Scorer.load says what is wrong with the folder
    return Model(path.name, folder=str(path), temperature=temperature)


# ------------------------------------------------------------------------------------------ the pairs
def project_test_pairs(project: Project) -> pd.DataFrame:
    """The test split's labelled pairs, in the frame ``core.evaluation.evaluate_pairs`` reads."""
    df = project.test_pairs()
    if df.empty:
        sizes = project.split_sizes()
        why = (
            "its test split has no pair labelled A or B"
            if sizes["test"]
            else "it has no test split; import labelled pairs with `workbench import FILE --project P --test`"
        )
        raise EvalError(f"{project.path.name} has nothing to evaluate on: {why} (or evaluate a file with --input)")
    prompts = [m if m is not None else t for m, t in zip(df["prompt_messages"], df["prompt"])]
    chosen = [m if m is not None else t for m, t in zip(df["chosen_messages"], df["chosen"])]
    rejected = [m if m is not None else t for m, t in zip(df["rejected_messages"], df["rejected"])]
    return pd.DataFrame(
        {
            "comparison_id": df["comparison_id"].astype(int),
            "group": df["prompt_id"].astype(int),
            "prompt": df["prompt"],
            "chosen": df["chosen"],
            "rejected": df["rejected"],
            "_prompt": prompts,
            "_chosen": chosen,
            "_rejected": rejected,
            "chosen_side": df["chosen_side"],
            "subset": df["subset"],
            "source": df["source"],
            "annotator": df["annotator"],
            "strength": df["strength"],
        }
    )


def file_pairs(path: str | os.PathLike, format: str = "auto") -> pd.DataFrame:
    """The labelled pairs of a file, read exactly as ``workbench score`` reads it (row order kept)."""
    from workbench.training.scoring import read_scoring_input

    shape, table = read_scoring_input(path, format)
    if not table.labelled or table.score_names != ["score_chosen", "score_rejected"]:
        raise EvalError(
            f"{path}: its rows are {shape}, not labelled pairs; evaluation needs a chosen and a rejected response "
            "per row (explicit, implicit HH or conversational shapes)"
        )

    def plain(value: Any) -> str:
        return value if isinstance(value, str) else "\n\n".join(f"{m['role']}: {m['content']}" for m in value)

    prompts = [plain(p) for p in table.prompts]
    n = len(prompts)
    meta = table.metadata
    return pd.DataFrame(
        {
            "comparison_id": np.arange(n),  # the row number in the file
            "group": prompts,
            "prompt": prompts,
            "chosen": [plain(r[0]) for r in table.responses],
            "rejected": [plain(r[1]) for r in table.responses],
            "_prompt": table.prompts,
            "_chosen": [r[0] for r in table.responses],
            "_rejected": [r[1] for r in table.responses],
            "chosen_side": ["a"] * n,
            "subset": meta.get("subset", [None] * n),
            "source": [Path(path).name] * n,
            "annotator": meta.get("annotator", [None] * n),
            "strength": [None] * n,
        }
    )


# ------------------------------------------------------------------------------------------ the margins
def load_scorer(project_path: str | os.PathLike | None, model: Model) -> Any:
    """A ``scoring.Scorer`` for an exported folder or for a run's latest checkpoint (torch is imported here)."""
    from workbench.training.scoring import Scorer

    if model.folder is not None:
        return Scorer.load(model.folder)
    from workbench.training.export import load_run_model
    from workbench.training.model import PairEncoder, to_sequence_classifier

    assert project_path is not None and model.run_id is not None
    net, tokenizer, config, _ = load_run_model(project_path, model.run_id)
    return Scorer(
        to_sequence_classifier(net),
        tokenizer,
        PairEncoder.for_model(net, tokenizer, config.max_length),
        "cpu",
        Path(project_path),
        {},
    )


def stored_margins(project: Project, run_id: int, pairs: pd.DataFrame) -> np.ndarray:
    """r(chosen) - r(rejected) of each pair from the run's latest evaluation (NaN where it has none)."""
    scores = project.pair_scores(run_id)
    if scores.empty:
        return np.full(len(pairs), np.nan)
    # A stored row has the rewards of its own chosen side; turn them into r_a, r_b.
    is_a = scores["chosen"] == "a"
    r_a = np.where(is_a, scores["r_chosen"], scores["r_rejected"])
    r_b = np.where(is_a, scores["r_rejected"], scores["r_chosen"])
    by_id = pd.DataFrame({"r_a": r_a, "r_b": r_b}, index=scores["comparison_id"].astype(int))
    found = by_id.reindex(pairs["comparison_id"].astype(int))
    a_chosen = (pairs["chosen_side"] == "a").to_numpy()
    return np.where(a_chosen, found["r_a"] - found["r_b"], found["r_b"] - found["r_a"]).astype(np.float64)


def margins_of(
    model: Model, pairs: pd.DataFrame, *, project_path: str | os.PathLike | None, from_project: bool, say: Say
) -> tuple[np.ndarray, int]:
    """(margins, pairs scored now) of ``model`` on ``pairs``: read from the run's stored scores when the
    pairs are its project's, scored (only what is missing) otherwise."""
    margins = np.full(len(pairs), np.nan)
    if from_project and model.run_id is not None:
        with Project.open(project_path) as project:  # type: ignore[arg-type]
            margins = stored_margins(project, model.run_id, pairs)
        missing = np.flatnonzero(np.isnan(margins))
        if len(missing) and model.run is not None and model.run["status"] == "finished":
            from workbench.training.evaluate import score_missing

            say(f"{model.label}: scoring {len(missing):,} pairs (stored for the next evaluation)")
            score_missing(project_path, model.run_id, comparison_ids=pairs["comparison_id"].iloc[missing].tolist())  # type: ignore[arg-type]
            with Project.open(project_path) as project:  # type: ignore[arg-type]
                margins = stored_margins(project, model.run_id, pairs)
            if not np.isnan(margins).any():
                return margins, len(missing)
    missing = np.flatnonzero(np.isnan(margins))
    if len(missing):
        say(f"{model.label}: scoring {len(missing):,} pairs")
        scorer = load_scorer(project_path, model)
        prompts = [pairs["_prompt"].iloc[i] for i in missing]
        got = scorer.score(
            prompts + prompts,
            [pairs["_chosen"].iloc[i] for i in missing] + [pairs["_rejected"].iloc[i] for i in missing],
        )
        margins[missing] = got[: len(missing)] - got[len(missing) :]
    return margins, len(missing)


# ------------------------------------------------------------------------------------------ the evaluation
def evaluate(
    *,
    project: str | os.PathLike | None = None,
    run: int | None = None,
    model: str | os.PathLike | None = None,
    input: str | os.PathLike | None = None,
    against: int | None = None,
    format: str = "auto",
    progress: Say | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """(result, per-pair frame) of one evaluation; see the module doc. ``result`` is JSON-able. The frame has
    one row per pair: ``comparison_id`` (the test split) or ``row`` (a file's row), texts, margin, p_chosen at
    the model's temperature, correct, length difference and the slicing columns (and ``margin_against``,
    ``correct_against`` with ``against``)."""
    say = progress or (lambda message: None)
    if (project is None) == (model is None):
        raise EvalError("name either a project (--project, with --run) or an exported model folder (--model)")
    if model is not None and input is None:
        raise EvalError("--model needs --input FILE: the labelled pairs to evaluate the folder on")
    if model is not None and (run is not None or against is not None):
        raise EvalError("--run and --against pick runs of a project; with --model give only --input")
    warnings: list[str] = []
    if project is not None:
        if not Path(project).is_file():
            raise ProjectError(f"{project}: no such project file")
        with Project.open(project) as p:
            run_id = run if run is not None else latest_finished_run(p)
            main = run_model(p, run_id)
            other = run_model(p, against) if against is not None else None
            if input is None:
                pairs = project_test_pairs(p)
                trained = set(main.run["data_snapshot"].get("comparison_ids", [])) if main.run else set()
                if other is not None and other.run:
                    trained |= set(other.run["data_snapshot"].get("comparison_ids", []))
                leaked = pairs["comparison_id"].isin(trained)
                if leaked.any():
                    warnings.append(
                        f"{int(leaked.sum())} test pairs were trained on by the run(s) (they were put in the test "
                        "split after it): left out"
                    )
                    pairs = pairs[~leaked].reset_index(drop=True)
                what = {"pairs": "test split", "project": str(project)}
            else:
                pairs = file_pairs(input, format)
                what = {"pairs": str(input), "project": str(project)}
    else:
        main, other = _folder_model(model), None  # type: ignore[arg-type]
        pairs = file_pairs(input, format)  # type: ignore[arg-type]
        what = {"pairs": str(input), "model": str(model)}
    if pairs.empty:
        raise EvalError("there are no pairs left to evaluate")
    from_project = input is None
    margins, scored = margins_of(main, pairs, project_path=project, from_project=from_project, say=say)
    say(f"{main.label}: computing the figures on {len(pairs):,} pairs")
    figures = evaluation.evaluate_pairs(pairs.assign(margin=margins), temperature=main.temperature, progress=say)
    result: dict[str, Any] = {
        **what,
        "model": main.label,
        "run_id": main.run_id,
        "temperature": main.temperature,
        "n_pairs": len(pairs),
        "scored_now": scored,
        "warnings": warnings,
        **figures,
    }
    t = main.temperature or 1.0
    frame = pd.DataFrame(
        {
            "comparison_id": pairs["comparison_id"],
            "prompt": pairs["prompt"],
            "chosen": pairs["chosen"],
            "rejected": pairs["rejected"],
            "margin": margins,
            "p_chosen": evaluation.sigmoid(margins / t),
            "correct": margins > 0,
            "length_difference": pairs["chosen"].str.len() - pairs["rejected"].str.len(),
            "subset": pairs["subset"],
            "source": pairs["source"],
            "annotator": pairs["annotator"],
        }
    )
    if input is not None:  # a file's pairs are its rows (numbered from 0), not comparisons of a project
        frame = frame.rename(columns={"comparison_id": "row"})
    if other is not None:
        m_other, _ = margins_of(other, pairs, project_path=project, from_project=from_project, say=say)
        result["against"] = {
            "model": other.label,
            "run_id": other.run_id,
            "overall": evaluation.summary(m_other, pairs["group"].tolist()),
            **evaluation.compare(margins, m_other, pairs["group"].tolist(), pairs["comparison_id"].tolist()),
        }
        frame["margin_against"] = m_other
        frame["correct_against"] = m_other > 0
    return result, frame


def write_pairs(frame: pd.DataFrame, out: str | os.PathLike) -> None:
    """The per-pair results as .jsonl, .csv or .parquet (by extension), for Inspect and other tools."""
    from workbench.training.scoring import output_kind, write_table

    kind = output_kind(out)
    write_table({c: frame[c].tolist() for c in frame.columns}, out, kind)


# ------------------------------------------------------------------------------------------ text
def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ci(ci: Any) -> str:
    return "" if not ci else f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def format_result(result: dict[str, Any]) -> str:
    """The result as a few lines for a terminal."""
    o = result["overall"]
    cal = result["calibration"]
    length = result["length"]
    lines = [
        f"{result['model']} on {result['pairs']}: {o['n']:,} pairs from {o.get('n_prompts', 0):,} prompts",
        f"accuracy   {_pct(o['accuracy'])}{_ci(o['accuracy_ci'])} (95%, bootstrap by prompt); ties {o['ties']}",
        f"loss       {o['loss']:.4f} [{o['loss_ci'][0]:.4f}, {o['loss_ci'][1]:.4f}]"
        if o.get("loss_ci")
        else f"loss       {o['loss']:.4f}",
        f"ECE        {cal['raw']['ece']:.4f} at T=1"
        + (
            f"; {cal['scaled']['ece']:.4f} at the run's T={cal['temperature']:.3g}"
            if cal.get("scaled") is not None
            else "; no fitted temperature"
        ),
        f"length     model prefers the longer response in {_pct(length['model_prefers_longer'])} of pairs; "
        f"'longer wins' scores {_pct(length['longer_baseline_accuracy'])}",
    ]
    for name, rows in result["slices"].items():
        shown = ", ".join(f"{r['slice']} {_pct(r['accuracy'])} (n={r['n']})" for r in rows[:8])
        lines.append(f"by {name:<10} {shown}" + (" ..." if len(rows) > 8 else ""))
    if result.get("rewardbench"):
        lines.append("RewardBench " + ", ".join(f"{k} {_pct(v)}" for k, v in result["rewardbench"].items()))
    if "against" in result:
        a = result["against"]
        mc = a["mcnemar"]
        lines.append(
            f"against {a['model']}: {_pct(a['accuracy_a'])} vs {_pct(a['accuracy_b'])}, difference "
            f"{100 * a['difference']:+.1f} points{_ci(a['difference_ci'])}; McNemar p = {mc['p_value']:.3g} "
            f"({mc['only_a']} pairs right only for {result['model']}, {mc['only_b']} only for {a['model']})"
        )
    for w in result.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(lines)
