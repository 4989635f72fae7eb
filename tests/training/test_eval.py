"""Evaluation with the real trainer (tiny BERT, head mode): the test split never touches training, a run's
temperature is fitted and exported, `workbench eval` agrees with `workbench score` plus a hand count to the
pair, two runs are compared on the same pairs, and the report is written."""

from __future__ import annotations

import gzip
import itertools
import json

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file
from training_helpers import collect, comparable_metrics
from wb_testing import held_out_records, make_split_project, synthetic_records

from workbench import cli
from workbench.core.store import Project
from workbench.training import checkpoint
from workbench.training.config import TrainConfig
from workbench.training.eval_run import evaluate, load_scorer, project_test_pairs, run_model
from workbench.training.events import Finished
from workbench.training.export import export_run
from workbench.training.report import write_report
from workbench.training.trainer import Trainer

pytestmark = pytest.mark.slow  # real training runs of a tiny transformer

HEAD = dict(mode="head", learning_rate=3e-2, epochs=30)


def train(path, tiny_bert_dir, **overrides) -> Finished:
    events = collect(Trainer(path, TrainConfig(backbone=tiny_bert_dir, **{**HEAD, **overrides})))
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1]


def weights(path, run_id: int) -> dict:
    with Project.open(path) as p:
        return load_file(str(checkpoint.latest(p.checkpoint_dir(run_id)) / "model.safetensors"))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_bert_dir):
    """A project with a test split and two finished runs (different seeds)."""
    path = make_split_project(tmp_path_factory.mktemp("eval") / "p.wbp", held_out_records())
    first = train(path, tiny_bert_dir)
    second = train(path, tiny_bert_dir, seed=1, epochs=3)
    return path, first.run_id, second.run_id


def test_flipping_every_test_label_changes_nothing_a_run_learns(tmp_path, tiny_bert_dir):
    runs = {}
    for name, test in (("test", held_out_records()), ("flipped", held_out_records(flip=True)), ("none", None)):
        path = make_split_project(tmp_path / f"{name}.wbp", test)
        runs[name] = (path, train(path, tiny_bert_dir).run_id)
    base = weights(*runs["none"])
    for name in ("test", "flipped"):
        got = weights(*runs[name])
        assert set(got) == set(base) and all(np.array_equal(got[k].numpy(), base[k].numpy()) for k in base)
        assert comparable_metrics(*runs[name]) == comparable_metrics(*runs["none"])
    # ... while the evaluation on the test split sees the labels: flipped, every right pair becomes wrong
    a = evaluate(project=runs["test"][0])[0]["overall"]
    b = evaluate(project=runs["flipped"][0])[0]["overall"]
    assert a["n"] == b["n"] == 16 and a["correct"] + b["correct"] == 16 - a["ties"]


def test_a_run_stores_its_temperature_and_eval_only_reads_its_scores(evaluated):
    path, run, _ = evaluated
    with Project.open(path) as p:
        cal = p.run(run)["summary"]["calibration"]
        pairs = project_test_pairs(p)
    assert cal["n"] > 0 and 0.01 <= cal["temperature"] <= 100 and cal["val_ece_scaled"] <= cal["val_ece"] + 1e-9
    result, frame = evaluate(project=path)  # default: the latest finished run
    # a run does not score its test pairs at its end (issue 16): the first evaluation scores and stores them
    assert result["run_id"] == evaluated[2] and result["scored_now"] == 16
    assert evaluate(project=path)[0]["scored_now"] == 0  # ... the next one only reads them
    result, frame = evaluate(project=path, run=run)
    assert result["scored_now"] == 16
    result, frame = evaluate(project=path, run=run)
    assert result["scored_now"] == 0 and result["temperature"] == cal["temperature"]
    assert result["n_pairs"] == 16 and result["slices"]["source"][0]["slice"] == "test.jsonl"
    # the stored margins are those the run's checkpoint gives
    scorer = load_scorer(path, run_model(Project.open(path), run))
    got = scorer.score(list(pairs["_prompt"]) * 2, list(pairs["_chosen"]) + list(pairs["_rejected"]))
    np.testing.assert_allclose(frame["margin"].to_numpy(), got[:16] - got[16:], atol=1e-5)
    assert frame["correct"].sum() == result["overall"]["correct"]


def test_two_runs_are_compared_on_the_same_pairs(evaluated):
    path, first, second = evaluated
    result, frame = evaluate(project=path, run=first, against=second)
    a = result["against"]
    right, other = frame["correct"].to_numpy(), frame["correct_against"].to_numpy()
    assert a["mcnemar"]["only_a"] == int((right & ~other).sum()) and a["mcnemar"]["only_b"] == int(
        (~right & other).sum()
    )
    assert set(a["flipped_to_right"]) == set(frame.loc[right & ~other, "comparison_id"])
    assert a["difference"] == pytest.approx(right.mean() - other.mean())
    assert 0 <= a["mcnemar"]["p_value"] <= 1


