"""Annotator reliability (workbench.core.reliability) and the label sources of ``Project.training_pairs``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.core import reliability
from workbench.core.records import PairRecord, Text
from workbench.core.store import LABEL_SOURCES, TIE_RULES, Project
from workbench.core.team import team_statistics
from workbench.training.config import LabelSource, TieRule

REPO = Path(__file__).resolve().parents[2]
#: simulated annotators: the chance of giving the true preference (None: picks the left side 80% of the time)
ACCURACY = {"ann90": 0.9, "ann80": 0.8, "ann75": 0.75, "ann55": 0.55, "lefty": None}


def simulate(path: Path, n: int = 300, seed: int = 0, swap: bool = False) -> dict[str, bool]:
    """``n`` comparisons, each labelled by two of the ACCURACY annotators. Response "good i" is truly better.
    ``swap`` stores every pair the other way round (and maps each label): the same data in another order.
    Returns the truth as text -> stored a is better."""
    rng = np.random.default_rng(seed)
    names = list(ACCURACY)
    a_first = rng.random(n) < 0.5  # random storage order, as after an import of shuffled pairs
    if swap:
        a_first = ~a_first
    records = []
    for i in range(n):
        good, bad = Text(f"good {i}"), Text(f"bad {i}")
        records.append(PairRecord(Text(f"prompt {i}"), *((good, bad) if a_first[i] else (bad, good))))
    with Project.create(path, seed=1) as p:
        p.add_records(records, source="sim.jsonl")
        ids = {row.prompt: int(row.comparison_id) for row in p.comparisons_frame().itertuples()}
        with p.transaction():  # one commit for all (each judgment alone would wait for its fsync)
            for i in range(n):
                cid = ids[f"prompt {i}"]
                good_side = "a" if a_first[i] else "b"
                bad_side = "b" if good_side == "a" else "a"
                left = good_side if rng.random() < 0.5 else bad_side  # the response shown on the left
                for w in rng.choice(len(names), 2, replace=False):
                    accuracy = ACCURACY[names[w]]
                    if accuracy is None:
                        choice = left if rng.random() < 0.8 else ("b" if left == "a" else "a")
                    else:
                        choice = good_side if rng.random() < accuracy else bad_side
                    p.record_judgment(cid, names[w], choice, left=left)
    return {f"good {i}": bool(a_first[i]) for i in range(n)}


def test_the_numpy_em_reaches_crowdkits_fit():
    rng = np.random.default_rng(3)
    task = np.repeat(np.arange(200), 2)
    worker = np.concatenate([rng.choice(4, 2, replace=False) for _ in range(200)])
    truth = rng.integers(0, 2, 200)
    skill = np.array([0.95, 0.8, 0.7, 0.6])
    label = np.where(rng.random(400) < skill[worker], truth[task], 1 - truth[task])
    theirs, priors = reliability.crowdkit_fit(task, worker, label)
    ours, our_priors = reliability.em_one_coin(task, worker, label, 200, 4)
    np.testing.assert_allclose(ours, [theirs[w] for w in range(4)], atol=1e-6)
    np.testing.assert_allclose(our_priors, priors, atol=1e-6)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    path = tmp_path_factory.mktemp("rel") / "sim.wbp"
    truth = simulate(path)
    with Project.open(path) as p:
        report = reliability.reliability_report(p, resamples=100)
        post = reliability.posteriors(p)
        frame = p.comparisons_frame()
        labels = p.labels()
    # the share of single labels that name the truly better response ("good ..."), about 0.70 by ACCURACY
    picked = np.where(labels["choice"] == "a", labels["response_a"], labels["response_b"])
    single = float(np.mean([t.startswith("good") for t in picked]))
    return path, truth, report, post, frame, single


@pytest.mark.slow
def test_skills_rank_the_annotators_and_intervals_cover_the_truth(simulated):
    _, _, report, *_ = simulated
    rows = report["annotators"]
    assert report["fitted"] and report["resamples"] == 100 and report["comparisons_multiply_labelled"] == 300
    assert rows["ann90"]["skill"] > rows["ann75"]["skill"] > rows["ann55"]["skill"]
    assert rows["ann80"]["skill"] > rows["lefty"]["skill"]
    covered = 0
    for name, accuracy in ACCURACY.items():
        lo, hi = rows[name]["ci95"]
        assert lo <= rows[name]["skill"] <= hi
        covered += lo <= (0.5 if accuracy is None else accuracy) <= hi
    assert covered >= 4
    assert rows["ann90"]["labels"] == rows["ann90"]["shared_labels"] > 0


def test_the_posterior_beats_a_single_label(simulated):
    _, truth, _, post, frame, single = simulated
    by_id = frame.set_index("comparison_id")
    right = 0
    for cid, p_a in zip(post["comparison_id"], post["p_a"]):
        a_text = by_id.loc[cid, "response_a"]
        a_is_good = a_text.startswith("good")
        right += (p_a > 0.5) == a_is_good
    assert right / len(post) > single + 0.03
    assert ((post["p_a"] > 0) & (post["p_a"] < 1)).all()


@pytest.mark.slow
def test_storing_pairs_the_other_way_round_changes_nothing(simulated, tmp_path):
    path, _, report, post, frame, _ = simulated
    swapped = tmp_path / "swapped.wbp"
    simulate(swapped, swap=True)
    with Project.open(swapped) as q:
        report_q = reliability.reliability_report(q, resamples=100)
        post_q = reliability.posteriors(q)
        frame_q = q.comparisons_frame()
    assert report_q == report

    # P(the "good" response is better), by text: identical whichever response is stored as a
    def p_good(post_, frame_):
        texts = frame_.set_index("comparison_id")["response_a"]
        return {
            texts[c].split()[-1]: (p if texts[c].startswith("good") else 1 - p)
            for c, p in zip(post_["comparison_id"], post_["p_a"])
        }

    ours, theirs = p_good(post, frame), p_good(post_q, frame_q)
    assert ours.keys() == theirs.keys()
    np.testing.assert_allclose([ours[k] for k in ours], [theirs[k] for k in ours], atol=1e-12)


def test_no_overlap_means_no_skills_and_vote_shares(tmp_path):
    with Project.create(tmp_path / "p.wbp") as p:
        p.add_records([PairRecord(Text(f"q{i}"), Text(f"x{i}"), Text(f"y{i}")) for i in range(4)], source="x.jsonl")
        p.record_judgment(1, "alice", "a")
        p.record_judgment(2, "bob", "b")
        report = reliability.reliability_report(p)
        post = reliability.posteriors(p)
    assert not report["fitted"] and report["annotators"]["alice"]["skill"] is None
    assert report["annotators"]["alice"]["ci95"] is None and report["resamples"] == 0
    assert post["p_a"].tolist() == [1.0, 0.0]


def test_crowdkit_and_the_report_keep_torch_out():
    """The Data view computes reliability in the GUI process (a worker thread): no torch may come with it."""
    code = (
        "import sys; from workbench.core import reliability as r; import numpy as np;"
        "r.crowdkit_fit(np.array([0,0,1,1]), np.array([0,1,0,1]), np.array([0,1,1,1]));"
        "bad = [m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_stats_carry_reliability_and_assignment(simulated):
    path, *_ = simulated
    with Project.open(path) as p:
        stats = team_statistics(p)
    assert stats["reliability"]["annotators"].keys() == set(ACCURACY) and stats["assignment"] is None


# ------------------------------------------------------------------------------ label sources
def test_label_sources_match_the_config():
    assert LabelSource.__args__ == LABEL_SOURCES and TieRule.__args__ == TIE_RULES  # type: ignore[attr-defined]


@pytest.fixture
def voted(tmp_path):
    """Comparison 1: alice a, bob a, carol b, then an adjudication b; 2: alice tie, bob tie; 3: alice b then
    (later) bob a: an even split; 4: alice a and carol b after: carol wrote last."""
    with Project.create(tmp_path / "v.wbp") as p:
        p.add_records([PairRecord(Text(f"q{i}"), Text(f"x{i}"), Text(f"y{i}")) for i in range(4)], source="x.jsonl")
        p.record_judgment(1, "alice", "a")
        p.record_judgment(1, "bob", "a")
        p.record_judgment(1, "carol", "b")
        p.record_judgment(1, "judge", "b", kind="adjudication")
        p.record_judgment(2, "alice", "tie")
        p.record_judgment(2, "bob", "tie")
        p.record_judgment(3, "alice", "b")
        p.record_judgment(3, "bob", "a")
        p.record_judgment(4, "alice", "a")
        p.record_judgment(4, "carol", "b")
        yield p


def _choices(frame):
    return {
        int(c): (ch, round(float(t), 6)) for c, ch, t in zip(frame["comparison_id"], frame["choice"], frame["target"])
    }


def test_adjudicated_majority_latest(voted):
    assert _choices(voted.training_pairs()) == {1: ("b", 1.0)}
    assert _choices(voted.training_pairs(labels="majority")) == {1: ("a", 1.0)}
    assert _choices(voted.training_pairs(labels="latest")) == {1: ("b", 1.0), 3: ("a", 1.0), 4: ("b", 1.0)}
    assert _choices(voted.training_pairs(ties="half")) == {1: ("b", 1.0), 2: ("a", 0.5)}
    with pytest.raises(ValueError, match="labels must be one of"):
        voted.training_pairs(labels="newest")


def test_posterior_labels_are_soft(voted):
    frame = voted.training_pairs(labels="posterior", ties="half")
    got = _choices(frame)
    assert got[2] == ("a", 0.5)  # only ties
    assert got[1] == ("b", 1.0)  # adjudicated: the decision, whatever the votes say
    assert set(got) == {1, 2, 3, 4} and all(0.5 <= t <= 1.0 for _, t in got.values())
    assert set(frame["annotator"]) == {"posterior", "adjudication"}
    assert 2 not in _choices(voted.training_pairs(labels="posterior"))
