"""The Hugging Face world in and out: dataset folders with splits, other tools' shapes, --columns, and the
``export --splits`` folder that ``datasets.load_dataset`` reads. Each shape's sample copies the columns and
types of its public dataset card (or tool's export format), made small here."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench import cli
from workbench.core.formats import FormatError, import_file, read_records
from workbench.core.store import Project


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def summary(record):
    return (record.prompt.text, record.response_a.text, record.response_b.text, record.choice, record.strength)


# ------------------------------------------------------------------------------------------- folders
def test_a_save_to_disk_dataset_dict_imports_one_split_at_a_time(tmp_path):
    import datasets  # in the test extra: only the test makes the folder; the product reads it with pyarrow

    rows = {
        "train": {"prompt": ["p1", "p2"], "chosen": ["good 1", "good 2"], "rejected": ["bad 1", "bad 2"]},
        "test": {"prompt": ["p3"], "chosen": ["good 3"], "rejected": ["bad 3"]},
    }
    folder = tmp_path / "saved"
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in rows.items()}).save_to_disk(str(folder))
    records, info = read_records(folder, split="test")
    assert [summary(r) for r in records] == [("p3", "good 3", "bad 3", "a", None)]
    assert (info.split, info.shape, info.container) == ("test", "explicit", "arrow")
    with pytest.raises(FormatError, match="splits train, test; choose one with --split NAME"):
        read_records(folder)
    with pytest.raises(FormatError, match="no split 'dev'; its splits are train, test"):
        read_records(folder, split="dev")


def test_a_saved_single_dataset_and_the_command(tmp_path, capsys):
    import datasets

    folder = tmp_path / "one"
    data = {"question": ["What is 2+2?", "Name a colour."], "good": ["4", "Blue"], "bad": ["5", "Loud"]}
    datasets.Dataset.from_dict(data).save_to_disk(str(folder))
    project = tmp_path / "p.wbp"
    args = ["import", str(folder), "--project", str(project), "--columns", "prompt=question,chosen=good,rejected=bad"]
    assert cli.main(args) == 0
    assert "[train] (explicit, 2 rows)" in capsys.readouterr().out
    with Project.open(project) as p:
        pairs = p.training_pairs()
    assert sorted(pairs["prompt"]) == ["Name a colour.", "What is 2+2?"]
    assert sorted(pairs["chosen"]) == ["4", "Blue"]
    # A mapped column that is not there: one line naming it; and --split on a plain file is refused.
    assert cli.main(["import", str(folder), "--project", str(project), "--columns", "prompt=query"]) == 1
    assert '"query"' in capsys.readouterr().err
    plain = tmp_path / "x.jsonl"
    plain.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(FormatError, match="--split applies to a dataset folder"):
        read_records(plain, split="train")


def test_a_hub_folder_with_parquet_splits_in_file_names(tmp_path):
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    pd.DataFrame({"prompt": ["a", "b"], "chosen": ["x", "y"], "rejected": ["z", "w"]}).to_parquet(
        data / "train-00000-of-00001.parquet"
    )
    pd.DataFrame({"prompt": ["c"], "chosen": ["x"], "rejected": ["z"]}).to_parquet(data / "test-00000-of-00001.parquet")
    (tmp_path / "hub" / ".cache").mkdir()  # a download's cache folder is not data
    (tmp_path / "hub" / ".cache" / "junk.json").write_text("{}")
    records, info = read_records(tmp_path / "hub", split="train")
    assert [r.prompt.text for r in records] == ["a", "b"] and info.split == "train"
    records, _ = read_records(tmp_path / "hub", split="test")
    assert [r.prompt.text for r in records] == ["c"]


def test_a_hub_folder_with_readme_configs_names_its_own_splits(tmp_path):
    """RewardBench's card names its splits in the YAML (``filtered``); its ``subset`` is kept as metadata."""
    hub = tmp_path / "reward-bench"
    (hub / "data").mkdir(parents=True)
    (hub / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: raw\n    path: data/raw-*\n"
        "  - split: filtered\n    path: data/filtered-*\n---\n# RewardBench\n"
    )
    row = {
        "prompt": "How do I sort a list?",
        "chosen": "Use sorted(xs).",
        "chosen_model": "gpt-4",
        "rejected": "You cannot.",
        "rejected_model": "llama-7b",
        "subset": "hep-python",
        "id": 7,
    }
    pd.DataFrame([row]).to_parquet(hub / "data" / "filtered-00000-of-00001.parquet")
    pd.DataFrame([row, {**row, "id": 8, "subset": "xstest"}]).to_parquet(hub / "data" / "raw-00000-of-00001.parquet")
    records, info = read_records(hub, split="filtered")
    assert info.shape == "explicit" and len(records) == 1
    assert records[0].metadata["subset"] == "hep-python"
    assert records[0].metadata["chosen_model"] == "gpt-4"
    with pytest.raises(FormatError, match="splits raw, filtered"):
        read_records(hub)