def test_eval_of_an_exported_model_agrees_with_score_and_a_hand_count(evaluated, tmp_path, capsys):
    path, run, _ = evaluated
    folder = export_run(path, run, tmp_path / "rm").out_dir
    config = json.loads((folder / "config.json").read_text())
    with Project.open(path) as p:
        assert config["temperature"] == p.run(run)["summary"]["calibration"]["temperature"]
    from workbench.core.hub import read_card_yaml

    (result,) = read_card_yaml(folder / "README.md")["model-index"][0]["results"]
    figures = {m["type"]: m["value"] for m in result["metrics"]}
    assert result["dataset"]["split"] == "test"
    assert figures["temperature"] == pytest.approx(config["temperature"], abs=1e-6)
    assert {"accuracy", "accuracy_ci_low", "accuracy_ci_high", "ece", "ece_at_temperature"} <= set(figures)
    hh = tmp_path / "hh.jsonl"
    with gzip.open("../shared/data/hh-harmless-dev.jsonl.gz", "rt") as fh:
        hh.write_text("".join(itertools.islice(fh, 40)))
    assert (
        cli.main(["score", "--model", str(folder), "--input", str(hh), "--out", str(tmp_path / "s.jsonl"), "--quiet"])
        == 0
    )
    scored = pd.read_json(tmp_path / "s.jsonl", lines=True)
    hand = int((scored["score_chosen"] > scored["score_rejected"]).sum())
    capsys.readouterr()
    out = tmp_path / "pairs.jsonl"
    assert cli.main(["eval", "--model", str(folder), "--input", str(hh), "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["overall"]["n"] == len(scored) == 40 and result["overall"]["correct"] == hand
    per_pair = pd.read_json(out, lines=True)
    np.testing.assert_allclose(per_pair["margin"], scored["score_chosen"] - scored["score_rejected"], atol=1e-9)
    assert per_pair["row"].tolist() == list(range(40))
    assert result["temperature"] == config["temperature"]

    # a RewardBench-style file: per-subset accuracy and the section scores, without importing it
    bench = tmp_path / "rb.jsonl"
    subsets = ["alpacaeval-easy", "donotanswer"] * 6
    bench.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"Q{i}?",
                    "chosen": f"An excellent answer {i}.",
                    "rejected": f"A plain one {i}.",
                    "subset": s,
                }
            )
            + "\n"
            for i, s in enumerate(subsets)
        )
    )
    rb, _ = evaluate(model=folder, input=bench)
    acc = {r["slice"]: r["accuracy"] for r in rb["slices"]["subset"]}
    assert set(acc) == {"alpacaeval-easy", "donotanswer"} and rb["overall"]["n"] == 12
    assert rb["rewardbench"]["Chat"] == acc["alpacaeval-easy"] and rb["rewardbench"]["Safety"] == acc["donotanswer"]


def test_the_report_has_its_markdown_and_figures(evaluated, tmp_path, capsys):
    path, first, second = evaluated
    report = tmp_path / "report"
    assert (
        cli.main(
            ["eval", "--project", str(path), "--run", str(first), "--against", str(second), "--report", str(report)]
        )
        == 0
    )
    text = (report / "report.md").read_text()
    for name in ("reliability.png", "length.png", "slices.png"):
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({name})" in text
    assert "McNemar" in text and "longer wins" in text and "by source" in text
    assert "accuracy" in capsys.readouterr().out


def test_eval_errors_say_what_to_do(tmp_path, capsys):
    path = make_split_project(tmp_path / "p.wbp", None)
    assert cli.main(["eval", "--project", str(path)]) == 1
    assert "no finished run" in capsys.readouterr().err
    assert cli.main(["eval", "--model", str(tmp_path)]) == 1
    assert "--model needs --input" in capsys.readouterr().err


def test_write_report_refuses_a_project_as_its_folder(evaluated):
    path, run, _ = evaluated
    result, _ = evaluate(project=path, run=run)
    with pytest.raises(ValueError):
        write_report(result, path)


def test_test_pairs_a_run_trained_on_are_left_out_with_a_warning(tmp_path, tiny_bert_dir):
    path = make_split_project(tmp_path / "p.wbp", None)
    run = train(path, tiny_bert_dir).run_id
    trained = synthetic_records(24, 2, seed=0)[:6]  # pairs the run trained or validated on, now put in the test split
    with Project.open(path) as p:
        p.add_records(trained + held_out_records()[:4], source="late-test.jsonl", split="test")
        n_test = len(p.test_pairs())
        snapshot = set(p.run(run)["data_snapshot"]["comparison_ids"])
        leaked = len(set(p.test_pairs()["comparison_id"]) & snapshot)
    assert leaked == 6
    result, frame = evaluate(project=path, run=run)
    assert result["n_pairs"] == n_test - leaked == 4 and not set(frame["comparison_id"]) & snapshot
    assert result["warnings"] and "6 test pairs were trained on" in result["warnings"][0]
    assert result["scored_now"] == 4  # imported after the run: scored now with its checkpoint
