"""Suspect labels end to end: real folds on synthetic flips (calibration, symmetry) and ``workbench suspects``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from suspects_helpers import flipped_project

from workbench import cli
from workbench.core import suspects
from workbench.core.store import Project
from workbench.training.folds import SOURCE, out_of_fold_margins

pytestmark = pytest.mark.slow  # trains runs and their out-of-fold heads

BINS = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]


def _scored(path, run_id) -> pd.DataFrame:
    with Project.open(path) as project:
        oof = out_of_fold_margins(project, run_id)
        project.add_oof_scores(
            run_id, zip(oof["comparison_id"], oof["chosen"], oof["fold"], oof["r_chosen"], oof["r_rejected"]), SOURCE
        )
        return suspects.suspects_for_run(project, run_id)


def test_p_label_wrong_is_calibrated_on_synthetic_flips(tmp_path, tiny_bert_dir):
    """600 pairs, 20% of labels flipped, 5 folds by prompt: in every bin of p_label_wrong with 30 or more pairs
    the share of flipped labels is within 0.05 + 2.5 binomial standard errors of the bin's mean p."""
    _, run_id, flipped = flipped_project(tmp_path / "f.wbp", tiny_bert_dir, flip=0.2)
    table = _scored(tmp_path / "f.wbp", run_id)
    table["flipped"] = table["comparison_id"].map(flipped)
    table["bin"] = pd.cut(table["p_label_wrong"], BINS, include_lowest=True)
    calibration = table.groupby("bin", observed=True).agg(
        n=("flipped", "size"), mean_p=("p_label_wrong", "mean"), flip_rate=("flipped", "mean")
    )
    print(calibration.to_string())
    well = calibration[calibration["n"] >= 30]
    assert len(well) >= 3
    tolerance = 0.05 + 2.5 * np.sqrt(well["mean_p"] * (1 - well["mean_p"]) / well["n"])
    assert ((well["flip_rate"] - well["mean_p"]).abs() < tolerance).all(), calibration.to_string()
    assert abs(table["p_label_wrong"].mean() - table["flipped"].mean()) < 0.05
    top = table.head(int(table["flipped"].sum()))
    assert top["flipped"].mean() > 0.8  # most suspect first: the flips lead the table
    assert (table.loc[table["category"] == "likely mislabelled", "flipped"].mean()) > 0.85


def test_storing_responses_the_other_way_round_changes_no_output(tmp_path, tiny_bert_dir):
    swap = np.random.default_rng(5).random(80) < 0.5
    _, run_a, _ = flipped_project(tmp_path / "a.wbp", tiny_bert_dir, n_prompts=40, seed=2)
    _, run_b, _ = flipped_project(tmp_path / "b.wbp", tiny_bert_dir, n_prompts=40, seed=2, swap_ab=swap)
    a, b = _scored(tmp_path / "a.wbp", run_a), _scored(tmp_path / "b.wbp", run_b)
    keys = ["prompt", "chosen", "rejected"]
    a, b = a.sort_values(keys).reset_index(drop=True), b.sort_values(keys).reset_index(drop=True)
    assert (a["label"] != b["label"]).any()  # the stored order did change
    for col in ("oof_margin", "p_label_wrong"):
        assert np.allclose(a[col], b[col], atol=1e-5), col
    assert a["category"].tolist() == b["category"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_cli_writes_the_table_and_computes_folds_once(tmp_path, tiny_bert_dir, capsys, suffix):
    path = tmp_path / "p.wbp"
    _, run_id, flipped = flipped_project(path, tiny_bert_dir, n_prompts=30)
    out = tmp_path / f"suspects{suffix}"
    assert cli.main(["suspects", "--project", str(path), "--top", "10", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"run {run_id} has no out-of-fold scores: computing them now (5 head-mode folds" in stdout
    assert f"wrote 10 pairs of run {run_id}" in stdout
    if suffix == ".csv":
        table = pd.read_csv(out)
    elif suffix == ".jsonl":
        table = pd.DataFrame([json.loads(line) for line in out.read_text().splitlines()])
    else:
        table = pd.read_parquet(out)
    assert list(table.columns) == suspects.COLUMNS and len(table) == 10
    assert table["p_label_wrong"].is_monotonic_decreasing
    assert set(table["oof_source"]) == {"head-folds"} and table["in_sample_margin"].isna().all()
    assert table["comparison_id"].map(flipped).mean() > 0.5
    with Project.open(path) as project:
        assert len(project.oof_scores(run_id)) == 60
    assert cli.main(["suspects", "--project", str(path), "--run", str(run_id), "--out", str(out)]) == 0
    assert "computing" not in capsys.readouterr().out  # stored once, reused


def test_cli_refuses_the_project_as_output_and_a_missing_run(tmp_path, tiny_bert_dir, capsys):
    path = tmp_path / "p.wbp"
    flipped_project(path, tiny_bert_dir, n_prompts=10)
    before = path.read_bytes()
    assert cli.main(["suspects", "--project", str(path), "--out", str(path)]) == 1
    assert path.read_bytes() == before and "project" in capsys.readouterr().err
    assert cli.main(["suspects", "--project", str(path), "--run", "9", "--out", str(tmp_path / "s.csv")]) == 1
    assert "there is no run 9" in capsys.readouterr().err