# -------------------------------------------------------------------------------------------- shapes
def test_chat_arena_rows_with_json_encoded_turns(tmp_path):
    """lmsys/lmsys-arena-human-preference-55k: id, model_a, model_b, prompt, response_a, response_b (JSON lists
    of turns as strings), winner_model_a, winner_model_b, winner_tie (int64)."""
    rows = pd.DataFrame(
        {
            "id": [30192, 53567, 65089],
            "model_a": ["gpt-4-1106-preview", "koala-13b", "gpt-3.5-turbo-0613"],
            "model_b": ["gpt-4-0613", "gpt-4-0613", "mistral-medium"],
            "prompt": ['["Is it morally right?"]', '["Hi", "And then?"]', '["Explain X"]'],
            "response_a": ['["It depends."]', '["Hello", "Then this."]', '["X is a letter."]'],
            "response_b": ['["Yes."]', '["Hey", "That."]', '["X is a letter!"]'],
            "winner_model_a": [1, 0, 0],
            "winner_model_b": [0, 1, 0],
            "winner_tie": [0, 0, 1],
        }
    )
    path = tmp_path / "train.csv"
    rows.to_csv(path, index=False)
    records, info = read_records(path)
    assert info.shape == "arena"  # not the unlabelled shape, although response_a and response_b are there
    assert summary(records[0]) == ("Is it morally right?", "It depends.", "Yes.", "a", None)
    assert records[0].metadata == {"id": "30192", "model_a": "gpt-4-1106-preview", "model_b": "gpt-4-0613"}
    multi = records[1]  # two turns: the first user turn is the prompt, each side its own conversation
    assert multi.prompt.messages == [user("Hi")] and multi.choice == "b"
    assert multi.response_a.messages == [assistant("Hello"), user("And then?"), assistant("Then this.")]
    assert multi.response_b.messages == [assistant("Hey"), user("And then?"), assistant("That.")]
    assert records[2].choice == "tie"
    bad = rows.copy()
    bad.loc[1, "winner_model_a"] = 1
    bad.to_csv(path, index=False)
    with pytest.raises(FormatError, match=r"row 2, field \"winner_model_a\": exactly one"):
        read_records(path)


def test_ultrafeedback_binarised_drops_the_repeated_prompt(tmp_path, project):
    """HuggingFaceH4/ultrafeedback_binarized: prompt (string), prompt_id, chosen/rejected/messages (lists of
    {content, role}), score_chosen, score_rejected (float64)."""
    q = "Write a haiku."
    rows = [
        {
            "prompt": q,
            "prompt_id": "abc",
            "chosen": [user(q), assistant("Old pond, a frog.")],
            "rejected": [user(q), assistant("A haiku.")],
            "messages": [user(q), assistant("Old pond, a frog.")],
            "score_chosen": 8.5,
            "score_rejected": 3.0,
        },
        {
            "prompt": "Same?",
            "prompt_id": "def",
            "chosen": [user("Same?"), assistant("Yes")],
            "rejected": [user("Same?"), assistant("Yes.")],
            "messages": [user("Same?"), assistant("Yes")],
            "score_chosen": 5.0,
            "score_rejected": 5.0,
        },
    ]
    path = tmp_path / "train_prefs-00000-of-00001.parquet"
    pd.DataFrame(rows).to_parquet(path)
    records, info = read_records(path)
    # As downloaded from the Hub: the shard names carry the split names (train_prefs, test_prefs, train_sft).
    folder = tmp_path / "ultrafeedback_binarized" / "data"
    folder.mkdir(parents=True)
    for split in ("train_prefs", "test_prefs", "train_sft"):
        pd.DataFrame(rows).to_parquet(folder / f"{split}-00000-of-00001-f4e3b2a1.parquet")
    with pytest.raises(FormatError, match="splits test_prefs, train_prefs, train_sft"):
        read_records(folder.parent)
    assert [summary(r) for r in read_records(folder.parent, split="test_prefs")[0]] == [summary(r) for r in records]
    assert info.shape == "conversational"
    assert records[0].prompt.text == q and records[0].response_a.messages == [assistant("Old pond, a frog.")]
    assert records[0].metadata == {"prompt_id": "abc", "score_chosen": 8.5, "score_rejected": 3.0}
    assert [r.choice for r in records] == ["a", "tie"]  # equal scores are no preference


