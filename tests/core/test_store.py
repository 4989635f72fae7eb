"""The project store: opening, adding data, the queue, judgments and undo, derived tables, runs, caches."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import numpy as np
import pandas as pd
import pytest

from workbench.core.records import PairRecord, PromptRecord, Text
from workbench.core.schema import SCHEMA_VERSION
from workbench.core.store import Project, ProjectError


def pair(i: int, choice: str | None = None, prompt: str | None = None, **kwargs) -> PairRecord:
    return PairRecord(
        Text(prompt or f"prompt {i}"), Text(f"answer A{i}"), Text(f"answer B{i}"), choice=choice, **kwargs
    )


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "p.wbp", seed=1) as p:
        yield p


@pytest.fixture
def filled(project):
    """Ten unlabelled comparisons (ids 1..10), one prompt each."""
    project.add_records([pair(i) for i in range(10)], source="unlabelled.jsonl")
    return project


def drain(project: Project, annotator: str, order: str, choice: str = "a") -> list[int]:
    """Label everything the queue hands out, in the order it does."""
    seen = []
    while (cid := project.next_comparison(annotator, order)) is not None:
        seen.append(cid)
        project.record_judgment(cid, annotator, choice)
        assert len(seen) <= 1000
    return seen


# ------------------------------------------------------------------ opening
def test_create_then_open(tmp_path):
    path = tmp_path / "sub" / "demo.wbp"
    with Project.create(path, seed=7) as p:
        assert p.schema_version == SCHEMA_VERSION
        assert p.name == "demo" and p.seed == 7
        with closing(sqlite3.connect(path)) as conn:  # WAL is a property of the file
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.IntegrityError):  # foreign keys are on: metrics of no run are refused
            p.add_metrics(12345, 1, "train", {"loss": 1.0})
        p.guidelines = "Prefer the honest answer."
    with Project.open(path) as p:
        assert p.seed == 7 and p.guidelines == "Prefer the honest answer."
        assert p.integrity_check() == "ok"
    assert path.with_name("demo.wbp.checkpoints") == Project.open(path).checkpoint_root


def test_create_refuses_existing_file_and_open_refuses_missing(tmp_path):
    path = tmp_path / "p.wbp"
    Project.create(path).close()
    with pytest.raises(ProjectError, match="already exists"):
        Project.create(path)
    with pytest.raises(ProjectError, match="no such project"):
        Project.open(tmp_path / "missing.wbp")


def test_open_or_create(tmp_path):
    path = tmp_path / "p.wbp"
    with Project.open_or_create(path, name="Team", seed=3) as p:
        p.add_records([pair(0)], source="x")
    with Project.open_or_create(path, name="ignored", seed=9) as p:
        assert p.name == "Team" and p.seed == 3 and p.counts()["comparisons"] == 1


def test_not_a_project(tmp_path):
    text = tmp_path / "notes.wbp"
    text.write_text("just some text, certainly no database in here\n")
    with pytest.raises(ProjectError, match="not an SQLite file"):
        Project.open(text)
    foreign = tmp_path / "foreign.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(ProjectError, match="not a Preference Workbench project"):
        Project.open(foreign)
    assert foreign.read_bytes() == before  # left exactly as it was (not switched to WAL)


def test_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "p.wbp"
    Project.create(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(ProjectError, match="newer") as info:
        Project.open(path)
    assert "upgrade" in str(info.value)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()


# ------------------------------------------------------------- adding data
def test_add_records_counts_and_dedup(project):
    records = [pair(i, choice="a") for i in range(5)] + [pair(9)]
    first = project.add_records(records, source="hh.jsonl")
    assert (first.prompts_added, first.responses_added, first.comparisons_added, first.judgments_added) == (6, 12, 6, 5)
    again = project.add_records(records, source="hh.jsonl")
    assert again.as_dict() == {
        "prompts_added": 0,
        "responses_added": 0,
        "comparisons_added": 0,
        "judgments_added": 0,
        "duplicates": 6,
    }
    assert project.counts() == {
        "prompts": 6,
        "responses": 12,
        "comparisons": 6,
        "judgments": 5,
        "annotators": 1,
        "runs": 0,
    }
    assert project.annotators()["name"].tolist() == ["import:hh.jsonl"]
    assert project.annotators()["kind"].tolist() == ["import"]


def test_reversed_pair_maps_onto_existing_comparison_with_label_flipped(project):
    project.add_records([pair(0)], source="first")
    reversed_pair = PairRecord(Text("prompt 0"), Text("answer B0"), Text("answer A0"), choice="a", strength=3)
    summary = project.add_records([reversed_pair], source="second")
    assert summary.comparisons_added == 0 and summary.duplicates == 1 and summary.judgments_added == 1
    assert project.counts()["comparisons"] == 1
    judgment = project.current_judgment(1, "import:second")
    assert judgment.choice == "b" and judgment.strength == 3  # B0 preferred == stored response b
    comparison = project.comparison(1)
    assert comparison.response_a.text == "answer A0"
    tie = PairRecord(Text("prompt 0"), Text("answer B0"), Text("answer A0"), choice="tie", annotator="ann")
    project.add_records([tie], source="third")
    assert project.current_judgment(1, "ann").choice == "tie"


def test_import_relabel_adds_a_superseding_row(project):
    project.add_records([pair(0, choice="a")], source="f")
    summary = project.add_records([pair(0, choice="b")], source="f")
    assert summary.judgments_added == 1
    log = project.judgment_log()
    assert log["choice"].tolist() == ["a", "b"]
    assert log["supersedes"].tolist()[1] == log["judgment_id"].tolist()[0]


def test_prompt_with_k_responses_gives_all_pairs(project):
    record = PromptRecord(Text("rank these"), [Text("r1"), Text("r2"), Text("r3"), Text("r4"), Text("r2")])
    summary = project.add_records([record], source="ranked")
    assert (summary.prompts_added, summary.responses_added, summary.comparisons_added) == (1, 4, 6)
    assert project.add_records([record], source="ranked").comparisons_added == 0


def test_identical_responses_are_not_a_comparison(project):
    same = PairRecord(Text("p"), Text("same"), Text("same"), choice="a")
    summary = project.add_records([same], source="f")
    assert summary.comparisons_added == 0 and summary.extra == {"identical_pairs": 1}


def test_conversations_round_trip(project):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    record = PairRecord(
        Text.of(messages),
        Text.of([{"role": "assistant", "content": "No."}]),
        Text.of([{"role": "assistant", "content": "Why did the chicken..."}]),
        choice="b",
    )
    project.add_records([record], source="conv")
    comparison = project.comparison(1)
    assert comparison.prompt.messages == messages
    assert comparison.prompt.text.startswith("User: Hi")
    pairs = project.training_pairs()
    assert pairs.loc[0, "prompt_messages"] == messages
    assert pairs.loc[0, "chosen_messages"] == [{"role": "assistant", "content": "Why did the chicken..."}]


def test_failed_import_adds_nothing(project):
    def records():
        yield pair(0)
        raise RuntimeError("broken file")

    with pytest.raises(RuntimeError):
        project.add_records(records(), source="f")
    assert project.counts()["comparisons"] == 0


# ------------------------------------------------------------------- queue
def test_next_new_goes_in_order_and_ends(filled):
    assert drain(filled, "ann", "new") == list(range(1, 11))
    assert filled.next_comparison("ann") is None
    assert filled.queue_position("ann") == (10, 10)


def test_next_repeats_until_answered(filled):
    assert filled.next_comparison("ann") == 1
    assert filled.next_comparison("ann") == 1
    filled.record_judgment(1, "ann", "b")
    assert filled.next_comparison("ann") == 2


def test_new_puts_pairs_nobody_labelled_first(filled):
    for cid in (1, 2, 3):
        filled.record_judgment(cid, "other", "a")
    filled.record_judgment(4, "other", "skip")  # a skip is not a label: 4 is still new
    assert drain(filled, "ann", "new") == [4, 5, 6, 7, 8, 9, 10, 1, 2, 3]


def test_skipped_come_back_after_the_rest(filled):
    order = []
    for _ in range(10):
        cid = filled.next_comparison("ann")
        order.append(cid)
        filled.record_judgment(cid, "ann", "skip" if cid in (2, 5) else "a")
    assert order == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert filled.queue_position("ann") == (8, 10)
    assert filled.next_comparison("ann") == 2
    filled.record_judgment(2, "ann", "skip")
    assert filled.next_comparison("ann") == 5
    filled.record_judgment(5, "ann", "tie")
    assert filled.next_comparison("ann") == 2
    filled.record_judgment(2, "ann", "a")
    assert filled.next_comparison("ann") is None


def test_skip_while_everything_is_done_reopens(filled):
    drain(filled, "ann", "random")
    assert filled.next_comparison("ann", "random") is None
    filled.record_judgment(6, "ann", "skip")
    assert filled.next_comparison("ann", "random") == 6
    drain(filled, "bob", "new")
    filled.record_judgment(3, "bob", "skip")  # replaces bob's label: 3 is skipped for bob
    assert filled.next_comparison("bob", "new") == 3


def test_exclude(filled):
    assert filled.next_comparison("ann", exclude=[1, 2]) == 3
    assert filled.next_comparison("ann", "random", exclude=range(1, 11)) is None
    assert filled.next_comparison("ann", "random") is not None


def test_random_is_a_deterministic_permutation_per_seed(tmp_path):
    def sequence(name: str, seed: int) -> list[int]:
        with Project.create(tmp_path / name, seed=seed) as p:
            p.add_records([pair(i) for i in range(30)], source="f")
            return drain(p, "ann", "random")

    one, same, other = sequence("a.wbp", 5), sequence("b.wbp", 5), sequence("c.wbp", 6)
    assert sorted(one) == list(range(1, 31))
    assert one == same
    assert one != other
    assert one != sorted(one)


def test_prompt_order_groups_prompts(project):
    records = []
    for i in range(12):  # prompts interleaved in the file: 0, 1, 2, 0, 1, 2, ...
        p = f"prompt {i % 3}"
        records.append(PairRecord(Text(p), Text(f"x{i}"), Text(f"y{i}")))
    project.add_records(records, source="f")
    seen = drain(project, "ann", "prompt")
    prompt_ids = [project.comparison(c).prompt_id for c in seen]
    assert len(seen) == 12
    assert prompt_ids == sorted(prompt_ids)
    assert drain(project, "bob", "new") == list(range(1, 13))


def test_unknown_order(filled):
    with pytest.raises(ValueError, match="unknown queue order"):
        filled.next_comparison("ann", "alphabetical")


def test_unscored_comparisons_of_a_run_are_those_without_a_score_at_its_last_evaluation(filled):
    """Issue 16: what ``evaluate.score_missing`` scores and the Label view counts; no torch here."""
    assert filled.model_queue_run() is None
    run = filled.create_run("head", "minilm", {})
    assert filled.last_scored_step(run) is None and filled.unscored_count(run) == 0  # nothing to read
    filled.add_pair_scores(run, 1, [(c, "train", "a", 0.0, 0.0) for c in range(1, 11)])  # an earlier evaluation
    filled.add_pair_scores(run, 4, [(c, "train", "a", 1.0, 0.0) for c in (1, 2, 3)])
    assert filled.last_scored_step(run) == 4
    assert filled.unscored_count(run) == 7 and filled.unscored_comparison_ids(run) == list(range(4, 11))
    assert filled.model_queue_run() == run  # no finished run: the latest with scores
    filled.update_run(run, status="finished")
    later = filled.create_run("head", "minilm", {})
    filled.add_pair_scores(later, 2, [(1, "train", "a", 0.0, 0.0)])
    assert filled.model_queue_run() == run  # a run in progress does not take the queue over
    filled.add_pair_scores(run, 4, [(c, "unlabelled", "a", 0.0, 0.0) for c in range(4, 11)])
    assert filled.unscored_count(run) == 0 and filled.unscored_comparison_ids(run) == []
    filled.add_records([pair(10)], source="later.jsonl")  # imported after the run
    assert filled.unscored_comparison_ids(run) == [11]


def test_model_orders_use_latest_runs_pair_scores(filled):
    assert filled.next_comparison("ann", "uncertain") == 1  # no scores yet: falls back to new
    old = filled.create_run("head", "minilm", {})
    filled.add_pair_scores(old, 1, [(c, "unlabelled", "a", 0.0, 0.0) for c in range(1, 11)])
    run = filled.create_run("head", "minilm", {"lr": 1e-3})
    margins = {1: 3.0, 2: -0.1, 3: 0.5, 4: -2.0, 5: 0.05, 6: 1.0, 7: -4.0, 8: 2.0, 9: 0.2, 10: -0.3}
    filled.add_pair_scores(run, 1, [(c, "unlabelled", "a", 0.0, 0.0) for c in margins])
    filled.add_pair_scores(run, 5, [(c, "unlabelled", "a", m, 0.0) for c, m in margins.items()])
    uncertain = drain(filled, "ann", "uncertain")
    assert uncertain == sorted(margins, key=lambda c: abs(margins[c]))

    run2 = filled.create_run("head", "minilm", {})
    filled.add_pair_scores(run2, 1, [(c, "validation", "a", m, 0.0) for c, m in margins.items()])
    assert filled.next_comparison("bob", "disagree") == 7  # most negative margin first
    assert filled.next_comparison("bob", "disagree", exclude=[7]) == 4
    # Once ann has looked at a disagreement again after the run, it leaves her disagree queue.
    filled.record_judgment(7, "ann", "b", kind="relabel")
    assert filled.next_comparison("ann", "disagree") == 4


def test_another_connection_s_writes_are_seen(filled, tmp_path):
    drain(filled, "ann", "new")
    assert filled.next_comparison("ann") is None
    with Project.open(filled.path) as other:
        other.add_records([pair(50)], source="more")
    assert filled.next_comparison("ann") == 11
    filled.record_judgment(11, "ann", "a")
    with Project.open(filled.path) as other:
        other.undo_last("ann")
    assert filled.next_comparison("ann") == 11


# ----------------------------------------------------------- judgments, undo
def test_record_judgment_validation(filled):
    with pytest.raises(ValueError, match="choice"):
        filled.record_judgment(1, "ann", "A")
    with pytest.raises(ValueError, match="strength is given only"):
        filled.record_judgment(1, "ann", "tie", strength=2)
    with pytest.raises(ValueError, match="1 to 4"):
        filled.record_judgment(1, "ann", "a", strength=5)
    with pytest.raises(ValueError, match="left"):
        filled.record_judgment(1, "ann", "a", left="right")
    with pytest.raises(ValueError, match="kind"):
        filled.record_judgment(1, "ann", "a", kind="undo")
    with pytest.raises(KeyError):
        filled.record_judgment(999, "ann", "a")
    with pytest.raises(ValueError, match="empty"):
        filled.record_judgment(1, "  ", "a")
    assert filled.counts()["judgments"] == 0


def test_record_judgment_stores_everything(filled):
    jid = filled.record_judgment(3, "ann", "b", strength=4, left="b", shown_at=100.0, note="clearer", flags=["typo"])
    j = filled.judgment(jid)
    assert (j.comparison_id, j.annotator, j.choice, j.strength, j.left, j.kind) == (3, "ann", "b", 4, "b", "label")
    assert (j.note, j.flags, j.supersedes, j.shown_at) == ("clearer", ("typo",), None, 100.0)
    assert j.answered_at >= 100.0
    again = filled.record_judgment(3, "ann", "a", kind="relabel")
    assert filled.judgment(again).supersedes == jid
    assert filled.current_judgment(3, "ann").id == again
    assert filled.current_judgment(3, "bob") is None


def test_undo_once(filled):
    jid = filled.record_judgment(filled.next_comparison("ann"), "ann", "a", strength=2)
    assert filled.next_comparison("ann") == 2
    undone = filled.undo_last("ann")
    assert (undone.id, undone.comparison_id, undone.choice, undone.strength) == (jid, 1, "a", 2)
    assert filled.current_judgment(1, "ann") is None
    assert filled.next_comparison("ann") == 1
    assert filled.queue_position("ann") == (0, 10)
    assert filled.undo_last("ann") is None


def test_undo_several_times_walks_back(filled):
    ids = [filled.record_judgment(c, "ann", "a") for c in (1, 2, 3)]
    filled.record_judgment(4, "bob", "b")
    assert [filled.undo_last("ann").id for _ in range(3)] == ids[::-1]
    assert filled.undo_last("ann") is None
    assert filled.current_judgment(4, "bob").choice == "b"  # other annotators untouched
    assert filled.next_comparison("ann") == 1


def test_undo_after_relabel_restores_the_previous_label(filled):
    first = filled.record_judgment(1, "ann", "a", strength=3, left="b", note="n1")
    filled.record_judgment(2, "ann", "tie")
    relabel = filled.record_judgment(1, "ann", "b", strength=1, kind="relabel")
    assert filled.undo_last("ann").id == relabel
    restored = filled.current_judgment(1, "ann")
    assert (restored.kind, restored.choice, restored.strength) == ("undo", "a", 3)
    assert (restored.left, restored.note) == ("b", "n1")
    assert restored.supersedes == relabel
    # Walking further back: the tie on 2, then the first label on 1 (brought back by the undo).
    assert filled.undo_last("ann").comparison_id == 2
    assert filled.undo_last("ann").id == first
    assert filled.current_judgment(1, "ann") is None
    assert filled.undo_last("ann") is None


def test_undo_then_rejudge(filled):
    filled.record_judgment(1, "ann", "a")
    undo = filled.undo_last("ann")
    assert filled.next_comparison("ann") == 1
    jid = filled.record_judgment(1, "ann", "b")
    current = filled.current_judgment(1, "ann")
    assert current.id == jid and current.choice == "b"
    undo_row = filled.judgment(current.supersedes)
    assert undo_row.kind == "undo" and undo_row.supersedes == undo.id
    assert filled.undo_last("ann").id == jid
    assert filled.current_judgment(1, "ann") is None  # back to "never labelled", not to the undone "a"
    assert filled.undo_last("ann") is None


def test_undo_never_touches_imported_labels(project):
    project.add_records([pair(0, choice="a")], source="f", annotator="ann")
    project.record_judgment(1, "ann", "b")
    assert project.undo_last("ann").choice == "b"
    assert project.current_judgment(1, "ann").choice == "a"
    assert project.undo_last("ann") is None


def test_history_is_kept(filled):
    filled.record_judgment(1, "ann", "a")
    filled.record_judgment(1, "ann", "b", kind="relabel")
    filled.undo_last("ann")
    filled.record_judgment(2, "ann", "skip")
    filled.record_judgment(2, "bob", "tie")
    log = filled.judgment_log()
    assert len(log) == 5 == filled.counts()["judgments"]
    assert log["kind"].tolist() == ["label", "relabel", "undo", "label", "label"]
    assert log["choice"].tolist() == ["a", "b", "a", "skip", "tie"]
    assert log["annotator"].tolist() == ["ann", "ann", "ann", "ann", "bob"]
    assert log["supersedes"].tolist()[:3] == [pd.NA, 1, 2]
    assert {"prompt", "response_a", "response_b", "comparison_hash", "shown_at", "answered_at"} <= set(log.columns)


def test_transaction_rolls_back_everything(filled):
    filled.annotator_id("ann")
    with pytest.raises(RuntimeError), filled.transaction():
        filled.record_judgment(1, "ann", "a")
        filled.record_judgment(2, "newcomer", "a")
        raise RuntimeError("stop")
    assert filled.counts()["judgments"] == 0
    assert filled.record_judgment(2, "newcomer", "b") > 0  # not a stale cached annotator id


# ------------------------------------------------------- derived tables
def test_labels_frame(filled):
    filled.record_judgment(1, "ann", "a", strength=4, flags=["check"])
    filled.record_judgment(1, "bob", "b")
    filled.record_judgment(2, "ann", "tie")
    filled.record_judgment(3, "ann", "a")
    filled.undo_last("ann")
    filled.set_mark(2, "exclude", True)
    labels = filled.labels()
    assert len(labels) == 3
    assert list(zip(labels["comparison_id"], labels["annotator"], labels["choice"])) == [
        (1, "ann", "a"),
        (1, "bob", "b"),
        (2, "ann", "tie"),
    ]
    assert labels["strength"].tolist()[:2] == [4, pd.NA]
    assert labels["flagged"].tolist() == [True, False, False]
    assert labels["excluded"].tolist() == [False, False, True]
    assert labels.loc[0, "prompt"] == "prompt 0" and labels.loc[0, "response_b"] == "answer B0"


def test_resolved_labels(filled):
    for who, choice in (("x", "a"), ("y", "a"), ("z", "b")):
        filled.record_judgment(1, who, choice)  # majority a
    filled.record_judgment(2, "x", "a")
    filled.record_judgment(2, "y", "b")  # even split: unresolved
    filled.record_judgment(3, "x", "a")
    filled.record_judgment(3, "y", "b")
    filled.record_judgment(3, "lead", "b", strength=2, kind="adjudication")  # adjudicated
    filled.record_judgment(4, "x", "tie")
    filled.record_judgment(4, "y", "skip")  # skips do not vote
    filled.record_judgment(5, "x", "skip")  # only a skip: not resolved at all
    resolved = filled.resolved_labels().set_index("comparison_id")
    assert list(resolved.index) == [1, 2, 3, 4]
    assert resolved.loc[1, "choice"] == "a" and resolved.loc[1, "n_labels"] == 3 and resolved.loc[1, "disagreement"]
    assert pd.isna(resolved.loc[2, "choice"]) and resolved.loc[2, "disagreement"]
    assert tuple(resolved.loc[3, ["choice", "annotator", "strength"]]) == ("b", "lead", 2)
    assert resolved.loc[4, "choice"] == "tie" and not resolved.loc[4, "disagreement"]
    assert filled.annotators().set_index("name").loc["lead", "kind"] == "adjudicator"


def test_training_pairs(filled):
    filled.record_judgment(1, "ann", "a", strength=4)
    filled.record_judgment(2, "ann", "b")
    filled.record_judgment(3, "ann", "tie")
    filled.record_judgment(4, "ann", "both_bad")
    filled.record_judgment(5, "ann", "skip")
    filled.record_judgment(6, "ann", "a")
    filled.set_mark(6, "exclude", True)
    filled.record_judgment(7, "ann", "a")
    filled.record_judgment(7, "bob", "b")  # unresolved split
    filled.record_judgment(8, "ann", "b")
    filled.set_mark(8, "exclude", True)
    filled.set_mark(8, "exclude", False)  # the latest mark wins
    pairs = filled.training_pairs()
    assert pairs["comparison_id"].tolist() == [1, 2, 8]
    assert pairs.loc[0, "chosen"] == "answer A0" and pairs.loc[0, "rejected"] == "answer B0"
    assert pairs.loc[1, "chosen"] == "answer B1" and pairs.loc[1, "rejected"] == "answer A1"
    assert pairs.loc[0, "prompt"] == "prompt 0" and pairs.loc[0, "strength"] == 4
    assert pairs.loc[0, "prompt_messages"] is None
    assert set(pairs.columns) >= {"prompt", "chosen", "rejected", "choice", "annotator", "judgment_id"}


def test_marks(filled):
    assert filled.marked("flag") == set()
    filled.set_mark(3, "flag", True, annotator="ann", note="check facts")
    filled.set_mark(4, "flag", True)
    filled.set_mark(4, "flag", False)
    filled.set_mark(5, "exclude", True)
    assert filled.marked("flag") == {3}
    assert filled.marked("exclude") == {5}
    with pytest.raises(ValueError, match="mark"):
        filled.set_mark(3, "hide", True)
    with pytest.raises(KeyError):
        filled.set_mark(404, "flag", True)


def test_statistics(filled):
    filled.record_judgment(1, "ann", "a", shown_at=0.0)
    filled.record_judgment(2, "ann", "tie")
    filled.record_judgment(3, "ann", "skip")
    filled.record_judgment(1, "bob", "b")
    filled.set_mark(1, "flag", True)
    stats = filled.statistics()
    assert stats["comparisons"] == 10 and stats["judgments"] == 4 and stats["schema_version"] == SCHEMA_VERSION
    assert stats["judged_comparisons"] == 2
    assert stats["labels"] == {"a_or_b": 2, "tie": 1, "both_bad": 0, "skip": 1}
    assert stats["trainable_pairs"] == 0  # comparison 1 is split 1:1
    assert stats["flagged"] == 1 and stats["excluded"] == 0
    ann = next(d for d in stats["annotators_detail"] if d["name"] == "ann")
    assert (ann["judged"], ann["preferences"], ann["ties"], ann["skips"]) == (2, 1, 1, 1)
    assert ann["seconds_per_item"] > 0


def test_comparison_sides(filled):
    sides = {filled.comparison(c).left for c in range(1, 11)}
    assert sides == {"a", "b"}  # randomised per comparison
    c = filled.comparison(1)
    assert c == filled.comparison(1)
    assert {c.side("left"), c.side("right")} == {"a", "b"}
    with pytest.raises(KeyError):
        filled.comparison(404)


# ------------------------------------------------------------- runs, caches
def test_runs_metrics_and_pair_scores(filled):
    run = filled.create_run("head", "all-MiniLM-L6-v2", {"lr": 1e-3}, data_snapshot={"judgments": 3})
    filled.add_metrics(run, 10, "train", {"loss": 0.69, "accuracy": 0.5}, epoch=0.5)
    filled.add_metrics(run, 20, "validation", {"loss": 0.6})
    metrics = filled.run_metrics(run)
    assert metrics[["step", "split", "name"]].values.tolist() == [
        [10, "train", "loss"],
        [10, "train", "accuracy"],
        [20, "validation", "loss"],
    ]
    assert metrics["value"].tolist() == pytest.approx([0.69, 0.5, 0.6])
    filled.add_pair_scores(run, 10, [(1, "train", "a", 0.5, 0.1), (2, "validation", "b", -0.2, 0.3)])
    filled.add_pair_scores(run, 20, [(1, "train", "a", 1.5, 0.1)])
    latest = filled.pair_scores(run)
    assert latest["comparison_id"].tolist() == [1] and latest["margin"].tolist() == pytest.approx([1.4])
    early = filled.pair_scores(run, step=10)
    assert early["margin"].tolist() == pytest.approx([0.4, -0.5]) and early["chosen"].tolist() == ["a", "b"]
    assert filled.pair_scores(filled.create_run("head", "x", {})).empty
    filled.update_run(run, status="finished", message="done", summary={"accuracy": 0.7})
    info = filled.run(run)
    assert info["status"] == "finished" and info["finished_at"] is not None
    assert info["config"] == {"lr": 1e-3} and info["summary"] == {"accuracy": 0.7}
    assert info["data_snapshot"] == {"judgments": 3}
    assert filled.runs()["status"].tolist() == ["finished", "running"]
    with pytest.raises(KeyError):
        filled.run(99)


def test_embedding_cache(project):
    rng = np.random.default_rng(0)
    vectors = {f"h{i}": rng.standard_normal(384).astype(np.float32) for i in range(1000)}
    project.store_embeddings("minilm", vectors)
    got = project.cached_embeddings("minilm", list(vectors) + ["missing"])
    assert set(got) == set(vectors)
    assert all(np.array_equal(got[h], v) and got[h].dtype == np.float32 for h, v in vectors.items())
    assert project.cached_embeddings("other-backbone", ["h1"]) == {}
    project.store_embeddings("minilm", {"h1": np.zeros(384)})
    assert not project.cached_embeddings("minilm", ["h1"])["h1"].any()


def test_another_connection_s_skip_reopens_for_the_same_annotator(filled):
    drain(filled, "ann", "prompt")
    assert filled.next_comparison("ann", "prompt") is None
    with Project.open(filled.path) as second_window:
        second_window.record_judgment(4, "ann", "skip")
    assert filled.next_comparison("ann", "prompt") == 4
    with Project.open(filled.path) as second_window:
        second_window.record_judgment(4, "bob", "a")  # only closes: nothing comes back
    assert filled.next_comparison("ann", "prompt") == 4
    filled.record_judgment(4, "ann", "tie")
    assert filled.next_comparison("ann", "prompt") is None


def test_model_orders_follow_new_scores_and_undo(filled):
    run = filled.create_run("head", "minilm", {})
    filled.add_pair_scores(run, 1, [(1, "unlabelled", "a", 0.5, 0.0), (2, "unlabelled", "a", 0.1, 0.0)])
    assert filled.next_comparison("ann", "uncertain") == 2
    filled.record_judgment(2, "ann", "a")
    assert filled.next_comparison("ann", "uncertain") == 1
    # More scores for the same evaluation (written in batches) join the queue.
    filled.add_pair_scores(run, 1, [(3, "unlabelled", "a", 0.0, 0.01)])
    assert filled.next_comparison("ann", "uncertain") == 3
    filled.record_judgment(3, "ann", "b")
    filled.record_judgment(1, "ann", "b")
    assert filled.next_comparison("ann", "uncertain") == 4  # every scored pair answered: falls back to new
    filled.undo_last("ann")  # 1 is open again
    assert filled.next_comparison("ann", "uncertain") == 1
    with Project.open(filled.path) as other:  # another window scores a later step
        other.add_pair_scores(run, 2, [(5, "unlabelled", "a", 0.0, 0.0)])
    assert filled.next_comparison("ann", "uncertain") == 5
