"""Team work: merging projects, agreement, adjudication and bias audits (workbench.core.team)."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import sqlite3
from contextlib import closing

import pandas as pd
import pytest

from workbench.core import store, team, team_commands
from workbench.core.records import PairRecord, Text
from workbench.core.store import Project, ProjectError
from workbench.core.team import (
    PAIR_MIRROR,
    adjudicate,
    agreement_from_table,
    agreement_report,
    bias_report,
    cohen_kappa,
    disagreements,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    majority_agreement,
    merge_projects,
    pairwise_agreement,
    wilson_interval,
)


def pair(i: int, choice: str | None = None, a: str | None = None, b: str | None = None, **kwargs) -> PairRecord:
    return PairRecord(
        Text(f"prompt {i}"), Text(a or f"answer A{i}"), Text(b or f"answer B{i}"), choice=choice, **kwargs
    )


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """A store clock that ticks one second per call, so that "later" is never a tie."""
    ticks = itertools.count(1_000_000)
    monkeypatch.setattr(store, "_now", lambda: float(next(ticks)))


def _rows(project: Project, sql: str, args: tuple = ()) -> list[tuple]:
    """Raw SQL through the test's own connection to the file: the store keeps its connection private."""
    with closing(sqlite3.connect(project.path)) as conn:
        return conn.execute(sql, args).fetchall()


def comparison_id(project: Project, i: int) -> int:
    """The id of the comparison of ``pair(i)``."""
    return _rows(
        project,
        "SELECT c.id FROM comparisons c JOIN prompts p ON p.id = c.prompt_id WHERE p.text = ?",
        (f"prompt {i}",),
    )[0][0]


def current(project: Project) -> dict[tuple[str, str, str], str | None]:
    """(annotator, prompt, text of response a) -> current choice, orientation-free via the texts."""
    rows = _rows(
        project,
        "SELECT a.name, p.text, ra.text, rb.text, cl.choice FROM current_labels cl"
        " JOIN annotators a ON a.id = cl.annotator_id JOIN comparisons c ON c.id = cl.comparison_id"
        " JOIN prompts p ON p.id = c.prompt_id JOIN responses ra ON ra.id = c.response_a"
        " JOIN responses rb ON rb.id = c.response_b",
    )
    out = {}
    for name, prompt, ra, rb, choice in rows:
        # Name the chosen response by its text, so that a flipped comparison compares equal.
        out[(name, prompt)] = {"a": ra, "b": rb}.get(choice, choice)
    return out


def history(project: Project) -> list[tuple]:
    """Every judgment by content, in id order, with what it supersedes by content too."""
    rows = _rows(
        project,
        "SELECT j.id, a.name, p.text, ra.text, rb.text, j.choice, j.strength, j.left_side, j.kind, j.note, j.flags,"
        " j.supersedes, j.shown_at, j.answered_at, j.created_at FROM judgments j"
        " JOIN annotators a ON a.id = j.annotator_id JOIN comparisons c ON c.id = j.comparison_id"
        " JOIN prompts p ON p.id = c.prompt_id JOIN responses ra ON ra.id = c.response_a"
        " JOIN responses rb ON rb.id = c.response_b ORDER BY j.id",
    )
    created = {r[0]: r[-1] for r in rows}
    out = []
    for _, name, prompt, ra, rb, choice, strength, left, kind, note, flags, sup, shown, answered, at in rows:
        texts = {"a": ra, "b": rb}
        out.append(
            (
                name,
                prompt,
                texts.get(choice, choice),
                strength,
                texts.get(left, left),
                kind,
                note,
                flags,
                created.get(sup),
                shown,
                answered,
                at,
            )
        )
    return out


