"""Every bad input a user can hand the importer: one line naming the file, the line or row and the
field, and a project that is left exactly as it was."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from workbench.core import formats
from workbench.core.formats import MAX_TEXT_CHARS, FormatError, import_file

GOOD = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}


@pytest.fixture
def filled(tmp_path, project):
    """A project that already holds data, a human label and a relabel (history)."""
    path = tmp_path / "seed.jsonl"
    path.write_text("".join(json.dumps({**GOOD, "prompt": f"seed {i}"}) + "\n" for i in range(5)))
    import_file(project, path)
    cid = int(project.comparisons_frame()["comparison_id"].iloc[0])
    project.record_judgment(cid, "alice", "a", strength=3)
    project.record_judgment(cid, "alice", "tie", kind="relabel")
    return project


def snapshot(project) -> str:
    """Everything a user can see of the project's content, as text (NaN != NaN defeats comparing frames
    as dicts)."""
    return json.dumps(
        [project.statistics(), project.judgment_log().to_json(orient="split"),
         project.comparisons_frame().to_json(orient="split")],
        sort_keys=True, default=str,
    )


def rejects(project, path, *parts, format="auto"):
    """Import ``path``; assert it fails with a one-line message holding every part, and changes nothing."""
    before = snapshot(project)
    with pytest.raises(FormatError) as err:
        import_file(project, path, format=format)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for part in parts:
        assert part in message, message
    assert snapshot(project) == before
    return err.value


def jsonl(tmp_path, *lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def test_malformed_json_line(tmp_path, filled):
    path = jsonl(tmp_path, GOOD, GOOD, '{"prompt": "x", "chosen": "y" "rejected": "z"}')
    err = rejects(filled, path, "line 3: not valid JSON: Expecting ',' delimiter (column 31)")
    assert err.line == 3


def test_line_that_is_not_an_object(tmp_path, filled):
    rejects(filled, jsonl(tmp_path, GOOD, '["a", "b"]'), "line 2: expected a JSON object, got a list")


def test_missing_column_in_one_row(tmp_path, filled):
    path = jsonl(tmp_path, GOOD, {"prompt": "p", "chosen": "c", "rejectd": "r"})
    rejects(filled, path, 'line 2, field "rejected": missing', 'did you mean "rejected" for "rejectd"?')


def test_misnamed_column_fits_no_shape(tmp_path, filled):
    path = jsonl(tmp_path, {"prompt": "p", "choosen": "c", "rejected": "r"})
    err = rejects(filled, path, 'field "choosen"', 'found fields "prompt", "choosen", "rejected"',
                  "expected explicit (prompt, chosen, rejected)", "unlabeled (prompt with response_a",
                  'did you mean "chosen" for "choosen"?')
    assert err.field == "choosen"


def test_file_with_unrelated_columns(tmp_path, filled):
    rejects(filled, jsonl(tmp_path, {"question": "q", "answer": "a"}), 'found fields "question", "answer"',
            "expected explicit")


@pytest.mark.parametrize(
    "value, got",
    [(42, "got int"), (None, "got null"), ({"text": "4"}, 'got an object (keys "text")'), (True, "got a boolean"),
     (4.5, "got float")],
)
def test_wrong_type_where_text_is_expected(tmp_path, filled, value, got):
    path = jsonl(tmp_path, GOOD, GOOD, {**GOOD, "chosen": value})
    rejects(filled, path, 'line 3, field "chosen": expected a string or a list of messages', got)


def test_bad_messages(tmp_path, filled):
    path = jsonl(tmp_path, {**GOOD, "chosen": [{"role": "assistant", "content": 4}]})
    rejects(filled, path, 'line 1, field "chosen": message 1: "content" must be a string, got int')
    path = jsonl(tmp_path, {**GOOD, "rejected": [{"speaker": "bot", "text": "x"}]})
    rejects(filled, path, 'line 1, field "rejected": message 1 has no "role" string (its keys: "speaker", "text")')


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_file(tmp_path, filled, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    rejects(filled, path, "the file is empty")


@pytest.mark.parametrize("name, content", [("empty.json", "[]"), ("empty.csv", "prompt,chosen,rejected\n")])
def test_file_without_rows(tmp_path, filled, name, content):
    path = tmp_path / name
    path.write_text(content)
    rejects(filled, path, "the file holds no rows")


def test_not_utf8(tmp_path, filled):
    path = tmp_path / "latin1.jsonl"
    good = (json.dumps(GOOD) + "\n").encode()
    path.write_bytes(good + '{"prompt": "caf\u00e9", "chosen": "a", "rejected": "b"}\n'.encode("latin-1"))
    offset = len(good) + len(b'{"prompt": "caf')
    err = rejects(filled, path, "line 2: not UTF-8 text", f"byte 0xe9 at byte offset {offset}")
    assert err.line == 2


def test_not_utf8_in_csv(tmp_path, filled):
    path = tmp_path / "latin1.csv"
    path.write_bytes("prompt,chosen,rejected\np,a,b\np2,caf\u00e9,b\n".encode("latin-1"))
    rejects(filled, path, "line 3: not UTF-8 text", "byte 0xe9 at byte offset 35")


def test_utf16(tmp_path, filled):
    path = tmp_path / "utf16.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\n").encode("utf-16"))
    rejects(filled, path, "UTF-16", "save it as UTF-8")


def test_path_not_found(tmp_path, filled):
    rejects(filled, tmp_path / "nothing.jsonl", "no such file")


def test_path_is_a_directory(tmp_path, filled):
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    rejects(filled, folder, "is a directory")


def test_path_not_readable(tmp_path, filled, monkeypatch):
    path = jsonl(tmp_path, GOOD)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make open() refuse as it does for everyone else

        def refuse(p):
            raise PermissionError(13, "Permission denied", str(p))

        monkeypatch.setattr(formats, "_read_file", refuse)
    try:
        rejects(filled, path, "permission denied")
    finally:
        path.chmod(0o644)


def test_text_over_the_limit_fails_fast(tmp_path, filled):
    path = jsonl(tmp_path, GOOD, {**GOOD, "rejected": "x" * (10 * MAX_TEXT_CHARS)})
    start = time.perf_counter()
    rejects(filled, path, 'line 2, field "rejected": text of 10,000,000 characters is over the limit of 1,000,000')
    assert time.perf_counter() - start < 3.0


def test_messages_over_the_limit(tmp_path, filled):
    half = "y" * (MAX_TEXT_CHARS // 2 + 1)
    messages = [{"role": "user", "content": half}, {"role": "assistant", "content": half}]
    path = jsonl(tmp_path, {**GOOD, "chosen": messages})
    rejects(filled, path, 'line 1, field "chosen": text of 1,000,002 characters is over the limit')


def test_parquet_struct_where_text_is_expected(tmp_path, filled):
    path = tmp_path / "nested.parquet"
    pd.DataFrame({"prompt": ["p1", "p2"], "chosen": [{"text": "a", "score": 1}, {"text": "b", "score": 2}],
                  "rejected": ["r1", "r2"]}).to_parquet(path)
    rejects(filled, path, 'row 1, field "chosen": expected a string or a list of messages, got an object')


def test_parquet_list_of_structs_that_are_not_messages(tmp_path, filled):
    path = tmp_path / "junk.parquet"
    junk = [[{"text": "a", "score": 1}], [{"text": "b", "score": 2}]]
    pd.DataFrame({"prompt": ["p1", "p2"], "chosen": ["c1", "c2"], "rejected": junk}).to_parquet(path)
    rejects(filled, path, 'row 1, field "rejected": message 1 has no "role" string', format="explicit")


def test_parquet_null_text(tmp_path, filled):
    path = tmp_path / "nulls.parquet"
    pd.DataFrame({"prompt": ["p1", "p2"], "chosen": ["c1", None], "rejected": ["r1", "r2"]}).to_parquet(path)
    rejects(filled, path, 'row 2, field "chosen": expected a string or a list of messages, got null')


def test_not_a_parquet_file(tmp_path, filled):
    path = tmp_path / "fake.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    rejects(filled, path, "not a readable Parquet file")


def test_csv_empty_required_cell(tmp_path, filled):
    path = tmp_path / "gaps.csv"
    path.write_text("prompt,chosen,rejected\np1,a,b\np2,,b\n")
    rejects(filled, path, 'row 2, field "chosen": expected a string or a list of messages, got an empty cell')


def test_csv_ragged_row(tmp_path, filled):
    path = tmp_path / "ragged.csv"
    path.write_text("prompt,chosen,rejected\np1,a,b\np2,a,b,extra,more\n")
    rejects(filled, path, "not a readable CSV file", "line 3")


def test_json_list_row_error_names_the_row(tmp_path, filled):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([GOOD, {**GOOD, "rejected": 7}]))
    rejects(filled, path, 'row 2, field "rejected": expected a string or a list of messages, got int')


def test_malformed_json_document(tmp_path, filled):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"prompt": "p",\n   "chosen": }\n]')
    rejects(filled, path, "line 3: not valid JSON: Expecting value")


@pytest.mark.parametrize("value", [7, "very much", 0, True])
def test_bad_strength(tmp_path, filled, value):
    path = jsonl(tmp_path, GOOD, {**GOOD, "strength": value})
    rejects(filled, path, 'line 2, field "strength": expected a strength of 1 to 4')


def test_bad_margin(tmp_path, filled):
    path = jsonl(tmp_path, {**GOOD, "margin": "big"})
    rejects(filled, path, "line 1, field \"margin\": expected a number, got 'big'")


def test_bad_annotator(tmp_path, filled):
    rejects(filled, jsonl(tmp_path, {**GOOD, "annotator": 12}), 'line 1, field "annotator": expected an annotator name')


def test_transcript_without_assistant_turn(tmp_path, filled):
    path = jsonl(tmp_path, {"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: no"},
                 {"chosen": "Human: hi there", "rejected": "\n\nHuman: hi\n\nAssistant: no"})
    rejects(filled, path, 'line 2, field "chosen": no "\\n\\nAssistant:" turn')


def test_transcripts_without_a_shared_prompt(tmp_path, filled):
    path = jsonl(tmp_path, {"chosen": "\n\nHuman: one\n\nAssistant: yo", "rejected": "\n\nHuman: two\n\nAssistant: no"})
    rejects(filled, path, 'line 1, field "rejected": "chosen" and "rejected" part at character 9')


def test_too_few_responses(tmp_path, filled):
    rejects(filled, jsonl(tmp_path, {"prompt": "p", "responses": ["only one"]}),
            'line 1, field "responses": expected at least 2 responses')


def test_error_on_the_last_line_writes_nothing(tmp_path, filled):
    """All or nothing: 999 good rows and one bad one add nothing."""
    rows = [{**GOOD, "prompt": f"new {i}"} for i in range(999)]
    rejects(filled, jsonl(tmp_path, *rows, {**GOOD, "chosen": None}), 'line 1000, field "chosen"')


def test_unknown_extension_with_unclear_content(tmp_path, filled):
    path = tmp_path / "data.txt"
    path.write_text("prompt\tchosen\n")
    rejects(filled, path, "cannot tell the file type from its name")
