"""``workbench score``: rows get a score, pairs of every import shape get score_chosen / score_rejected
(unlabelled: score_a / score_b), in JSONL, CSV or Parquet, equal to the scores the app stored."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from export_helpers import app_scores, train_project, training_pairs

from workbench import cli
from workbench.training.export import export_run

pytestmark = pytest.mark.slow  # trains a model, then scores through the command

TOL = 1e-5


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_bert_dir, tiny_gpt2_dir):
    root = tmp_path_factory.mktemp("score")
    trained = train_project(root / "p.wbp", tiny_bert_dir, tiny_gpt2_dir)
    folders = {
        name: export_run(trained.path, trained.runs[name], root / f"rm-{name}", verify_pairs=0).out_dir
        for name in ("finetune", "head")
    }
    pairs = training_pairs(trained.path)
    scores = {name: app_scores(trained.path, trained.runs[name]) for name in folders}
    return folders, pairs, scores


def _score(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["score", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _read(path) -> pd.DataFrame:
    if str(path).endswith(".jsonl"):
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def _write_jsonl(path, rows: list[dict], gz: bool = False) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def test_rows_get_a_score_column_equal_to_the_apps(setup, tmp_path, capsys):
    folders, pairs, scores = setup
    rows = [
        {"id": f"{p['comparison_id']}-{side}", "prompt": p["prompt"], "response": p[side]}
        for p in pairs
        for side in ("chosen", "rejected")
    ]
    _write_jsonl(tmp_path / "rows.jsonl", rows)
    out = tmp_path / "scored.csv"
    code, stdout, err = _score(
        capsys, "--model", str(folders["finetune"]), "--input", str(tmp_path / "rows.jsonl"), "--out", str(out)
    )
    assert code == 0, err
    assert "scoring" in err and "text/s" in err  # the progress bar, on stderr
    assert stdout.startswith(f"scored {len(rows)} rows ({len(rows)} texts, 0 over 40 tokens)")
    df = _read(out)
    assert list(df.columns) == ["id", "prompt", "response", "score"]
    app = scores["finetune"]
    want = [app[p["comparison_id"]][0 if side == "chosen" else 1] for p in pairs for side in ("chosen", "rejected")]
    assert list(df["id"]) == [r["id"] for r in rows]
    assert max(abs(a - b) for a, b in zip(df["score"], want)) <= TOL


@pytest.mark.parametrize("model", ["finetune", "head"])
@pytest.mark.parametrize("shape, suffix", [("explicit", ".parquet"), ("implicit", ".jsonl")])
def test_pairs_come_back_with_score_chosen_and_score_rejected(setup, tmp_path, capsys, model, shape, suffix):
    folders, pairs, scores = setup
    if shape == "explicit":
        rows = [
            {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"], "pair": i}
            for i, p in enumerate(pairs)
        ]
    else:  # HH-RLHF: whole transcripts, the prompt implicit
        rows = [
            {"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"], "pair": i}
            for i, p in enumerate(pairs)
        ]
    src = tmp_path / "pairs.jsonl.gz"
    _write_jsonl(src, rows, gz=True)
    out = tmp_path / f"scored{suffix}"
    code, stdout, err = _score(
        capsys, "--model", str(folders[model]), "--input", str(src), "--out", str(out), "--quiet", "--batch-size", "7"
    )
    assert code == 0, err
    assert not err and "pairwise accuracy" in stdout
    df = _read(out)
    assert list(df.columns) == ["prompt", "chosen", "rejected", "score_chosen", "score_rejected", "pair"]
    assert list(df["prompt"]) == [p["prompt"] for p in pairs]  # implicit transcripts split at the shared prompt
    assert list(df["chosen"]) == [p["chosen"] for p in pairs]
    app = scores[model]
    assert max(abs(a - app[p["comparison_id"]][0]) for a, p in zip(df["score_chosen"], pairs)) <= TOL
    assert max(abs(a - app[p["comparison_id"]][1]) for a, p in zip(df["score_rejected"], pairs)) <= TOL
    accuracy = (df["score_chosen"] > df["score_rejected"]).mean()
    assert f"pairwise accuracy {accuracy:.3f}" in stdout


def test_unlabelled_pairs_and_response_lists(setup, tmp_path, capsys):
    folders, pairs, scores = setup
    app = scores["head"]
    src = tmp_path / "unlabelled.csv"
    pd.DataFrame(
        {
            "prompt": [p["prompt"] for p in pairs],
            "response_a": [p["rejected"] for p in pairs],
            "response_b": [p["chosen"] for p in pairs],
        }
    ).to_csv(src, index=False)
    code, _, err = _score(
        capsys, "--model", str(folders["head"]), "--input", str(src), "--out", str(tmp_path / "u.jsonl"), "--quiet"
    )
    assert code == 0, err
    df = _read(tmp_path / "u.jsonl")
    assert list(df.columns) == ["prompt", "response_a", "response_b", "score_a", "score_b"]
    assert max(abs(a - app[p["comparison_id"]][1]) for a, p in zip(df["score_a"], pairs)) <= TOL
    assert max(abs(b - app[p["comparison_id"]][0]) for b, p in zip(df["score_b"], pairs)) <= TOL

    rows = [{"prompt": p["prompt"], "responses": [p["chosen"], p["rejected"], p["chosen"]]} for p in pairs[:5]]
    _write_jsonl(tmp_path / "k.jsonl", rows)
    code, stdout, err = _score(
        capsys,
        "--model",
        str(folders["head"]),
        "--input",
        str(tmp_path / "k.jsonl"),
        "--out",
        str(tmp_path / "k.parquet"),
        "--quiet",
    )
    assert code == 0, err
    assert stdout.startswith("scored 5 prompts (10 texts,")  # the repeated response is scored once
    df = _read(tmp_path / "k.parquet")
    assert list(df.columns) == ["prompt", "responses", "scores"]
    for scores_k, p in zip(df["scores"], pairs[:5]):
        c, r = app[p["comparison_id"]]
        assert len(scores_k) == 3 and max(abs(a - b) for a, b in zip(scores_k, [c, r, c])) <= TOL


def test_errors_are_one_line(setup, tmp_path, capsys):
    folders, _, _ = setup
    good = tmp_path / "rows.jsonl"
    _write_jsonl(good, [{"prompt": "Hi", "response": "Hello"}])
    bad_shape = tmp_path / "bad.jsonl"
    _write_jsonl(bad_shape, [{"question": "Hi", "answer": "Hello"}])
    missing = tmp_path / "missing.jsonl"
    _write_jsonl(missing, [{"prompt": "Hi", "response": "Hello"}, {"prompt": "Hi", "response": None}])
    model = str(folders["finetune"])
    cases = [
        (
            ["--model", model, "--input", str(bad_shape), "--out", str(tmp_path / "o.jsonl")],
            'fits no known shape; found fields "question", "answer"; expected rows (prompt, response) to score',
        ),
        (["--model", model, "--input", str(missing), "--out", str(tmp_path / "o.jsonl")], 'line 2, field "response"'),
        (
            ["--model", model, "--input", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o.jsonl")],
            "no such file",
        ),
        (["--model", model, "--input", str(good), "--out", str(tmp_path / "o.txt")], "unknown output format .txt"),
        (
            ["--model", str(tmp_path / "nowhere"), "--input", str(good), "--out", str(tmp_path / "o.jsonl")],
            "no such folder",
        ),
        (["--model", str(tmp_path), "--input", str(good), "--out", str(tmp_path / "o.jsonl")], "has no config.json"),
    ]
    for args, message in cases:
        code, stdout, err = _score(capsys, *args, "--quiet")
        lines = err.strip().splitlines()
        assert code == 1 and not stdout and len(lines) == 1, (args, err)
        assert lines[0].startswith("workbench: error: ") and message in lines[0], lines[0]
    assert not (tmp_path / "o.jsonl").exists()


def test_conversations_are_scored_through_the_chat_template(tmp_path, tiny_llama_dir, capsys):
    """A decoder with a chat template whose turns end in eos (= pad): conversational pairs, split into a
    shared prompt and the two assistant turns, score as in the app."""
    from training_helpers import collect

    from workbench.core.records import PairRecord, Text
    from workbench.core.store import Project
    from workbench.training.config import TrainConfig
    from workbench.training.trainer import Trainer

    rows, records = [], []
    for i in range(12):
        user = {"role": "user", "content": f"Question {i}: what about the {'river' if i % 2 else 'garden'}?"}
        good = {"role": "assistant", "content": f"An excellent answer number {i}."}
        bad = {"role": "assistant", "content": f"A plain answer number {i} and more."}
        rows.append({"chosen": [user, good], "rejected": [user, bad]})
        records.append(PairRecord(Text.of([user]), Text.of([good]), Text.of([bad]), choice="a"))
    path = tmp_path / "chat.wbp"
    with Project.create(path) as project:
        project.add_records(records, source="chat.jsonl")
    done = collect(
        Trainer(
            path,
            TrainConfig(
                backbone=tiny_llama_dir,
                mode="finetune",
                learning_rate=5e-3,
                epochs=1,
                max_length=48,
                rescore_train=True,  # every stored score is the final model's (not the epoch's passes)
            ),
        )
    )[-1]
    folder = export_run(path, done.run_id, tmp_path / "rm").out_dir
    assert json.loads((folder / "reward_model.json").read_text())["chat_template"] is True
    _write_jsonl(tmp_path / "chat.jsonl", rows)
    code, _, err = _score(
        capsys,
        "--model",
        str(folder),
        "--input",
        str(tmp_path / "chat.jsonl"),
        "--out",
        str(tmp_path / "s.jsonl"),
        "--quiet",
    )
    assert code == 0, err
    df = _read(tmp_path / "s.jsonl")
    assert list(df.columns) == ["prompt", "chosen", "rejected", "score_chosen", "score_rejected"]
    assert df["prompt"][0] == [rows[0]["chosen"][0]] and df["chosen"][0] == [rows[0]["chosen"][1]]
    app = app_scores(path, done.run_id)
    with Project.open(path) as project:
        frame = project.training_pairs()
    row_of = {
        int(c): int(p.split("Question ")[1].split(":")[0]) for c, p in zip(frame["comparison_id"], frame["prompt"])
    }
    assert sorted(row_of.values()) == list(range(len(rows)))
    by_row = {row_of[c]: scores for c, scores in app.items()}
    want_c = [by_row[i][0] for i in range(len(rows))]
    want_r = [by_row[i][1] for i in range(len(rows))]
    assert max(abs(a) for a in want_c) > 1e-4
    assert max(abs(a - b) for a, b in zip(df["score_chosen"], want_c)) <= TOL
    assert max(abs(a - b) for a, b in zip(df["score_rejected"], want_r)) <= TOL


def test_scoring_with_auto_threads_probes_once_per_machine(setup, tmp_path, capsys, monkeypatch):
    """--threads 0 on a machine with no measured choice: the probe runs on the model, says what it chose, and
    the next call reads it back; the scores are those of any other thread count."""
    from workbench.training import threads

    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "data"))
    folders, pairs, scores = setup
    _write_jsonl(tmp_path / "rows.jsonl", [{"prompt": p["prompt"], "response": p["chosen"]} for p in pairs])
    for k, how in enumerate(("measured now", "measured on an earlier run")):
        out = tmp_path / f"s{k}.jsonl"
        args = ["--model", str(folders["finetune"]), "--input", str(tmp_path / "rows.jsonl"), "--out", str(out)]
        code, _, err = _score(capsys, *args, "--threads", "0")
        assert code == 0, err
        assert "CPU thread" in err and how in err
        want = [scores["finetune"][p["comparison_id"]][0] for p in pairs]
        assert max(abs(a - b) for a, b in zip(_read(out)["score"], want)) <= TOL
    if len(threads.candidates()) > 1:
        assert (tmp_path / "data" / threads.CACHE_FILE).is_file()
