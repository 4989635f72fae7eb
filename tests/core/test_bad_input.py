"""Every bad input a user can hand the importer: one line naming the file, the line or row and the
field, and a project that is left exactly as it was."""

from __future__ import annotations

import gzip
import json
import os
import socket
import sqlite3

import pandas as pd
import pytest
from wb_testing import db_dump, sql

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
        [
            project.statistics(),
            project.judgment_log().to_json(orient="split"),
            project.comparisons_frame().to_json(orient="split"),
        ],
        sort_keys=True,
        default=str,
    )


def dump(project) -> str:
    """The whole database, every table, as SQL text: "unchanged" means byte for byte."""
    return db_dump(project)


def rejects(project, path, *parts, format="auto"):
    """Import ``path``; assert it fails with a one-line message holding every part, and changes nothing."""
    before, before_dump = snapshot(project), dump(project)
    with pytest.raises(FormatError) as err:
        import_file(project, path, format=format)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    message.encode("utf-8")  # printable: no lone surrogate from the data leaks into the message
    for part in parts:
        assert part in message, message
    assert snapshot(project) == before
    assert dump(project) == before_dump
    return err.value


def jsonl(tmp_path, *lines, name="data.jsonl"):
    path = tmp_path / name
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8"
    )
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
    err = rejects(
        filled,
        path,
        'field "choosen"',
        'found fields "prompt", "choosen", "rejected"',
        "expected explicit (prompt, chosen, rejected)",
        "unlabeled (prompt with response_a",
        'did you mean "chosen" for "choosen"?',
    )
    assert err.field == "choosen"


def test_file_with_unrelated_columns(tmp_path, filled):
    rejects(
        filled,
        jsonl(tmp_path, {"question": "q", "answer": "a"}),
        'found fields "question", "answer"',
        "expected explicit",
    )


