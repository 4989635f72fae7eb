"""The test split: imported with --test, never trained or validated on (nor any pair of its prompts), kept by
merges, still labellable, and its sizes in the statistics."""

from __future__ import annotations

import json

import pytest

from workbench import cli
from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.core.team import merge_projects


def pairs(prompts: range, tag: str) -> list[PairRecord]:
    return [PairRecord(Text(f"prompt {i}"), Text(f"good {tag} {i}"), Text(f"bad {tag} {i}"), "a") for i in prompts]


def test_test_pairs_and_every_pair_of_their_prompts_stay_out_of_training(project):
    project.add_records(pairs(range(10), "train"), source="train.jsonl")
    # prompts 8 and 9 are shared with training pairs: those two training pairs must leave training too
    summary = project.add_records(pairs(range(8, 14), "test"), source="test.jsonl", split="test")
    assert summary.extra["test_comparisons"] == 6
    test_ids = project.split_comparisons("test")
    train = project.training_pairs()
    assert not set(train["comparison_id"]) & test_ids
    assert set(train["prompt"]) == {f"prompt {i}" for i in range(8)}  # no leak through a shared prompt
    assert project.split_sizes() == {"test": 6, "test_labelled": 6, "held_out": 2, "pool": 8}
    assert project.statistics()["trainable_pairs"] == 8 and project.statistics()["test_comparisons"] == 6
    test = project.test_pairs()
    assert set(test["comparison_id"]) == test_ids and set(test["source"]) <= {"train.jsonl", "test.jsonl"}


def test_an_annotator_may_label_a_test_pair_and_it_still_never_trains(project):
    project.add_records(pairs(range(6), "train"), source="train.jsonl")
    unlabelled = [PairRecord(Text("new prompt"), Text("x"), Text("y"))]
    project.add_records(unlabelled, source="test.jsonl", split="test")
    (cid,) = project.split_comparisons("test")
    assert project.test_pairs().empty
    project.record_judgment(cid, "ann", "b", strength=2)
    test = project.test_pairs()
    assert test["comparison_id"].tolist() == [cid] and test["chosen"].tolist() == ["y"]
    assert cid not in set(project.training_pairs()["comparison_id"])


def test_importing_pairs_already_present_with_test_moves_them_to_the_test_split(project):
    project.add_records(pairs(range(4), "x"), source="a.jsonl")
    assert len(project.training_pairs()) == 4
    project.add_records(pairs(range(2), "x"), source="a.jsonl", split="test")  # duplicates, now marked test
    assert len(project.split_comparisons("test")) == 2 and len(project.training_pairs()) == 2


def test_an_unknown_split_is_refused_and_changes_nothing(project):
    with pytest.raises(ValueError, match="split must be one of test"):
        project.add_records(pairs(range(3), "x"), source="a.jsonl", split="train")
    assert project.counts()["comparisons"] == 0


def test_merge_keeps_split_membership(tmp_path):
    with Project.create(tmp_path / "a.wbp") as a:
        a.add_records(pairs(range(5), "train"), source="train.jsonl")
        a.add_records(pairs(range(20, 23), "test"), source="test.jsonl", split="test")
        test_hashes = {a.comparison(c).prompt.text for c in a.split_comparisons("test")}
    with Project.create(tmp_path / "b.wbp", seed=3) as b:  # the target already holds two of the test pairs
        b.add_records(pairs(range(21, 23), "test"), source="other.jsonl")
    summary = merge_projects([tmp_path / "a.wbp"], tmp_path / "b.wbp")
    assert summary.split_added == 3 and "test split" in summary.line()
    with Project.open(tmp_path / "b.wbp") as b:
        assert {b.comparison(c).prompt.text for c in b.split_comparisons("test")} == test_hashes
        assert set(b.training_pairs()["prompt"]) == {f"prompt {i}" for i in range(5)}
    again = merge_projects([tmp_path / "a.wbp"], tmp_path / "b.wbp")  # merging twice adds nothing
    assert again.split_added == 0


def test_import_command_with_test(tmp_path, capsys):
    data = tmp_path / "held.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"q{i}", "chosen": f"yes {i}", "rejected": f"no {i}"}) + "\n" for i in range(4))
    )
    project = tmp_path / "p.wbp"
    assert cli.main(["import", str(data), "--project", str(project), "--test"]) == 0
    assert "4 comparisons in the test split (never trained on)" in capsys.readouterr().out
    with Project.open(project) as p:
        assert len(p.split_comparisons("test")) == 4 and p.training_pairs().empty