def test_helpsteer2_preference_strength_maps_onto_our_four_levels(tmp_path):
    """nvidia/HelpSteer2 preference: split, prompt, response_1, response_2, preference_strength (int64,
    -3..3, negative when response 1 is better), preference_statement, preference_elaboration."""
    strengths = [-3, -2, -1, 0, 1, 2, 3]
    rows = [
        {
            "split": "train",
            "prompt": f"prompt {i}",
            "response_1": f"one {i}",
            "response_2": f"two {i}",
            "preference_strength": s,
            "preference_statement": "@Response 1 is better.",
            "preference_elaboration": "Because.",
        }
        for i, s in enumerate(strengths)
    ]
    path = tmp_path / "preference.jsonl.gz"
    import gzip

    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    records, info = read_records(path)
    assert info.shape == "helpsteer2"
    assert [(r.choice, r.strength) for r in records] == [
        ("a", 4),
        ("a", 3),
        ("a", 2),
        ("tie", None),
        ("b", 2),
        ("b", 3),
        ("b", 4),
    ]
    assert records[0].metadata["preference_statement"] == "@Response 1 is better."
    rows[2]["preference_strength"] = 5
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode()))
    with pytest.raises(FormatError, match=r'line 3, field "preference_strength": expected an integer from -3 to 3'):
        read_records(path)


def test_shp_score_pairs(tmp_path):
    """stanfordnlp/SHP: post_id, domain, upvote_ratio, history, c_root_id_A/B, created_at_utc_A/B, score_A/B,
    human_ref_A/B, labels (1: A preferred), seconds_difference, score_ratio."""
    base = {
        "post_id": "himc90",
        "domain": "askculinary_train",
        "upvote_ratio": 0.99,
        "c_root_id_A": "fuwr6az",
        "c_root_id_B": "fuwm7ng",
        "created_at_utc_A": 1593535113,
        "created_at_utc_B": 1593531784,
        "seconds_difference": 3329.0,
    }
    rows = [
        {**base, "history": "How to stop rice burning?", "human_ref_A": "Lower the heat.", "human_ref_B": "Buy a new pot.",
         "score_A": 52, "score_B": 9, "labels": 1, "score_ratio": 5.78},
        {**base, "history": "Best knife?", "human_ref_A": "Any.", "human_ref_B": "A chef's knife.",
         "score_A": 3, "score_B": 40, "labels": 0, "score_ratio": 13.3},
    ]  # fmt: skip
    path = tmp_path / "train.json"
    path.write_text(json.dumps(rows))
    records, info = read_records(path)
    assert info.shape == "shp"
    assert [summary(r) for r in records] == [
        ("How to stop rice burning?", "Lower the heat.", "Buy a new pot.", "a", None),
        ("Best knife?", "Any.", "A chef's knife.", "b", None),
    ]
    assert records[0].metadata["domain"] == "askculinary_train" and records[0].metadata["score_A"] == 52


def test_label_studio_pairwise_export_gives_one_judgment_per_annotation(tmp_path, project):
    """Label Studio's JSON export of the pairwise template: tasks with data {prompt, answer1, answer2} and
    annotations whose result is {type: pairwise, value: {selected: left | right}}."""
    tasks = [
        {
            "id": 1,
            "data": {"prompt": "Capital of France?", "answer1": "Paris", "answer2": "Lyon"},
            "annotations": [
                {"id": 11, "completed_by": 1, "result": [
                    {"value": {"selected": "left"}, "from_name": "comparison", "to_name": "pairwise",
                     "type": "pairwise", "origin": "manual"}], "was_cancelled": False},
                {"id": 12, "completed_by": {"id": 2, "email": "ann@example.org"}, "result": [
                    {"value": {"selected": "right"}, "from_name": "comparison", "to_name": "pairwise",
                     "type": "pairwise"}]},
            ],
            "predictions": [],
        },
        {"id": 2, "data": {"prompt": "2+2?", "answer1": "4", "answer2": "5"}, "annotations": [], "predictions": []},
    ]  # fmt: skip
    path = tmp_path / "project-1-at-2026-11-30.json"
    path.write_text(json.dumps(tasks))
    records, info = read_records(path)
    assert info.shape == "labelstudio"
    assert [(r.prompt.text, r.choice, r.annotator) for r in records] == [
        ("Capital of France?", "a", "labelstudio:1"),
        ("Capital of France?", "b", "labelstudio:ann@example.org"),
        ("2+2?", None, None),
    ]
    summary_ = import_file(project, path)
    assert summary_.comparisons_added == 2 and summary_.judgments_added == 2


