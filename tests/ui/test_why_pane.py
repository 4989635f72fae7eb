"""The Why pane: a pair's sentences highlighted by their effect on a real run's reward (computed in the training
process), what-if edits re-scored, and edited responses added as new comparisons to label."""

from __future__ import annotations

import pytest
from wb_testing import event_names, make_synthetic_project

from workbench.core.store import Project
from workbench.training import process
from workbench.training.config import TrainConfig
from workbench.training.process import TrainerProcess
from workbench.ui.why_pane import WhyPane

PROMPT = "How do I keep basil alive indoors?"
CHOSEN = "Give it a sunny window. Water when the top soil is dry!\nPinch off the flowers so it keeps growing."
REJECTED = "Basil is a plant. I don't know."


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert_dir):
    path = make_synthetic_project(tmp_path_factory.mktemp("why") / "p.wbp")
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=1, max_length=64))
    assert event_names(list(tp.events()))[-1] == "Finished"
    return path, tp.run_id


def _shown(qtbot, pane: WhyPane) -> dict:
    with qtbot.waitSignal(pane.updated, timeout=60_000) as blocker:
        pass
    pane.wait_idle()
    return blocker.args[0]


def _coloured(pane: WhyPane, side: str) -> list[str]:
    white = (255, 255, 255)
    return [t for t, c in pane.highlighted(side) if c.isValid() and (c.red(), c.green(), c.blue()) != white]


@pytest.mark.slow
def test_the_pane_highlights_sentences_and_rescores_an_edit(qtbot, trained):
    path, run = trained
    pane = WhyPane()
    qtbot.addWidget(pane)
    pane.show_pair(path, run, None, PROMPT, CHOSEN, REJECTED)
    result = _shown(qtbot, pane)
    scores = process.run_job("score", project=str(path), run=run, texts=[(PROMPT, CHOSEN), (PROMPT, REJECTED)])
    assert result["margin"] == pytest.approx(scores[0] - scores[1], abs=1e-4)
    assert f"{result['margin']:+.3f}" in pane.summary.text()
    # the view shows the response's text exactly, in runs that are its sentences, coloured by sign
    runs = pane.highlighted("chosen")
    assert "".join(t for t, _ in runs) == CHOSEN
    sentences = result["chosen"]["sentences"]
    for text, _, _, score in sentences:
        colour = next(c for t, c in runs if t == text)
        if score > 0 and abs(score) > 0.05 * max(abs(s[3]) for s in sentences):
            assert colour.green() > colour.red()
        elif score < 0 and abs(score) > 0.05 * max(abs(s[3]) for s in sentences):
            assert colour.red() > colour.green()
    assert _coloured(pane, "chosen")  # something is highlighted

    # what if: an edited response is re-scored after the pause in typing
    pane.what_if.setChecked(True)
    edited = REJECTED + " Maybe water it."
    pane.rejected_edit.setPlainText(edited)
    result = _shown(qtbot, pane)
    fresh = process.run_job("score", project=str(path), run=run, texts=[(PROMPT, CHOSEN), (PROMPT, edited)])
    assert result["r_rejected"] == pytest.approx(fresh[1], abs=1e-4)
    assert result["margin"] == pytest.approx(fresh[0] - fresh[1], abs=1e-4)
    assert f"{fresh[0] - fresh[1]:+.3f}" in pane.summary.text()
    assert "".join(t for t, _ in pane.highlighted("rejected")) == edited
    with Project.open(path) as p:  # nothing was saved by editing
        assert not any(edited == r for r in p.comparisons_frame()["response_b"]) and not any(
            edited == r for r in p.comparisons_frame()["response_a"]
        )


@pytest.mark.slow
def test_add_stores_the_edit_as_a_new_response_with_its_comparisons(qtbot, trained):
    path, run = trained
    with Project.open(path) as p:
        row = p.comparisons_frame().iloc[0]
        before = len(p.comparisons_frame().drop_duplicates("comparison_id"))
    pane = WhyPane()
    qtbot.addWidget(pane)
    pane.show_pair(path, run, int(row["comparison_id"]), row["prompt"], row["response_a"], row["response_b"])
    _shown(qtbot, pane)
    pane.what_if.setChecked(True)
    assert not pane.add_button.isEnabled()  # nothing edited yet
    edited = row["response_a"] + " (edited)"
    pane.chosen_edit.setPlainText(edited)
    assert pane.add_button.isEnabled()
    _shown(qtbot, pane)
    with qtbot.waitSignal(pane.added) as blocker:
        pane.add_button.click()
    assert blocker.args == [2]  # the new response against each of the pair's two
    with Project.open(path) as p:
        frame = p.comparisons_frame().drop_duplicates("comparison_id")
        assert len(frame) == before + 2
        new = frame[(frame["response_a"] == edited) | (frame["response_b"] == edited)]
        assert len(new) == 2 and set(new["prompt"]) == {row["prompt"]}
        others = set(new["response_a"]) | set(new["response_b"])
        assert others == {edited, row["response_a"], row["response_b"]}
    assert not pane.add_button.isEnabled()  # added once


@pytest.mark.slow
def test_add_is_off_for_a_read_only_project_or_an_edited_prompt(qtbot, trained):
    path, run = trained
    pane = WhyPane()
    qtbot.addWidget(pane)
    pane.show_pair(path, run, None, PROMPT, CHOSEN, REJECTED, read_only=True)
    _shown(qtbot, pane)
    pane.what_if.setChecked(True)
    pane.chosen_edit.setPlainText(CHOSEN + " More.")
    assert not pane.add_button.isEnabled() and pane.add_edited() == 0
    _shown(qtbot, pane)
    pane.show_pair(path, run, None, PROMPT, CHOSEN, REJECTED, read_only=False)
    _shown(qtbot, pane)
    pane.chosen_edit.setPlainText(CHOSEN + " More.")
    assert pane.add_button.isEnabled()
    pane.prompt_edit.setPlainText(PROMPT + " Quickly?")
    assert not pane.add_button.isEnabled()
    _shown(qtbot, pane)


@pytest.mark.slow
def test_an_unknown_run_shows_the_error(qtbot, trained):
    path, _ = trained
    pane = WhyPane()
    qtbot.addWidget(pane)
    with qtbot.waitSignal(pane.failed, timeout=60_000) as blocker:
        pane.show_pair(path, 99, None, PROMPT, CHOSEN, REJECTED)
    pane.wait_idle()
    assert "no run 99" in blocker.args[0] and "no run 99" in pane.status.text()
