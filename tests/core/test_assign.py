"""Work packages (workbench.core.assign): designs, blind files, the manifest, labelling, merging back."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest
from wb_testing import sql

from workbench import cli
from workbench.core.assign import (
    MIN_SHARED,
    assign_work,
    assigned_to,
    assignment_progress,
    design_packages,
    my_batch,
    shared_counts,
)
from workbench.core.label_session import LabelSession
from workbench.core.records import PairRecord, Text
from workbench.core.store import Project
from workbench.core.team import merge_projects

NAMES = ["alice", "bob", "carol"]


def make_project(path: Path, n: int = 60) -> Path:
    """``n`` comparisons, labelled on import, one of them also by a person and one excluded."""
    records = [
        PairRecord(Text(f"prompt {i}"), Text(f"good answer {i}"), Text(f"bad answer {i}"), choice="a") for i in range(n)
    ]
    with Project.create(path, seed=3) as p:
        p.add_records(records, source="hh.jsonl")
        p.record_judgment(1, "dave", "b", left="a")
        p.set_mark(2, "exclude", True)
        p.guidelines = "Prefer the honest answer."
    return path


def test_per_item_design_is_balanced():
    packages = design_packages(range(90), NAMES, per_item=2, seed=1)
    assert {n: len(v) for n, v in packages.items()} == {"alice": 60, "bob": 60, "carol": 60}
    seen = [c for v in packages.values() for c in v]
    assert sorted(set(seen)) == list(range(90)) and all(seen.count(c) == 2 for c in range(90))
    assert [row["comparisons"] for row in shared_counts(packages)] == [30, 30, 30]


def test_overlap_design_gives_a_fraction_to_two_and_balances_the_load():
    packages = design_packages(range(100), NAMES, overlap=0.3, seed=2)
    counts = {c: sum(c in v for v in packages.values()) for c in range(100)}
    assert sum(n == 2 for n in counts.values()) == 30 and sum(n == 1 for n in counts.values()) == 70
    loads = [len(v) for v in packages.values()]
    assert max(loads) - min(loads) <= 1 and sum(loads) == 130
    assert [row["comparisons"] for row in shared_counts(packages)] == [10, 10, 10]
    # the seed decides who gets what; the same seed the same
    assert design_packages(range(100), NAMES, overlap=0.3, seed=2) == packages
    assert design_packages(range(100), NAMES, overlap=0.3, seed=3) != packages


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"overlap": 1.5}, "--overlap"),
        ({"per_item": 4}, "--per-item"),
        ({}, "exactly one"),
        ({"overlap": 0.2, "per_item": 2}, "exactly one"),
    ],
)
def test_bad_designs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        design_packages(range(10), NAMES, **kwargs)


def test_assign_writes_blind_files_a_manifest_and_records_the_assignment(tmp_path):
    project = make_project(tmp_path / "p.wbp")
    out = tmp_path / "packages"
    summary = assign_work(project, NAMES, out, per_item=2, seed=5)
    assert summary.comparisons == 59  # the excluded pair is not assigned
    loads = list(summary.counts.values())
    assert sum(loads) == 118 and max(loads) - min(loads) <= 1
    assert all(row["comparisons"] < MIN_SHARED for row in summary.shared)
    assert len(summary.warnings) == 3 and "share only" in summary.warnings[0]

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["assignment_id"] == summary.assignment_id and manifest["design"]["per_item"] == 2
    hashes = {n: set(v) for n, v in manifest["comparison_hashes"].items()}
    for row in manifest["shared"]:
        a, b = row["annotators"]
        assert len(hashes[a] & hashes[b]) == row["comparisons"]

    for name in NAMES:
        path = out / f"{name}.wbp"
        with Project.open(path) as p:
            assert assigned_to(p) == name and p.guidelines == "Prefer the honest answer."
            assert p.comparison_count() == summary.counts[name]
            assert my_batch(p, name) == (0, summary.counts[name])
        # blind: nobody's judgments, no marks, no runs, no annotators at all
        assert sql(path, "SELECT COUNT(*) FROM judgments")[0][0] == 0
        assert sql(path, "SELECT COUNT(*) FROM annotators")[0][0] == 0
        assert sql(path, "SELECT COUNT(*) FROM comparison_marks")[0][0] == 0
        assert sql(path, "SELECT COUNT(*) FROM runs")[0][0] == 0
        assert {h for (h,) in sql(path, "SELECT hash FROM comparisons")} == hashes[name]
    with Project.open(project) as p:
        progress = assignment_progress(p)
    assert progress is not None and progress["assignment_id"] == summary.assignment_id
    assert {n: r["assigned"] for n, r in progress["annotators"].items()} == summary.counts
    assert all(r["done"] == 0 for r in progress["annotators"].values())


def test_each_annotator_sees_other_sides(tmp_path):
    """Each file has its own seed: the sides shown differ between annotators (position bias does not align)."""
    project = make_project(tmp_path / "p.wbp")
    assign_work(project, ["alice", "bob"], tmp_path / "out", per_item=2)
    sides = []
    for name in ("alice", "bob"):
        with Project.open(tmp_path / "out" / f"{name}.wbp") as p:
            sides.append([p.comparison(c).left for c in sorted(p.comparisons_frame()["comparison_id"])])
    assert sides[0] != sides[1]


def test_an_existing_file_is_refused_and_nothing_is_written(tmp_path):
    project = make_project(tmp_path / "p.wbp")
    out = tmp_path / "out"
    out.mkdir()
    (out / "bob.wbp").write_text("mine")
    with pytest.raises(ValueError, match="bob.wbp exists already"):
        assign_work(project, NAMES, out, overlap=0.5)
    assert sorted(p.name for p in out.iterdir()) == ["bob.wbp"]
    assert sql(project, "SELECT COUNT(*) FROM assignments")[0][0] == 0


def test_label_the_files_then_merge_back_shows_progress(tmp_path):
    project = make_project(tmp_path / "p.wbp")
    out = tmp_path / "out"
    summary = assign_work(project, NAMES, out, overlap=0.5, seed=1)
    done = {"alice": 5, "bob": 3, "carol": 0}
    for name, n in done.items():
        with Project.open(out / f"{name}.wbp") as p:
            session = LabelSession(p, name)
            for _ in range(n):
                assert session.next() is not None
                assert session.choose("left").ok
            session.next()
            assert session.skip().ok  # a skip is not done
            assert session.batch() == (n, summary.counts[name])
    merged = merge_projects([out / f"{n}.wbp" for n in NAMES], project)
    assert merged.judgments_added == sum(done.values()) + 3
    with Project.open(project) as p:
        progress = assignment_progress(p)
        assert progress is not None
        assert {n: r["done"] for n, r in progress["annotators"].items()} == done
        assert my_batch(p, "alice") == (5, summary.counts["alice"]) and my_batch(p, "dave") is None
    # a fresh project merged from the files alone knows the whole assignment too
    fresh = tmp_path / "fresh.wbp"
    merge_projects([out / f"{n}.wbp" for n in NAMES], fresh)
    with Project.open(fresh) as p:
        progress = assignment_progress(p)
        assert progress is not None
        assert {n: r["assigned"] for n, r in progress["annotators"].items()} == summary.counts
    assert merge_projects([out / "alice.wbp"], fresh).assignment_items_added == 0  # nothing twice


def test_the_assign_command(tmp_path, capsys):
    project = make_project(tmp_path / "p.wbp", n=200)
    out = tmp_path / "out"
    code = cli.main(
        ["assign", "--project", str(project), "--annotators", "alice,bob", "--per-item", "2", "--out", str(out)]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "assigned 199 comparisons" in captured.out and "alice: 199 comparisons -> alice.wbp" in captured.out
    assert "every pair of annotators shares 199 to 199 comparisons" in captured.out
    assert captured.err == ""  # 199 shared: no warning
    code = cli.main(
        [
            "assign",
            "--project",
            str(project),
            "--annotators",
            "a,b,c,d",
            "--overlap",
            "0.1",
            "--out",
            str(tmp_path / "o2"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0 and "warning: " in captured.err and "share only" in captured.err
    code = cli.main(
        ["assign", "--project", str(project), "--annotators", "a,,b", "--overlap", "0.1", "--out", str(tmp_path / "o3")]
    )
    captured = capsys.readouterr()
    assert code == 1 and "annotator name is empty" in captured.err and not (tmp_path / "o3").exists()
    # an output that is the project itself is refused by the output guard
    code = cli.main(
        ["assign", "--project", str(project), "--annotators", "a,b", "--overlap", "0.5", "--out", str(project)]
    )
    assert code != 0


def test_pairs_of_annotators_in_a_design_share_comparisons():
    names = [f"a{i}" for i in range(5)]
    packages = design_packages(range(500), names, per_item=2, seed=0)
    shared = {tuple(r["annotators"]): r["comparisons"] for r in shared_counts(packages)}
    assert set(shared) == set(combinations(names, 2)) and set(shared.values()) == {50}


def test_scores_go_along_only_when_asked_and_show_no_label(tmp_path):
    project = make_project(tmp_path / "p.wbp", n=20)
    with Project.open(project) as p:
        run = p.create_run("head", "minilm", {})
        # the run's scores name the labelled side "chosen" (imported: a); comparison 1 is labelled b by dave
        p.add_pair_scores(run, 5, [(c, "train", "b" if c == 1 else "a", 2.0, -1.0) for c in range(1, 21)])
    assign_work(project, ["alice", "bob"], tmp_path / "blind", per_item=2)
    assign_work(project, ["alice", "bob"], tmp_path / "hint", per_item=2, with_scores=True)
    assert sql(tmp_path / "blind" / "alice.wbp", "SELECT COUNT(*) FROM pair_scores")[0][0] == 0
    with Project.open(tmp_path / "hint" / "alice.wbp") as p:
        assert p.has_pair_scores() and len(p.pair_scores(run)) == p.comparison_count()
        assert set(p.pair_scores(run)["chosen"]) == {"a"}  # stored orientation: no label shows through
        one = p.latest_pair_scores(1)
        two = p.latest_pair_scores(3)  # (2 is excluded: not assigned)
    assert (one["r_a"], one["r_b"]) == (-1.0, 2.0) and (two["r_a"], two["r_b"]) == (2.0, -1.0)
    assert sql(tmp_path / "hint" / "alice.wbp", "SELECT data_snapshot FROM runs")[0][0] == "{}"