def test_prodigy_ab_answers(tmp_path):
    """Prodigy's ab recipes: prompt, A and B ({id, text}), options, accept (["A"] or ["B"]), answer."""

    def task(prompt, a, b, accept, answer="accept"):
        return {
            "prompt": prompt,
            "A": {"id": "gpt-4", "text": a},
            "B": {"id": "llama", "text": b},
            "options": [{"id": "A", "text": a}, {"id": "B", "text": b}],
            "accept": accept,
            "answer": answer,
            "_annotator_id": "haikus-ines",
            "_session_id": "haikus-ines",
        }

    path = tmp_path / "ab.jsonl"
    rows = [task("A haiku", "Old pond", "Frog", ["A"]), task("Limerick", "There once", "A man", ["B"]),
            task("Ode", "O", "Oh", [], answer="ignore")]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, info = read_records(path)
    assert info.shape == "prodigy"
    assert [(summary(r), r.annotator) for r in records] == [
        (("A haiku", "Old pond", "Frog", "a", None), "haikus-ines"),
        (("Limerick", "There once", "A man", "b", None), "haikus-ines"),
        (("Ode", "O", "Oh", None, None), None),
    ]
    assert records[0].metadata["model_a"] == "gpt-4" and records[0].metadata["_session_id"] == "haikus-ines"


# ------------------------------------------------------------------------------------------- exports
def _labelled_project(tmp_path, conversational: bool = False):
    path = tmp_path / "exp.wbp"
    rows = []
    for i in range(30):
        prompt = [user(f"question {i}")] if conversational else f"question {i}"
        good = [assistant(f"good {i}")] if conversational else f"good {i}"
        bad = [assistant(f"bad {i}")] if conversational else f"bad {i}"
        rows.append({"prompt": prompt, "chosen": good, "rejected": bad})
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Project.create(path) as project:
        import_file(project, data)
        ids = project.comparisons_frame()["comparison_id"].tolist()
        project.record_judgment(ids[0], "import:rows.jsonl", "tie", kind="relabel")
        project.record_judgment(ids[1], "import:rows.jsonl", "both_bad", kind="relabel")
    return path


@pytest.mark.parametrize("conversational", [False, True])
def test_export_splits_is_a_dataset_dict_with_ties_apart(tmp_path, conversational, capsys):
    import datasets

    project = _labelled_project(tmp_path, conversational)
    out = tmp_path / "ds"
    assert cli.main(["export", "--project", str(project), "--out", str(out), "--splits"]) == 0
    assert "train 25 pairs, test 3, ties and both-bad 2" in capsys.readouterr().out
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert isinstance(ds, datasets.DatasetDict) and set(ds) == {"train", "test"}
    assert (ds["train"].num_rows, ds["test"].num_rows) == (25, 3)
    assert set(ds["train"].column_names) == {"prompt", "chosen", "rejected"}  # no label: ties are not here
    train_prompts = {json.dumps(p) for p in ds["train"]["prompt"]}
    assert not train_prompts & {json.dumps(p) for p in ds["test"]["prompt"]}  # split by prompt
    if conversational:
        assert ds["train"][0]["prompt"][0]["role"] == "user"
        assert ds["train"][0]["chosen"] == [assistant(ds["train"][0]["chosen"][0]["content"])]
    ties = [json.loads(line) for line in (out / "ties.jsonl").read_text().splitlines()]
    assert sorted(t["label"] for t in ties) == ["both_bad", "tie"]
    # The same seed gives the same split; a folder of other files is refused.
    again = tmp_path / "ds2"
    assert cli.main(["export", "--project", str(project), "--out", str(again), "--splits"]) == 0
    assert (again / "test.jsonl").read_text() == (out / "test.jsonl").read_text()
    for name in ("notes.txt", "README.md"):  # a folder of other files, even one with a README, is never replaced
        other = tmp_path / f"other-{name}"
        other.mkdir()
        (other / name).write_text("mine")
        assert cli.main(["export", "--project", str(project), "--out", str(other), "--splits"]) == 1
        assert (other / name).read_text() == "mine"
    assert cli.main(["export", "--project", str(project), "--out", str(out), "--splits"]) == 0  # ours: replaced


