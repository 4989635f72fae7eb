"""LabelSession without Qt: what it writes to a real project file for each operation."""

from __future__ import annotations

import itertools

import pytest
from wb_testing import sql

from workbench.core.label_session import DEFAULT_STRENGTH, LabelSession
from workbench.core.records import PairRecord, PromptRecord, Text
from workbench.core.store import READ_ONLY_MESSAGE, Project

ANN = "ann"


def records(n: int = 8, ranked_k: int = 0) -> list:
    out: list = [PairRecord(Text(f"Prompt {i}"), Text(f"A{i}"), Text(f"B{i}")) for i in range(n)]
    if ranked_k:
        out.append(PromptRecord(Text("Rank these"), [Text(f"R{j}") for j in range(ranked_k)]))
    return out


@pytest.fixture
def filled(tmp_path):
    with Project.create(tmp_path / "session.wbp", seed=3) as p:
        p.add_records(records(), source="test")
        yield p


def session_on(project: Project) -> LabelSession:
    """A session whose clock ticks one second per reading, so shown_at values are known and distinct."""
    ticks = itertools.count(1000.0)
    session = LabelSession(project, ANN, clock=lambda: float(next(ticks)))
    assert session.next() is not None
    return session


def test_left_and_right_map_to_the_stored_response_whichever_side_it_is_shown_on(filled):
    session = session_on(filled)
    lefts = set()
    for i in range(8):
        comp = session.current
        lefts.add(comp.left)
        left_text, right_text = session.sides()
        assert left_text == (comp.response_a if comp.left == "a" else comp.response_b)
        assert right_text == (comp.response_b if comp.left == "a" else comp.response_a)
        side = "left" if i % 2 else "right"
        shown_at = session.shown_at
        assert session.choose(side).ok
        j = filled.current_judgment(comp.id, ANN)
        expected = comp.left if side == "left" else ("b" if comp.left == "a" else "a")
        assert (j.choice, j.left, j.strength, j.shown_at) == (expected, comp.left, DEFAULT_STRENGTH, shown_at)
        assert session.shown_side(j.choice) == side
        session.next()
    assert lefts == {"a", "b"}  # the seed shows some pairs swapped, so both mappings were exercised
    assert session.next() is None and session.current is None
    assert session.judgments == 8
    assert session.position() == (8, 8)


def test_pending_note_flag_and_strength_are_recorded_then_cleared_for_the_next_comparison(filled):
    session = session_on(filled)
    first = session.current
    session.set_note("  unclear prompt  ")
    session.toggle_flag()
    session.set_strength(1)
    session.set_strength(7)  # not a level: ignored
    assert session.choose("left").ok
    j = filled.current_judgment(first.id, ANN)
    assert (j.note, j.flags, j.strength) == ("unclear prompt", ("flag",), 1)

    session.next()
    assert (session.pending.note, session.pending.flag, session.pending.strength) == ("", False, DEFAULT_STRENGTH)
    second = session.current
    session.toggle_flag()
    session.toggle_flag()
    assert session.choose("right", much=True).ok
    j = filled.current_judgment(second.id, ANN)
    assert (j.flags, j.strength) == ((), 4)

    session.next()
    third = session.current
    session.set_strength(2)
    assert session.commit("tie", 2).ok  # a strength goes with a or b only
    assert filled.current_judgment(third.id, ANN).strength is None


def test_skip_is_stored_but_not_counted(filled):
    session = session_on(filled)
    comp = session.current
    assert session.skip().ok
    assert filled.current_judgment(comp.id, ANN).choice == "skip"
    assert session.judgments == 0
    session.next()
    assert session.current.id != comp.id  # a skipped comparison goes to the back of the queue


def test_undo_walks_back_across_submits_and_seeds_the_answer_being_revised(filled):
    session = session_on(filled)
    first = session.current
    session.set_note("first note")
    session.set_strength(2)
    assert session.choose("left").ok
    session.next()
    second = session.current
    session.toggle_flag()
    assert session.commit("both_bad").ok
    session.next()
    assert session.judgments == 2

    undone = session.undo()
    assert undone.ok and undone.undone.comparison_id == second.id
    assert session.current.id == second.id and session.previous.choice == "both_bad"
    assert session.pending.flag and session.judgments == 1
    assert filled.current_judgment(second.id, ANN) is None or filled.current_judgment(second.id, ANN).choice is None

    assert session.undo().ok
    assert session.current.id == first.id
    assert session.shown_side(session.previous.choice) == "left"
    assert (session.pending.note, session.pending.strength) == ("first note", 2)
    assert session.judgments == 0

    # Answer again, differently: the new answer is what stands.
    assert session.choose("right").ok
    j = filled.current_judgment(first.id, ANN)
    assert j.choice == ("b" if first.left == "a" else "a") and j.note == "first note"

    assert session.undo().ok  # takes back the re-answer
    nothing = session.undo()
    assert not nothing.ok and nothing.message == "Nothing to undo."


def test_rank_records_every_pair_of_the_ranked_responses(tmp_path):
    with Project.create(tmp_path / "rank.wbp", seed=3) as project:
        project.add_records(records(n=0, ranked_k=4), source="test")
        session = session_on(project)
        comp = session.current
        responses = sorted({r for _, ra, rb in _comparisons(project) for r in (ra, rb)})
        assert len(responses) == 4 and comp.response_a_id in responses
        order = list(reversed(responses))  # the last response best
        session.set_note("ranked")
        session.toggle_flag()
        outcome = session.rank(order)
        assert outcome.ok and outcome.count == 6 and "6 pairwise" in outcome.message
        assert session.judgments == 6
        place = {rid: i for i, rid in enumerate(order)}
        for cid, ra, rb in _comparisons(project):
            j = project.current_judgment(cid, ANN)
            assert j.choice == ("a" if place[ra] < place[rb] else "b")
            assert (j.note, j.flags, j.shown_at) == ("ranked", ("flag",), session.shown_at)


def _comparisons(project: Project) -> list[tuple[int, int, int]]:
    return sql(project, "SELECT id, response_a, response_b FROM comparisons")


def test_a_read_only_project_refuses_every_write_with_a_message(tmp_path, monkeypatch):
    path = tmp_path / "ro.wbp"
    with Project.create(path, seed=3) as p:
        p.add_records(records(n=3, ranked_k=3), source="test")
        p.record_judgment(1, ANN, "a", strength=3, left="a")
    from workbench.core import store

    monkeypatch.setattr(store, "probe_read_only", lambda path: "read-only file system")  # as on a read-only mount
    with Project.open(path) as project:
        session = LabelSession(project, ANN)
        assert session.read_only
        assert session.next() is not None  # reading goes on
        before = sql(project, "SELECT COUNT(*) FROM judgments")[0][0]
        for outcome in (
            session.choose("left"),
            session.skip(),
            session.commit("tie"),
            session.undo(),
            session.rank([1, 2, 3]),
            session.save_guidelines("new rules"),
        ):
            assert not outcome.ok and outcome.message == READ_ONLY_MESSAGE.format(reason="read-only file system")
        assert sql(project, "SELECT COUNT(*) FROM judgments")[0][0] == before
        assert project.guidelines != "new rules"
        assert session.judgments == 0


def test_nothing_is_written_without_a_comparison_or_an_annotator(filled):
    assert not LabelSession(filled, "").undo().ok
    session = LabelSession(filled, ANN)
    assert not session.commit("a").ok and not session.rank([1, 2]).ok  # nothing shown yet
    assert sql(filled, "SELECT COUNT(*) FROM judgments")[0][0] == 0