def snapshot(project: Project) -> dict:
    return {
        table: _rows(project, f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in (
            "prompts",
            "responses",
            "comparisons",
            "annotators",
            "judgments",
            "current_labels",
            "comparison_marks",
        )
    } | {"guidelines": project.guidelines}


# ======================================================================================== merge
@pytest.fixture
def sources(tmp_path):
    """Two annotators' projects that overlap; bob's stores comparison 0 the other way round."""
    s1, s2 = tmp_path / "alice.wbp", tmp_path / "bob.wbp"
    with Project.create(s1, seed=5) as p:
        p.guidelines = "Prefer the honest answer."
        p.add_records([pair(i) for i in range(4)], source="pool.jsonl")
        c = [comparison_id(p, i) for i in range(4)]
        p.record_judgment(c[0], "alice", "a", strength=3, left="b", shown_at=10.0, note="clear", flags=["typo"])
        p.record_judgment(c[1], "alice", "b", left="a")
        p.record_judgment(c[1], "alice", "tie", kind="relabel")
        p.record_judgment(c[2], "alice", "a", left="a")
        p.undo_last("alice")  # takes back c[2]: an undo row, current label None
        p.set_mark(c[0], "flag", True, annotator="alice", note="check")
        p.set_mark(c[3], "exclude", True)
    with Project.create(s2, seed=9) as p:
        p.guidelines = "Bob's own guidelines."
        p.add_records([pair(0, a="answer B0", b="answer A0"), pair(1), pair(5)], source="pool.jsonl")
        p.add_records([pair(6, choice="a")], source="hh.jsonl")  # an imported label
        p.record_judgment(comparison_id(p, 0), "bob", "a", strength=2, left="a")  # picks "answer B0"
        p.record_judgment(comparison_id(p, 1), "bob", "a", left="b")
        p.record_judgment(comparison_id(p, 5), "alice", "b", left="a")  # alice worked here too
    return s1, s2


def test_merge_into_a_new_project(tmp_path, sources):
    s1, s2 = sources
    with Project.open(s1) as p:
        hist1, cur1 = history(p), current(p)
    with Project.open(s2) as p:
        hist2, cur2 = history(p), current(p)
    target = tmp_path / "team.wbp"
    summary = merge_projects([s1, s2], target)
    assert summary.created and summary.sources == [str(s1), str(s2)]
    assert (summary.prompts_added, summary.responses_added, summary.comparisons_added) == (6, 12, 6)
    assert summary.comparisons_flipped == 1  # bob's (B0, A0)
    assert summary.annotators_added == 3 and summary.judgments_added == 5 + 4 and summary.judgments_present == 0
    assert summary.marks_added == 2 and summary.guidelines_from == str(s1)
    with Project.open(target) as t:
        assert t.seed == 5  # the first source's, so the left/right sides stay as alice saw them
        assert t.guidelines == "Prefer the honest answer."
        assert t.counts() | {"runs": 0} == {
            "prompts": 6,
            "responses": 12,
            "comparisons": 6,
            "judgments": 9,
            "annotators": 3,
            "runs": 0,
        }
        # Every judgment keeps its content, times and history; the chains point at the same rows.
        assert history(t) == hist1 + hist2
        assert current(t) == cur1 | cur2
        # bob chose stored "a" = "answer B0" in his project; the target stores (A0, B0): b, left b.
        bob = t.current_judgment(comparison_id(t, 0), "bob")
        assert (bob.choice, bob.left, bob.strength) == ("b", "b", 2)
        alice = t.current_judgment(comparison_id(t, 0), "alice")
        assert (alice.choice, alice.left, alice.note, alice.flags, alice.shown_at) == (
            "a",
            "b",
            "clear",
            ("typo",),
            10.0,
        )
        relabel = t.current_judgment(comparison_id(t, 1), "alice")
        assert relabel.kind == "relabel" and t.judgment(relabel.supersedes).choice == "b"
        assert t.current_judgment(comparison_id(t, 2), "alice") is None  # undone, in the target too
        assert t.marked("flag") == {comparison_id(t, 0)} and t.marked("exclude") == {comparison_id(t, 3)}
        assert t.integrity_check() == "ok" and not _rows(t, "PRAGMA foreign_key_check")
        before = snapshot(t)
    # Merging again changes nothing at all.
    again = merge_projects([s1, s2], target)
    assert not again.created
    assert (
        again.prompts_added,
        again.comparisons_added,
        again.judgments_added,
        again.marks_added,
        again.current_labels_changed,
        again.annotators_added,
    ) == (0, 0, 0, 0, 0, 0)
    assert again.judgments_present == 9
    with Project.open(target) as t:
        assert snapshot(t) == before
    # ... and merging the merged project back into a source adds only what the source lacked.
    back = merge_projects([target], s2)
    assert back.judgments_added == 5 and back.judgments_present == 4 and back.comparisons_added == 2
    with Project.open(s2) as p:
        assert current(p) == cur1 | cur2 and p.guidelines == "Bob's own guidelines."  # target's kept


def test_merge_a_shared_history_takes_the_latest_label_and_mark(tmp_path, sources):
    s1, _ = sources
    copy = tmp_path / "alice-laptop.wbp"
    shutil.copy(s1, copy)  # alice carried her project to a second machine; both went on
    with Project.open(copy) as t:
        c = [comparison_id(t, i) for i in range(4)]
        t.record_judgment(c[0], "alice", "b", kind="relabel")  # T+1, later overridden by the source
    with Project.open(s1) as s:
        s.record_judgment(c[1], "alice", "a", kind="relabel")  # T+2, overridden by the copy's T+4
        s.record_judgment(c[3], "alice", "a")  # only in the source
        s.set_mark(c[2], "exclude", True)  # older than the copy's "off" below
    with Project.open(copy) as t:
        t.record_judgment(c[1], "alice", "both_bad", kind="relabel")
        t.set_mark(c[2], "exclude", False)
    with Project.open(s1) as s:
        s.record_judgment(c[0], "alice", "tie", kind="relabel")  # the latest of all for c[0]
    summary = merge_projects([s1], copy)
    assert summary.judgments_present == 5 and summary.judgments_added == 3 and summary.comparisons_added == 0
    with Project.open(copy) as t:
        labels = {cid: t.current_judgment(cid, "alice") for cid in c}
        assert labels[c[0]].choice == "tie" and labels[c[1]].choice == "both_bad" and labels[c[3]].choice == "a"
        # The source's relabel of c[1] supersedes the shared "tie" row, not a copy of it.
        rows = _rows(t, "SELECT id, choice, supersedes FROM judgments WHERE comparison_id = ? ORDER BY id", (c[1],))
        tie = next(r[0] for r in rows if r[1] == "tie")
        assert [r[2] for r in rows if r[1] in ("both_bad", "a")] == [tie, tie]
        assert c[2] not in t.marked("exclude")  # the copy's later "off" stays in force
        assert c[3] in t.marked("exclude")
        before = snapshot(t)
    assert merge_projects([s1], copy).judgments_added == 0
    with Project.open(copy) as t:
        assert snapshot(t) == before


def test_bad_sources_leave_the_target_unchanged(tmp_path, sources):
    s1, s2 = sources
    target = tmp_path / "team.wbp"
    text = tmp_path / "notes.wbp"
    text.write_text("no database in here\n")
    with pytest.raises(ProjectError, match="no such project file"):
        merge_projects([s1, tmp_path / "missing.wbp"], target)
    with pytest.raises(ProjectError, match="not an SQLite file"):
        merge_projects([s1, text], target)
    with pytest.raises(ValueError, match="at least one"):
        merge_projects([], target)
    assert not target.exists()  # never created
    merge_projects([s1], target)
    with Project.open(target) as t:
        before = snapshot(t)
    with pytest.raises(ProjectError, match="not an SQLite file"):
        merge_projects([s2, text], target)
    with Project.open(target) as t:
        assert snapshot(t) == before


def test_a_failure_during_the_merge_rolls_everything_back(tmp_path, sources, monkeypatch):
    s1, s2 = sources
    target = tmp_path / "team.wbp"
    merge_projects([s1], target)
    with Project.open(target) as t:
        before = snapshot(t)

    def boom(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(team, "_reassert_latest_marks", boom)
    with pytest.raises(RuntimeError):
        merge_projects([s2], target)
    with Project.open(target) as t:
        assert snapshot(t) == before
    fresh = tmp_path / "fresh.wbp"
    with pytest.raises(RuntimeError):
        merge_projects([s1], fresh)
    assert not fresh.exists()  # a target made by the failed merge is removed again


def test_the_target_itself_among_the_sources_is_skipped(tmp_path, sources):
    s1, s2 = sources
    summary = merge_projects([s1, s2, s2], s1)
    assert summary.sources == [str(s2)] and summary.skipped_sources == [str(s1), str(s2)]
    assert "skipped" in summary.line()


def test_merge_command(tmp_path, sources, capsys):
    s1, s2 = sources
    parser = argparse.ArgumentParser(prog="workbench")
    team_commands.register(parser.add_subparsers())
    args = parser.parse_args(["merge", str(s1), str(s2), "--into", str(tmp_path / "team.wbp")])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith(f"merged 2 projects into {tmp_path / 'team.wbp'} (new): added 6 prompts")
    assert "9 judgments (0 already there)" in out and "1 comparisons stored the other way round" in out


# ===================================================================================== agreement
def test_cohen_kappa_by_hand():
    # Two annotators, ten items:          annotator 2
    #                          a    b    tie  both_bad | total
    #   annotator 1   a        4    2    0    0        |  6
    #                 b        0    2    0    0        |  2
    #                 tie      0    0    1    0        |  1
    #                 both_bad 0    0    1    0        |  1
    #                 total    4    4    2    0        | 10
    # p_o = (4 + 2 + 1) / 10 = 0.7
    # p_e = .6*.4 + .2*.4 + .1*.2 + .1*0 = .24 + .08 + .02 = 0.34
    # κ = (0.7 - 0.34) / (1 - 0.34) = 0.36 / 0.66 = 6/11
    first = ["a"] * 4 + ["a"] * 2 + ["b"] * 2 + ["tie", "both_bad"]
    second = ["a"] * 4 + ["b"] * 2 + ["b"] * 2 + ["tie", "tie"]
    result = cohen_kappa(first, second)
    assert result["items"] == 10
    assert result["observed"] == pytest.approx(0.7) and result["expected"] == pytest.approx(0.34)
    assert result["kappa"] == pytest.approx(6 / 11)
    assert cohen_kappa(second, first)["kappa"] == pytest.approx(6 / 11)  # symmetric
    # Both always "a": p_e = 1, κ undefined.
    assert cohen_kappa(["a"] * 3, ["a"] * 3)["kappa"] is None
    assert cohen_kappa([], [])["kappa"] is None


def test_krippendorff_alpha_textbook_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4-observer, 12-unit example
    # with missing values; published nominal α = 0.743. Unit 12 has one value and is not pairable, so
    # n = 40; n_c = 9, 13, 10, 5, 3 for values 1..5; Σ_{c≠k} o_ck = 8;
    # α = 1 - (40 - 1) * 8 / (40² - (81 + 169 + 100 + 25 + 9)) = 1 - 312 / 1216 = 0.74342
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    alpha = krippendorff_alpha_nominal(zip(a, b, c, d, strict=True))
    assert alpha == pytest.approx(1 - 312 / 1216) and round(alpha, 3) == 0.743


# Three annotators X, Y, Z; "-" is no label.
#   item  X    Y    Z
#   u1    a    a    a
#   u2    a    b    -
#   u3    b    b    tie
#   u4    tie  -    -      (one label: not pairable)
#   u5    b    b    -
THREE = {
    "u1": ("a", "a", "a"),
    "u2": ("a", "b", None),
    "u3": ("b", "b", "tie"),
    "u4": ("tie", None, None),
    "u5": ("b", "b", None),
}
# Krippendorff's α: coincidences o (each unit's ordered pairs / (m_u - 1)):
#   u1: aa += 3*2/2 = 3;  u2: ab += 1, ba += 1;  u3: bb += 2*1/2 = 1, b-tie += 1, tie-b += 1;  u5: bb += 2
#   n_a = 4, n_b = 5, n_tie = 1, n = 10;  Σ_{c≠k} o = 4;  Σ_{c≠k} n_c n_k = 10² - (16 + 25 + 1) = 58
#   α = 1 - 9 * 4 / 58 = 22/58 = 11/29 ≈ 0.3793
#   Symmetric in a/b (the preference variant): marginals a = b = (4 + 5) / 2 = 4.5, tie 1;
#   Σ_{c≠k} n_c n_k = 100 - (4.5² + 4.5² + 1) = 58.5;  α = 1 - 9 * 4 / 58.5 = 5/13 ≈ 0.3846
# Pairwise agreement over the 4 items with 2+ labels: u1 3/3, u2 0/1, u3 1/3, u5 1/1 -> (1 + 0 + 1/3 + 1) / 4 = 7/12
# Cohen's κ: X-Y on u1, u2, u3, u5: p_o = 3/4; X (a 2, b 2), Y (a 1, b 3): p_e = (2*1 + 2*3)/16 = 1/2; κ = 1/2
#            X-Z on u1, u3: p_o = 1/2; X (a 1, b 1), Z (a 1, tie 1): p_e = 1/4; κ = (1/2 - 1/4)/(3/4) = 1/3
#            Y-Z on u1, u3: the same as X-Z: κ = 1/3
#   (with a/b pooled both ways the shares are X-Y: .5/.5 each, X-Z: X .5/.5, Z a .25 b .25 tie .5, so the
#   same p_e and κ)
# Fleiss' κ (unequal raters): P_i u1 1, u2 0, u3 2/6, u5 1 -> P̄ = 7/12; ratings of those items a 4, b 5, tie 1
#   of 10, pooled a = b = .45, tie .1: P_e = 2 * .45² + .1² = .415; κ = (7/12 - .415) / .585 = 101/351 ≈ 0.2877
# Leave-one-out majority: X: u1 others a,a -> agree; u2 others b -> disagree; u3 others b,tie -> tied, out;
#   u5 others b -> agree: 2 of 3, 1 tied.  Y: u1 agree, u2 (others a) disagree, u3 tied, u5 agree: 2 of 3, 1 tied.
#   Z: u1 agree, u3 (others b,b) disagree: 1 of 2.
THREE_EXPECTED = {
    "alpha": 11 / 29,
    "alpha_pairwise": 5 / 13,
    "fleiss": 101 / 351,
    "pairwise": 7 / 12,
    "kappa": {("X", "Y"): 0.5, ("X", "Z"): 1 / 3, ("Y", "Z"): 1 / 3},
    "majority": {"X": (3, 2, 1), "Y": (3, 2, 1), "Z": (2, 1, 0)},  # items, agreed, tied
}


def test_agreement_three_annotators_with_missing_labels_by_hand():
    units = list(THREE.values())
    assert krippendorff_alpha_nominal(units) == pytest.approx(THREE_EXPECTED["alpha"])
    assert krippendorff_alpha_nominal(units, mirror=PAIR_MIRROR) == pytest.approx(THREE_EXPECTED["alpha_pairwise"])
    fleiss = fleiss_kappa(units, mirror=PAIR_MIRROR)
    assert fleiss["items"] == 4 and fleiss["observed"] == pytest.approx(7 / 12)
    assert fleiss["expected"] == pytest.approx(0.415) and fleiss["kappa"] == pytest.approx(THREE_EXPECTED["fleiss"])
    assert pairwise_agreement(units) == {"items": 4, "agreement": pytest.approx(THREE_EXPECTED["pairwise"])}
    by_name = {
        item: {n: v for n, v in zip("XYZ", values, strict=True) if v is not None} for item, values in THREE.items()
    }
    majority = majority_agreement(by_name)
    assert {n: (r["items"], r["agreed"], r["tied"]) for n, r in majority.items()} == THREE_EXPECTED["majority"]
    assert majority["Z"]["agreement"] == 0.5
    table = pd.DataFrame(
        [(item, n, v) for item, labels in by_name.items() for n, v in labels.items()],
        columns=["comparison_id", "annotator", "choice"],
    )
    report = agreement_from_table(table)
    assert {tuple(r["annotators"]): r["kappa"] for r in report["cohen_kappa"]} == pytest.approx(THREE_EXPECTED["kappa"])
    # Undefined statistics are None, never NaN.
    assert krippendorff_alpha_nominal([("a", "a"), ("a", "a")]) is None
    assert krippendorff_alpha_nominal([("a", None)]) is None
    assert pairwise_agreement([("a", None)]) == {"items": 0, "agreement": None}


def test_chance_agreement_pools_a_and_b_both_ways_by_hand():
    # Issue 10: 80 pairs imported as chosen/rejected (so the import says "a" every time), a person agrees on
    # 62 (77.5%) and says "b" on 18. Taken as stored: p_e = 1 * 62/80 = 0.775, κ = 0 and α = -0.12.
    # Pooled both ways: each annotator's shares are a .5, b .5, so p_e = .5 * .5 + .5 * .5 = 0.5 and
    # κ = (0.775 - 0.5) / 0.5 = 0.55. α: n = 160, 18 disagreeing units give Σ_{c≠k} o = 36; marginals
    # a = b = 80: α = 1 - 159 * 36 / (160² - 2 * 80²) = 1 - 5724 / 12800 = 0.5528125.
    imported, person = ["a"] * 80, ["a"] * 62 + ["b"] * 18
    assert cohen_kappa(imported, person)["kappa"] == pytest.approx(0.0)  # the generic κ, as stored
    result = cohen_kappa(imported, person, mirror=PAIR_MIRROR)
    assert (result["observed"], result["expected"]) == pytest.approx((0.775, 0.5))
    assert result["kappa"] == pytest.approx(0.55)
    assert krippendorff_alpha_nominal(zip(imported, person)) == pytest.approx(-0.1197, abs=1e-4)
    assert krippendorff_alpha_nominal(zip(imported, person), mirror=PAIR_MIRROR) == pytest.approx(0.5528125)

    # With ties and both-bad, which stay categories of their own. Ten items (X, Y):
    #   (a,a) x3, (a,b), (b,b) x2, (tie,tie), (tie,a), (both_bad,both_bad), (both_bad,tie)
    # p_o = 7/10. X: a 4, b 2, tie 2, bb 2 -> pooled a = b = .3, tie .2, bb .2;
    #             Y: a 4, b 3, tie 2, bb 1 -> pooled a = b = .35, tie .2, bb .1
    # p_e = 2 * .3 * .35 + .2 * .2 + .2 * .1 = .27; κ = (.7 - .27) / .73 = 43/73 (generic: .28, 7/12)
    # α: n = 20, marginals a 8, b 5, tie 4, bb 3 -> pooled a = b = 6.5; 3 disagreeing units: Σ_{c≠k} o = 6;
    #   α = 1 - 19 * 6 / (400 - (2 * 6.5² + 16 + 9)) = 1 - 114 / 290.5 = 353/581
    x = ["a"] * 4 + ["b"] * 2 + ["tie"] * 2 + ["both_bad"] * 2
    y = ["a"] * 3 + ["b"] + ["b"] * 2 + ["tie", "a"] + ["both_bad", "tie"]
    result = cohen_kappa(x, y, mirror=PAIR_MIRROR)
    assert (result["observed"], result["expected"]) == pytest.approx((0.7, 0.27))
    assert result["kappa"] == pytest.approx(43 / 73)
    assert cohen_kappa(x, y)["kappa"] == pytest.approx(7 / 12)
    assert krippendorff_alpha_nominal(zip(x, y), mirror=PAIR_MIRROR) == pytest.approx(353 / 581)
    # Two annotators who always agree are perfect, even if they always said "a" as stored.
    assert cohen_kappa(["a"] * 3, ["a"] * 3, mirror=PAIR_MIRROR)["kappa"] == pytest.approx(1.0)


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa"): 10 items, 14 raters each, 5 categories;
    # P̄ = 0.378, P_e = 0.213, κ = 0.210. Equal raters per item: the generalisation is Fleiss' κ exactly.
    rows = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    units = [[c for c, k in enumerate(row) for _ in range(k)] for row in rows]
    result = fleiss_kappa(units)
    assert result["items"] == 10
    assert round(result["observed"], 3) == 0.378 and round(result["expected"], 3) == 0.213
    assert round(result["kappa"], 3) == 0.210
    assert fleiss_kappa([("a", None)]) == {"items": 0, "observed": None, "expected": None, "kappa": None}


def _flipped(unit, flip: bool):
    return [PAIR_MIRROR.get(v, v) if flip and v is not None else v for v in unit]


@pytest.mark.parametrize("seed", range(5))
def test_agreement_statistics_do_not_change_when_random_items_are_stored_the_other_way(seed):
    rng = random.Random(seed)
    values = [*PAIR_MIRROR, None]
    units = [[rng.choice(values) for _ in range(4)] for _ in range(60)]
    # Correlated labels too, so that κ is far from 0 and a wrong chance term would show.
    units += [
        [v if rng.random() < 0.8 else rng.choice(values) for _ in range(4)]
        for v in (rng.choice(values[:4]) for _ in range(60))
    ]
    flips = [rng.random() < 0.5 for _ in units]
    flipped = [_flipped(u, f) for u, f in zip(units, flips, strict=True)]
    assert flipped != units
    assert krippendorff_alpha_nominal(flipped, mirror=PAIR_MIRROR) == pytest.approx(
        krippendorff_alpha_nominal(units, mirror=PAIR_MIRROR)
    )
    assert fleiss_kappa(flipped, mirror=PAIR_MIRROR) == pytest.approx(fleiss_kappa(units, mirror=PAIR_MIRROR))
    for first, second in itertools.combinations(range(4), 2):
        both = [(u, f) for u, f in zip(units, flipped, strict=True) if u[first] and u[second]]
        before = cohen_kappa([u[first] for u, _ in both], [u[second] for u, _ in both], mirror=PAIR_MIRROR)
        after = cohen_kappa([f[first] for _, f in both], [f[second] for _, f in both], mirror=PAIR_MIRROR)
        assert after == pytest.approx(before)
    assert pairwise_agreement(flipped) == pytest.approx(pairwise_agreement(units))


def _leaves(value, path=()):
    """Every number and string of a nested report, by its path, so that two reports compare leaf by leaf."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path, value


def _team_project(path, seed: int, flips: set[int]):
    """The same real-world facts, whichever way each pair is stored: pairs in ``flips`` are stored (B, A)
    and every choice, left side and model score is mapped to that order. Built through the store's API:
    an unlabelled pool in that order, then an import that names the chosen response first, then people's
    judgments and a run's scores."""
    rng = random.Random(seed)
    n = 40
    texts = {
        i: (f"answer A{i} " + "x" * rng.randrange(0, 30), f"answer B{i} " + "y" * rng.randrange(0, 30))
        for i in range(n)
    }

    def stored(i: int, side):  # a side of pair i (as in A/B above) as this project stores it
        return PAIR_MIRROR.get(side, side) if i in flips and side is not None else side

    with Project.create(path, seed=3) as p:
        p.add_records(
            [pair(i, a=texts[i][i in flips], b=texts[i][i not in flips]) for i in range(n)], source="pool.jsonl"
        )
        truth = {i: rng.choice("ab") for i in range(n)}
        imported = [
            pair(i, choice="a", a=texts[i][truth[i] == "b"], b=texts[i][truth[i] == "a"]) for i in range(0, n, 2)
        ]  # chosen first, as HH-RLHF stores it
        p.add_records(imported, source="hh.jsonl")
        for name, accuracy in (("alice", 0.9), ("bob", 0.7), ("carol", 0.5)):
            for i in range(n):
                if rng.random() < 0.2:
                    continue
                roll = rng.random()
                choice = (
                    truth[i]
                    if roll < accuracy
                    else PAIR_MIRROR[truth[i]]
                    if roll < 0.9
                    else rng.choice(["tie", "both_bad"])
                )
                left = rng.choice("ab")
                p.record_judgment(comparison_id(p, i), name, stored(i, choice), left=stored(i, left))
        run = p.create_run("head", "test", {})
        p.add_pair_scores(
            run,
            2,
            [(comparison_id(p, i), "train", stored(i, truth[i]), rng.gauss(0, 1), rng.gauss(0, 1)) for i in range(n)],
        )
    return Project.open(path)


@pytest.mark.parametrize("seed", range(3))
def test_team_statistics_do_not_change_when_random_pairs_are_stored_the_other_way(tmp_path, seed):
    pick = random.Random(100 + seed)
    flips = {i for i in range(40) if pick.random() < 0.5}
    assert 0 < len(flips) < 40
    with (
        _team_project(tmp_path / "as_stored.wbp", seed, set()) as p,
        _team_project(tmp_path / "flipped.wbp", seed, flips) as q,
    ):
        # The stored orders do differ: the same people's labels read the other way round where flipped.
        assert (
            p.labels().sort_values(["comparison_id", "annotator"])["choice"].tolist()
            != q.labels().sort_values(["comparison_id", "annotator"])["choice"].tolist()
        )
        before, after = dict(_leaves(team.team_statistics(p))), dict(_leaves(team.team_statistics(q)))
    assert before.keys() == after.keys()
    assert before[("agreement", "fleiss_kappa", "kappa")] is not None
    for key, value in before.items():
        if isinstance(value, float):
            assert after[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        else:
            assert after[key] == value, key


@pytest.fixture
def team_project(tmp_path):
    """THREE in a project: X = alice, Y = bob, Z = labels imported from z.jsonl; plus labels that must
    not count: carol's skips, dave's undone label, and an adjudication."""
    with Project.create(tmp_path / "team.wbp", seed=2) as p:
        p.add_records([pair(i) for i in range(1, 6)], source="pool.jsonl")
        p.add_records([pair(1, choice="a"), pair(3, choice="tie")], source="z.jsonl")
        for name, column in (("alice", 0), ("bob", 1)):
            for i, values in enumerate(THREE.values(), start=1):
                if values[column] is not None:
                    p.record_judgment(comparison_id(p, i), name, values[column], left="a")
        p.record_judgment(comparison_id(p, 2), "carol", "skip")
        p.record_judgment(comparison_id(p, 5), "carol", "skip")
        p.record_judgment(comparison_id(p, 1), "dave", "b")
        p.undo_last("dave")
        yield p


def test_agreement_report_of_a_project(team_project):
    p = team_project
    adjudicate(p, comparison_id(p, 3), "lead", "b")  # a decision, not a vote
    report = agreement_report(p)
    json.dumps(report, allow_nan=False)
    names = {"alice": "X", "bob": "Y", "import:z.jsonl": "Z"}
    assert report["annotators"] == ["alice", "bob", "import:z.jsonl"]
    assert report["items_labelled"] == 5 and report["items_multiply_labelled"] == 4
    assert report["pairwise_agreement"] == pytest.approx(THREE_EXPECTED["pairwise"])
    assert report["krippendorff_alpha"] == pytest.approx(THREE_EXPECTED["alpha_pairwise"])
    assert report["fleiss_kappa"]["kappa"] == pytest.approx(THREE_EXPECTED["fleiss"])
    assert report["fleiss_kappa"]["items"] == 4 and "unequal raters per item" in report["fleiss_kappa"]["variant"]
    assert "both ways round" in report["chance"]
    kappas = {tuple(names[n] for n in r["annotators"]): r["kappa"] for r in report["cohen_kappa"]}
    assert kappas == pytest.approx(THREE_EXPECTED["kappa"])
    majority = {names[n]: (r["items"], r["agreed"], r["tied"]) for n, r in report["majority_agreement"].items()}
    assert majority == THREE_EXPECTED["majority"]


# ================================================================================== adjudication
def test_disagreements_and_adjudication(team_project):
    p = team_project
    u2, u3 = comparison_id(p, 2), comparison_id(p, 3)
    found = disagreements(p)
    assert found["comparison_id"].tolist() == [u2, u3]
    row = found.iloc[1]
    assert row["labels"] == {"alice": "b", "bob": "b", "import:z.jsonl": "tie"}
    assert row["votes"] == {"b": 2, "tie": 1} and row["majority"] == "b" and row["n_labels"] == 3
    assert found.iloc[0]["majority"] is None and row["response_a"] == "answer A3"

    # Before: u2 is an even split (not trained on), u3 goes by the majority b.
    pairs = p.training_pairs().set_index("comparison_id")
    assert u2 not in pairs.index and pairs.loc[u3, "choice"] == "b"
    with pytest.raises(ValueError, match="another name"):
        adjudicate(p, u2, "alice", "a")  # would overwrite her own vote
    with pytest.raises(ValueError, match="one of"):
        adjudicate(p, u2, "lead", "skip")
    adjudicate(p, u2, "lead", "b", strength=3, note="B answers the question")
    adjudicate(p, u3, "lead", "b")
    adjudicate(p, u3, "lead", "a", note="on second thought")  # a new decision supersedes the last
    assert disagreements(p).empty and list(disagreements(p).columns) == team.DISAGREEMENT_COLUMNS
    pairs = p.training_pairs().set_index("comparison_id")
    assert pairs.loc[u2, "choice"] == "b" and pairs.loc[u2, "chosen"] == "answer B2"
    assert pairs.loc[u2, "strength"] == 3 and pairs.loc[u2, "annotator"] == "lead"
    assert pairs.loc[u3, "choice"] == "a" and pairs.loc[u3, "chosen"] == "answer A3"  # over the majority b
    assert p.current_judgment(u3, "lead").kind == "adjudication"
    assert "lead" not in agreement_report(p)["annotators"]


# ========================================================================================== bias
def test_wilson_interval_by_hand():
    # 7/10: centre (0.7 + z²/20) / (1 + z²/10) = 0.89207 / 1.38415 = 0.64449;
    # half = z / 1.38415 * sqrt(0.7*0.3/10 + z²/400) = 1.41600 * 0.17494 = 0.24772 -> [0.3968, 0.8922]
    assert wilson_interval(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    # 0/10: [0, z²/10 / (1 + z²/10)] = [0, 0.38415 / 1.38415] = [0, 0.2775]
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0, 0) is None


# Ten comparisons; A is longer (20 chars vs 10) in 1-6, B is longer in 7-9, equal lengths (15) in 10.
# alice (left side, choice) and whether she picked the left / the longer response:
#   1 (a, a) L long   2 (a, a) L long   3 (b, b) L short  4 (b, b) L short  5 (a, a) L long
#   6 (a, b) R short  7 (b, b) L long   8 (a, a) L short  9 (a, b) R long   10 (b, a) R equal
# left: 7 of 10 -> 0.7, Wilson [0.3968, 0.8922]
# longer: 1, 2, 5, 7, 9 = 5 of 9 (10 is equal) -> 0.5556; Wilson: centre (5/9 + z²/18)/(1 + z²/9) = 0.53894,
#   half = z/(1 + z²/9) * sqrt((5/9)(4/9)/9 + z²/324) = 1.37365 * 0.19822 = 0.27229 -> [0.2667, 0.8112]
ALICE = {
    1: ("a", "a"),
    2: ("a", "a"),
    3: ("b", "b"),
    4: ("b", "b"),
    5: ("a", "a"),
    6: ("a", "b"),
    7: ("b", "b"),
    8: ("a", "a"),
    9: ("a", "b"),
    10: ("b", "a"),
}
# The model (r_chosen, r_rejected, chosen = alice's choice) and the side it prefers:
#   1 a>: a long   2 b: short   3 b: short   4 tie (out)   5 a: long   6 a (rejects b): long
#   7 b: long   8 a: short   9 a (rejects b): short   10 a: equal
# prefers longer: 1, 5, 6, 7 of 1-3, 5-9 = 4 of 8 -> 0.5, Wilson [0.2152, 0.7848]
SCORES = {
    1: (1, 0),
    2: (0, 1),
    3: (2, 1),
    4: (1, 1),
    5: (3, 0),
    6: (0, 5),
    7: (1, 0),
    8: (1, 0),
    9: (-1, 0),
    10: (1, 0),
}


def test_bias_report_by_hand(tmp_path):
    with Project.create(tmp_path / "bias.wbp") as p:
        records = [pair(i, a="A" * 20, b=f"b{i}".ljust(10, "b")) for i in range(1, 7)]
        records += [pair(i, a=f"a{i}".ljust(10, "a"), b="B" * 20) for i in range(7, 10)]
        records += [pair(10, a="a" * 15, b="b" * 15)]
        p.add_records(records, source="pool.jsonl")
        p.add_records([pair(1, choice="a", a="A" * 20, b="b1".ljust(10, "b"))], source="hh.jsonl")
        for i, (left, choice) in ALICE.items():
            p.record_judgment(comparison_id(p, i), "alice", choice, left=left)
        p.record_judgment(comparison_id(p, 1), "carol", "tie", left="a")  # neither a nor b: not counted
        assert bias_report(p)["model"] is None
        run = p.create_run("head", "test", {})
        p.add_pair_scores(run, 1, [(comparison_id(p, i), "train", "a", 0.0, 9.0) for i in ALICE])  # older step
        p.add_pair_scores(run, 5, [(comparison_id(p, i), "train", ALICE[i][1], *SCORES[i]) for i in ALICE])
        p.create_run("head", "test", {})  # a later run without scores
        report = bias_report(p)
        json.dumps(report, allow_nan=False)
        alice = report["annotators"]["alice"]
        assert (alice["left"]["k"], alice["left"]["n"]) == (7, 10)
        assert alice["left"]["share"] == 0.7 and alice["left"]["ci95"] == pytest.approx([0.3968, 0.8922], abs=1e-4)
        assert (alice["longer"]["k"], alice["longer"]["n"], alice["longer"]["equal_length"]) == (5, 9, 1)
        assert alice["longer"]["ci95"] == pytest.approx([0.2667, 0.8112], abs=1e-4)
        imported = report["annotators"]["import:hh.jsonl"]
        assert imported["left"] == {"n": 0, "k": 0, "share": None, "ci95": None}  # side unknown
        assert (imported["longer"]["k"], imported["longer"]["n"]) == (1, 1)
        assert "carol" not in report["annotators"]
        model = report["model"]
        assert (model["run_id"], model["step"], model["pairs"], model["score_ties"]) == (run, 5, 10, 1)
        assert "prefers_a" not in model  # the stored order is no position a model could favour
        assert (model["longer"]["k"], model["longer"]["n"], model["longer"]["equal_length"]) == (4, 8, 1)
        assert model["longer"]["ci95"] == pytest.approx([0.2152, 0.7848], abs=1e-4)
        assert bias_report(p, run_id=run)["model"] == model
        with pytest.raises(KeyError):
            bias_report(p, run_id=99)


def test_team_statistics_is_json(team_project):
    stats = team.team_statistics(team_project)
    assert set(stats) == {"agreement", "bias", "reliability", "assignment"}
    json.dumps(stats, allow_nan=False)
    text = team.format_team_statistics(stats)
    assert "Krippendorff's alpha 0.385" in text and "bias alice" in text
    assert "Fleiss' kappa (unequal raters per item" in text and "0.288 on 4" in text
    assert team.CHANCE_NOTE in text