def test_export_splits_takes_the_projects_own_test_split_when_it_has_one(tmp_path):
    """Pairs imported with --test (and every pair of their prompts) are the export's test file, nothing else."""
    from workbench.core.formats import import_file
    from workbench.core.hub import export_splits

    path = _labelled_project(tmp_path)
    held = tmp_path / "held.jsonl"
    held.write_text(
        "".join(
            json.dumps({"prompt": f"held-out question {i}", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
            for i in range(4)
        )
    )
    with Project.open(path) as project:
        import_file(project, held, use_for="test")
        counts = export_splits(project, tmp_path / "own")
    assert counts["test"] == 4
    test_prompts = {json.loads(line)["prompt"] for line in (tmp_path / "own" / "test.jsonl").read_text().splitlines()}
    assert test_prompts == {f"held-out question {i}" for i in range(4)}
    train_prompts = {json.loads(line)["prompt"] for line in (tmp_path / "own" / "train.jsonl").read_text().splitlines()}
    assert not train_prompts & test_prompts
    assert "the project's test split" in (tmp_path / "own" / "README.md").read_text()


def _tasks(**change):
    task = {"id": 1, "data": {"prompt": "p", "answer1": "a", "answer2": "b"}, "annotations": []}
    task.update(change)
    return [task]


@pytest.mark.parametrize(
    ("name", "content", "parts"),
    [
        (
            "ls-selected.json",
            _tasks(annotations=[{"result": [{"type": "pairwise", "value": {"selected": "middle"}}]}]),
            ["row 1", 'field "annotations"', "left"],
        ),
        ("ls-missing.json", _tasks(data={"prompt": "p", "answer1": "a"}), ["row 1", 'field "data.answer2"']),
        (
            "prodigy.jsonl",
            {"prompt": "p", "A": {"id": "x"}, "B": {"text": "b"}, "answer": "accept", "accept": ["A"]},
            ["line 1", 'field "A"', "text"],
        ),
        (
            "prodigy-accept.jsonl",
            {"prompt": "p", "A": {"text": "a"}, "B": {"text": "b"}, "answer": "accept", "accept": ["C"]},
            ["line 1", 'field "accept"'],
        ),
        (
            "shp.jsonl",
            {"history": "h", "human_ref_A": "a", "human_ref_B": "b", "labels": 2},
            ["line 1", 'field "labels"'],
        ),
        (
            "arena.jsonl",
            {"prompt": '["a", "b"]', "response_a": '["x"]', "response_b": '["y", "z"]', "winner_tie": 1},
            ["line 1", 'field "response_a"', "1 turns for 2 prompt turns"],
        ),
    ],
)
def test_bad_rows_of_other_tools_name_file_row_and_field_and_change_nothing(tmp_path, project, name, content, parts):
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text(json.dumps(content) + "\n")
    else:
        path.write_text(json.dumps(content))
    with pytest.raises(FormatError) as err:
        import_file(project, path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for part in parts:
        assert part in message, message
    assert project.statistics()["comparisons"] == 0


def test_a_folder_whose_card_names_missing_files_is_refused(tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n"
    )
    with pytest.raises(FormatError, match=r"split 'train' names files that are not there"):
        read_records(hub)


def test_columns_that_would_hide_a_column_of_the_same_name_are_refused(tmp_path):
    path = tmp_path / "both.jsonl"
    path.write_text(json.dumps({"prompt": "old", "question": "new", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(FormatError, match=r'field "prompt": --columns takes "prompt" from "question"'):
        read_records(path, columns={"prompt": "question"})
    records, _ = read_records(path, columns={"chosen": "rejected", "rejected": "chosen"})  # a swap is fine
    assert (records[0].response_a.text, records[0].response_b.text) == ("b", "a")


def test_errors_in_a_folder_name_the_file_or_the_split_and_row(tmp_path):
    data = tmp_path / "hub" / "data"
    data.mkdir(parents=True)
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    (data / "train-00000-of-00002.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    (data / "train-00001-of-00002.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "a"}) + "\n")
    (data / "test-00000-of-00001.jsonl").write_text(json.dumps(good) + "\n\n" + json.dumps({"prompt": "q"}) + "\n")
    with pytest.raises(FormatError) as err:
        read_records(tmp_path / "hub", split="train")
    assert str(err.value).startswith(f'{tmp_path / "hub"} (split train): row 3, field "rejected"')
    with pytest.raises(FormatError) as err:  # one file: its own name and line
        read_records(tmp_path / "hub", split="test")
    assert str(err.value).startswith(f"{data / 'test-00000-of-00001.jsonl'}: line 3")
