"""Why the model prefers a response: attribution and what-if jobs in the training process, with a real run."""

from __future__ import annotations

import pytest
from wb_testing import event_names, make_synthetic_project

from workbench.training import process
from workbench.training.attribution import METHODS, split_sentences
from workbench.training.config import TrainConfig
from workbench.training.process import TrainerProcess

pytestmark = pytest.mark.slow  # attribution jobs in the training process

PROMPT = "How do I keep basil alive indoors?"
CHOSEN = "Give it a sunny window. Water when the top soil is dry!\nPinch off the flowers so it keeps growing."
REJECTED = "Basil is a plant. I don't know."


@pytest.mark.parametrize(
    "text",
    ["", "One.", "One. Two!  Three?\n\nFour", "no end", 'Dr. Who... said: "hi." Then\nleft.\n', "  lead"],
)
def test_sentences_cover_the_text_exactly(text):
    spans = split_sentences(text)
    assert "".join(text[s:e] for s, e in spans) == text
    assert all(e > s for s, e in spans) and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_sentences_split_at_ends_and_newlines():
    text = "Give it sun. Water it!\nPinch the flowers"
    assert [text[s:e] for s, e in split_sentences(text)] == ["Give it sun. ", "Water it!\n", "Pinch the flowers"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_bert_dir):
    path = make_synthetic_project(tmp_path_factory.mktemp("attr") / "p.wbp")
    tp = TrainerProcess(path, TrainConfig(backbone=tiny_bert_dir, mode="finetune", epochs=1, max_length=64))
    assert event_names(list(tp.events()))[-1] == "Finished"
    return str(path), tp.run_id


def _check_spans(result: dict, text: str) -> None:
    tokens, sentences = result["tokens"], result["sentences"]
    assert tokens and all(t == text[s:e] for t, s, e, _ in tokens)
    assert all(a[2] <= b[1] for a, b in zip(tokens, tokens[1:]))  # in order, not overlapping
    assert "".join(t for t, *_ in sentences) == text  # sentences cover the response exactly
    assert all(t == text[s:e] for t, s, e, _ in sentences)
    # a sentence's score is its tokens' sum, whichever the method
    for _, s, e, score in sentences:
        inside = sum(v for _, ts, _, v in tokens if s <= ts < e)
        assert inside == pytest.approx(score, abs=1e-5)


@pytest.mark.slow
def test_attribution_in_the_training_process_matches_the_runs_scores(trained_run):
    path, run = trained_run
    scores = process.run_job("score", project=path, run=run, texts=[(PROMPT, CHOSEN), (PROMPT, REJECTED)], timeout=300)
    for method in METHODS:
        got = process.run_job(
            "attribute",
            project=path,
            run=run,
            prompt=PROMPT,
            chosen=CHOSEN,
            rejected=REJECTED,
            method=method,
            timeout=300,
        )
        assert got["r_chosen"] == pytest.approx(scores[0], abs=1e-4)
        assert got["r_rejected"] == pytest.approx(scores[1], abs=1e-4)
        assert got["margin"] == pytest.approx(scores[0] - scores[1], abs=1e-4)
        assert got["chosen"]["reward"] == pytest.approx(scores[0], abs=1e-4)  # the attributed reward is the score
        assert got["rejected"]["reward"] == pytest.approx(scores[1], abs=1e-4)
        _check_spans(got["chosen"], CHOSEN)
        _check_spans(got["rejected"], REJECTED)
        assert len(got["chosen"]["sentences"]) == 3 and len(got["rejected"]["sentences"]) == 2
        if method == "ig":  # completeness: the tokens' sum is the reward's change from the baseline
            total = sum(v for *_, v in got["chosen"]["tokens"])
            change = got["chosen"]["reward"] - got["chosen"]["baseline_reward"]
            assert total == pytest.approx(change, abs=0.05 * abs(change) + 1e-3)
        if method == "occlusion":  # a sentence's score is the reward lost without it (all-zero would pass the rest)
            assert any(abs(v) > 1e-6 for *_, v in got["chosen"]["sentences"])


@pytest.mark.slow
def test_what_if_gives_a_fresh_score_of_the_edited_texts(trained_run):
    path, run = trained_run
    edited = CHOSEN + " Also, talk to it kindly."
    got = process.run_job(
        "what_if", project=path, run=run, prompt=PROMPT, chosen=edited, rejected=REJECTED, timeout=300
    )
    fresh = process.run_job("score", project=path, run=run, texts=[(PROMPT, edited), (PROMPT, REJECTED)], timeout=300)
    assert got["r_chosen"] == pytest.approx(fresh[0], abs=1e-4)
    assert got["r_rejected"] == pytest.approx(fresh[1], abs=1e-4)
    assert got["margin"] == pytest.approx(fresh[0] - fresh[1], abs=1e-4)
    assert "chosen" not in got  # no attribution unless asked for
    with_attr = process.run_job(
        "what_if", project=path, run=run, prompt=PROMPT, chosen=edited, rejected=REJECTED, attribute=True, timeout=300
    )
    _check_spans(with_attr["chosen"], edited)


@pytest.mark.slow
def test_an_unknown_run_or_method_is_a_job_error(trained_run):
    path, run = trained_run
    with pytest.raises(process.JobError, match="no run 99"):
        process.run_job("attribute", project=path, run=99, prompt=PROMPT, chosen=CHOSEN, rejected=REJECTED, timeout=120)
    with pytest.raises(process.JobError, match="unknown attribution method 'nope'"):
        process.run_job(
            "attribute",
            project=path,
            run=run,
            prompt=PROMPT,
            chosen=CHOSEN,
            rejected=REJECTED,
            method="nope",
            timeout=120,
        )


@pytest.mark.slow
def test_a_long_prompt_is_cut_from_the_left_and_the_response_still_attributed(trained_run):
    path, run = trained_run
    prompt = "Tell me. " * 80  # far past max_length 64
    score = process.run_job("score", project=path, run=run, texts=[(prompt, CHOSEN)], timeout=300)[0]
    got = process.run_job(
        "attribute", project=path, run=run, prompt=prompt, chosen=CHOSEN, rejected=REJECTED, timeout=300
    )
    assert got["chosen"]["truncated"] and got["chosen"]["reward"] == pytest.approx(score, abs=1e-4)
    _check_spans(got["chosen"], CHOSEN)