@pytest.mark.parametrize(
    "value, got",
    [
        (42, "got int"),
        (None, "got null"),
        ({"text": "4"}, 'got an object (keys "text")'),
        (True, "got a boolean"),
        (4.5, "got float"),
    ],
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


def test_text_over_the_limit_is_rejected_with_its_size(tmp_path, filled):
    path = jsonl(tmp_path, GOOD, {**GOOD, "rejected": "x" * (10 * MAX_TEXT_CHARS)})
    rejects(filled, path, 'line 2, field "rejected": text of 10,000,000 characters is over the limit of 1,000,000')


def test_messages_over_the_limit(tmp_path, filled):
    half = "y" * (MAX_TEXT_CHARS // 2 + 1)
    messages = [{"role": "user", "content": half}, {"role": "assistant", "content": half}]
    path = jsonl(tmp_path, {**GOOD, "chosen": messages})
    rejects(filled, path, 'line 1, field "chosen": text of 1,000,002 characters is over the limit')


def test_parquet_struct_where_text_is_expected(tmp_path, filled):
    path = tmp_path / "nested.parquet"
    pd.DataFrame(
        {
            "prompt": ["p1", "p2"],
            "chosen": [{"text": "a", "score": 1}, {"text": "b", "score": 2}],
            "rejected": ["r1", "r2"],
        }
    ).to_parquet(path)
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
    rejects(filled, path, "line 1, field \"margin\": expected a finite number, got 'big'")


def test_bad_annotator(tmp_path, filled):
    rejects(filled, jsonl(tmp_path, {**GOOD, "annotator": 12}), 'line 1, field "annotator": expected an annotator name')


def test_transcript_without_assistant_turn(tmp_path, filled):
    path = jsonl(
        tmp_path,
        {"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: no"},
        {"chosen": "Human: hi there", "rejected": "\n\nHuman: hi\n\nAssistant: no"},
    )
    rejects(filled, path, 'line 2, field "chosen": no "\\n\\nAssistant:" turn')


def test_transcripts_without_a_shared_prompt(tmp_path, filled):
    path = jsonl(tmp_path, {"chosen": "\n\nHuman: one\n\nAssistant: yo", "rejected": "\n\nHuman: two\n\nAssistant: no"})
    rejects(filled, path, 'line 1, field "rejected": "chosen" and "rejected" part at character 9')


def test_too_few_responses(tmp_path, filled):
    rejects(
        filled,
        jsonl(tmp_path, {"prompt": "p", "responses": ["only one"]}),
        'line 1, field "responses": expected at least 2 responses',
    )


def test_error_on_the_last_line_writes_nothing(tmp_path, filled):
    """All or nothing: 999 good rows and one bad one add nothing."""
    rows = [{**GOOD, "prompt": f"new {i}"} for i in range(999)]
    rejects(filled, jsonl(tmp_path, *rows, {**GOOD, "chosen": None}), 'line 1000, field "chosen"')


def test_unknown_extension_with_unclear_content(tmp_path, filled):
    path = tmp_path / "data.txt"
    path.write_text("prompt\tchosen\n")
    rejects(filled, path, "cannot tell the file type from its name")


# ------------------------------------------------------------------------- hostile inputs (issue 10)
def raw(tmp_path, text, name="data.jsonl"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


SURROGATE = '"\\ud800"'  # a JSON escape that decodes to a lone surrogate: not text, SQLite refuses it


def lone(template: str) -> str:
    """``template`` with each "@" replaced by the surrogate escape."""
    return template.replace("@", SURROGATE)


@pytest.mark.parametrize(
    "line, field",
    [
        (lone('{"prompt": @, "chosen": "a", "rejected": "b"}'), "prompt"),
        ('{"prompt": "p", "chosen": "a", "rejected": "b\\udfff"}', "rejected"),
        (lone('{"prompt": "p", "chosen": "a", "rejected": "b", @: 1}'), "\\ud800"),
        (lone('{"prompt": "p", "chosen": "a", "rejected": "b", "annotator": @}'), "annotator"),
        (lone('{"prompt": "p", "chosen": "a", "rejected": "b", "meta": {"k": [1, {"x": @}]}}'), "meta"),
        (
            lone(
                '{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": @}], '
                '"rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "n"}]}'
            ),
            "chosen",
        ),
        (lone('{"prompt": "p", "responses": ["a", @]}'), "responses"),
    ],
)
def test_lone_surrogate_anywhere(tmp_path, filled, line, field):
    path = raw(tmp_path, json.dumps(GOOD) + "\n" + line + "\n")
    rejects(filled, path, f'line 2, field "{field}": holds a lone surrogate escape')


def test_lone_surrogate_in_a_json_list_and_a_csv_cell(tmp_path, filled):
    rejects(
        filled,
        raw(tmp_path, lone('[{"prompt": "p", "chosen": "a", "rejected": @}]'), "d.json"),
        'row 1, field "rejected": holds a lone surrogate',
    )
    cell = '"[{""role"": ""user"", ""content"": ""\\udc80""}]"'
    rejects(
        filled,
        raw(tmp_path, f"prompt,chosen,rejected\np,a,b\n{cell},a,b\n", "d.csv"),
        'row 2, field "prompt": holds a lone surrogate',
    )


def test_a_surrogate_pair_is_text(tmp_path, project):
    path = raw(tmp_path, '{"prompt": "\\ud83d\\ude00", "chosen": "a", "rejected": "b\\\\ud800"}\n')
    import_file(project, path)
    assert project.comparisons_frame()["prompt"].tolist() == ["\U0001f600"]


@pytest.mark.parametrize(
    "line, field",
    [
        ('{"prompt": "p", "chosen": "a", "rejected": "b", "prompt": "q"}', "prompt"),
        ('{"prompt": "p", "chosen": [{"role": "assistant", "role": "user", "content": "x"}], "rejected": "b"}', "role"),
    ],
)
def test_duplicate_json_key(tmp_path, filled, line, field):
    rejects(filled, raw(tmp_path, line + "\n"), f'line 1, field "{field}": this key appears twice')
    rejects(filled, raw(tmp_path, f"[{line}]", "d.json"), f'field "{field}": this key appears twice')


@pytest.mark.parametrize(
    "name, header", [("d.csv", "prompt,chosen,rejected,chosen"), ("d.tsv", "prompt\tchosen\trejected\tprompt")]
)
def test_duplicate_csv_column(tmp_path, filled, name, header):
    sep = "\t" if name.endswith("tsv") else ","
    path = raw(tmp_path, header + "\n" + sep.join("pabc") + "\n", name)
    rejects(filled, path, "field", "this column name appears twice in the header")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "-1", "2.5", "true", '"\\u00b2"', '"nan"', "1e400"])
def test_strength_that_is_not_a_level(tmp_path, filled, value):
    path = raw(tmp_path, json.dumps(GOOD)[:-1] + f', "strength": {value}}}\n')
    rejects(filled, path, 'line 1, field "strength": expected a strength of 1 to 4')


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", '"nan"', '"inf"', "true", "[1]", "1e400"])
def test_margin_that_is_not_a_finite_number(tmp_path, filled, value):
    path = raw(tmp_path, json.dumps(GOOD)[:-1] + f', "margin": {value}}}\n')
    rejects(filled, path, 'line 1, field "margin": expected a finite number')


def test_margin_nan_in_csv_and_parquet(tmp_path, filled):
    rejects(
        filled,
        raw(tmp_path, "prompt,chosen,rejected,margin\np,a,b,nan\n", "d.csv"),
        'row 1, field "margin": expected a finite number',
    )
    path = tmp_path / "inf.parquet"
    pd.DataFrame({**{k: [v] for k, v in GOOD.items()}, "margin": [float("inf")]}).to_parquet(path)
    rejects(filled, path, 'row 1, field "margin": expected a finite number, got inf')


def test_nullable_parquet_columns_are_missing_values(tmp_path, project):
    """pandas' NA in a nullable integer column is a missing strength, not the text "<NA>"."""
    path = tmp_path / "nullable.parquet"
    df = pd.DataFrame({"prompt": ["p1", "p2"], "chosen": ["a", "a"], "rejected": ["b", "b"]})
    df["strength"] = pd.array([3, None], dtype="Int64")
    df.to_parquet(path)
    import_file(project, path)
    assert sorted(project.judgment_log()["strength"].fillna(0).astype(int)) == [0, 3]


def test_number_too_long_to_convert(tmp_path, filled):
    path = raw(tmp_path, json.dumps(GOOD)[:-1] + ', "x": ' + "1" * 5000 + "}\n")
    rejects(filled, path, "line 1: not valid JSON")


def test_deep_nesting(tmp_path, filled):
    rejects(
        filled,
        raw(tmp_path, json.dumps(GOOD)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
        "line 1: not valid JSON",
    )


@pytest.mark.parametrize("field", ["prompt", "chosen", "rejected"])
def test_empty_text(tmp_path, filled, field):
    rejects(
        filled,
        jsonl(tmp_path, GOOD, {**GOOD, field: ""}),
        f'line 2, field "{field}": expected a text, got an empty string',
    )


def test_strings_and_lists_swapped(tmp_path, filled):
    rejects(filled, jsonl(tmp_path, {"prompt": "p", "responses": "a, b"}), 'field "responses": expected a list')
    rejects(
        filled,
        jsonl(tmp_path, {"chosen": ["\n\nHuman: q\n\nAssistant: a"], "rejected": "x"}),
        'field "chosen": expected a string or a list of {role, content} messages; item 1 is a string',
    )
    rejects(
        filled,
        jsonl(tmp_path, {**GOOD, "chosen": {"role": "assistant", "content": "x"}}),
        'field "chosen": expected a string or a list of messages, got an object',
    )
    rejects(filled, jsonl(tmp_path, {**GOOD, "annotator": ["alice"]}), 'field "annotator": expected an annotator name')


def test_fifo_does_not_block(tmp_path, filled):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    rejects(filled, fifo, "is a named pipe (FIFO), not a data file")


def test_socket_and_devices(tmp_path, filled):
    path = tmp_path / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        rejects(filled, path, "is a socket, not a data file")
    rejects(filled, "/dev/zero", "is a character device, not a data file")
    rejects(filled, "/dev/null", "is a character device")


def test_symlink_to_a_fifo(tmp_path, filled):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.jsonl"
    link.symlink_to(fifo)
    rejects(filled, link, "is a named pipe (FIFO)")


@pytest.mark.parametrize(
    "name, content, part",
    [
        ("t.jsonl.gz", gzip.compress(b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 50)[:-12], "damaged gzip"),
        ("t.jsonl.gz", b"\x1f\x8b\x08\x00garbage", "damaged gzip"),
        ("t.jsonl.gz", b"plain text, not gzip\n", "not valid JSON"),
        ("t.jsonl", b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n\x00\x00\x00\n', "not valid JSON"),
        ("t.csv", b"prompt,chosen,rejected\np,a,b\n\xff\xfe,a,b\n", "not UTF-8"),
        (
            "t.jsonl",
            b'{"prompt": "caf\xc3\xa9", "chosen": "a", "rejected": "b"}\n{"prompt": "caf\xe9"}\n',
            "line 2: not UTF-8",
        ),
        ("t.jsonl", b"\xef\xbb\xbf\xef\xbb\xbf{}", "not valid JSON"),
    ],
)
def test_damaged_bytes(tmp_path, filled, name, content, part):
    rejects(filled, raw(tmp_path, content, name), part)


def test_bom_and_crlf_are_fine(tmp_path, project):
    body = "\r\n".join(json.dumps({**GOOD, "prompt": f"p{i}"}) for i in range(3)) + "\r\n"
    import_file(project, raw(tmp_path, b"\xef\xbb\xbf" + body.encode(), "bom.jsonl"))
    import_file(project, raw(tmp_path, b"\xef\xbb\xbfprompt,chosen,rejected\r\nq,a,b\r\n", "bom.csv"))
    frame = project.comparisons_frame()
    assert sorted(frame["prompt"]) == ["p0", "p1", "p2", "q"] and set(frame["response_b"]) == {"5", "b"}


@pytest.mark.parametrize(
    "frame",
    [
        {"prompt": [[["a"]]], "chosen": ["c"], "rejected": ["r"]},
        {"prompt": [{"k": [1, 2]}], "chosen": ["c"], "rejected": ["r"]},
        {"prompt": [b"\x00\xff"], "chosen": ["c"], "rejected": ["r"]},
        {"prompt": ["p"], "chosen": [[{"role": "assistant", "content": None}]], "rejected": ["r"]},
        {"prompt": ["p"], "chosen": [1.5], "rejected": ["r"]},
    ],
)
def test_parquet_with_odd_types(tmp_path, filled, frame):
    path = tmp_path / "odd.parquet"
    pd.DataFrame(frame).to_parquet(path)
    rejects(filled, path, "row 1, field")


def test_parquet_odd_metadata_is_kept(tmp_path, project):
    path = tmp_path / "meta.parquet"
    df = pd.DataFrame(
        {
            **{k: [v] for k, v in GOOD.items()},
            "when": pd.to_datetime(["2024-01-02"]),
            "tags": [["x", "y"]],
            "extra": [{"a": 1}],
            "blob": [b"\x00\xff"],
        }
    )
    df.to_parquet(path)
    assert import_file(project, path).comparisons_added == 1


def orphans(project) -> tuple[int, int]:
    """Prompts and responses that no comparison uses."""
    prompts = sql(project, "SELECT COUNT(*) FROM prompts WHERE id NOT IN (SELECT prompt_id FROM comparisons)")
    responses = sql(
        project,
        "SELECT COUNT(*) FROM responses WHERE id NOT IN (SELECT response_a FROM comparisons)"
        " AND id NOT IN (SELECT response_b FROM comparisons)",
    )
    return prompts[0][0], responses[0][0]


def test_identical_responses_leave_no_orphans(tmp_path, project):
    """Identical chosen and rejected are skipped and counted; nothing of them is stored."""
    rows = [
        {"prompt": "same", "chosen": "x", "rejected": "x"},
        {"prompt": "ok", "chosen": "a", "rejected": "b"},
        {
            "prompt": "same2",
            "chosen": [{"role": "assistant", "content": "m"}],
            "rejected": [{"role": "assistant", "content": "m"}],
        },
    ]
    summary = import_file(project, jsonl(tmp_path, *rows))
    assert summary.extra["identical_pairs"] == 2 and summary.comparisons_added == 1
    summary = import_file(
        project, jsonl(tmp_path, {"prompt": "u", "response_a": "x", "response_b": "x"}, name="u.jsonl")
    )
    assert summary.extra["identical_pairs"] == 1 and summary.comparisons_added == 0
    lists = [{"prompt": "k", "responses": ["x", "x", "x"]}, {"prompt": "k2", "responses": ["x", "y", "x"]}]
    summary = import_file(project, jsonl(tmp_path, *lists, name="k.jsonl"))
    assert summary.extra["identical_pairs"] == 1 and summary.comparisons_added == 1
    assert orphans(project) == (0, 0)
    assert project.statistics()["prompts"] == 2 and project.statistics()["responses"] == 4
    assert sqlite3.connect(project.path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_identical_implicit_transcripts_leave_no_orphans(tmp_path, project):
    same = "\n\nHuman: Q\n\nAssistant: same"
    import_file(project, jsonl(tmp_path, {"chosen": same, "rejected": same}))
    assert orphans(project) == (0, 0) and project.statistics()["prompts"] == 0


def test_file_name_that_is_not_utf8(tmp_path, project):
    """A file name with bytes that are not UTF-8 becomes a surrogate-escaped str; it is stored escaped."""
    path = raw(tmp_path, json.dumps(GOOD) + "\n", os.fsdecode(b"caf\xe9.jsonl"))
    summary = import_file(project, path)
    assert summary.comparisons_added == 1
    assert "import:caf\\udce9.jsonl" in project.annotators()["name"].tolist()
    with pytest.raises(FormatError) as err:
        import_file(project, raw(tmp_path, "{", os.fsdecode(b"bad\xff.jsonl")))
    str(err.value).encode("utf-8")


def test_annotator_that_is_not_utf8(tmp_path, project):
    before = dump(project)
    with pytest.raises(ValueError, match="not valid text"):
        import_file(project, jsonl(tmp_path, GOOD), annotator=os.fsdecode(b"al\xefce"))
    assert dump(project) == before
