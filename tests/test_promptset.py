"""Prompt sets: the three file formats, API rows, every refusal with its line/row, and the built-in sets."""

from __future__ import annotations

import json

import pytest

from models.sets.rows import (BUILTIN_SETS, MAX_FILE_BYTES, MAX_ROWS, PromptRow, PromptSetError, Task, builtin_set,
                              parse_prompt_file, validate_rows)
from models.settings import MAX_PROMPT_CHARS


def jsonl(*objects: object) -> bytes:
    return "\n".join(json.dumps(o) for o in objects).encode()


# --- formats that parse -------------------------------------------------------------------------

def test_jsonl_reads_prompt_reference_and_prefix_and_skips_blank_lines():
    data = b'{"prompt": "Hello", "reference": "Hallo", "task_prefix": "translate: "}\n\n  \n{"prompt": "Bye"}\n'
    assert parse_prompt_file("set.JSONL", data) == [PromptRow("Hello", "Hallo", "translate: "), PromptRow("Bye")]


def test_csv_reads_columns_by_header_name_in_any_order_and_case_and_ignores_other_columns():
    data = ('id, Reference ,PROMPT,notes\n'
            '1,Paris,"What is the capital of France?",x\n'
            '2,,"A prompt, with a comma\nand a second line",\n').encode()
    rows = parse_prompt_file("q.csv", data)
    assert rows == [PromptRow("What is the capital of France?", "Paris"),
                    PromptRow("A prompt, with a comma\nand a second line", None)]


def test_csv_excel_byte_order_mark_is_ignored():
    rows = parse_prompt_file("q.csv", "\ufeffprompt\nhi\n".encode())
    assert rows == [PromptRow("hi")]


def test_txt_is_one_prompt_per_line_with_blank_lines_and_windows_endings_skipped():
    rows = parse_prompt_file("p.txt", b"first prompt\r\n\r\n  second prompt  \r\nthird\n")
    assert [r.prompt for r in rows] == ["first prompt", "second prompt", "third"]
    assert all(r.reference is None and r.task_prefix is None for r in rows)


def test_blank_reference_means_no_reference():
    rows = parse_prompt_file("s.jsonl", jsonl({"prompt": "a", "reference": "  "}, {"prompt": "b", "reference": None}))
    assert [r.reference for r in rows] == [None, None]


def test_control_characters_are_removed_from_prompts():
    assert parse_prompt_file("s.txt", b"a\x07b\n")[0].prompt == "ab"


# --- refusals, each naming the line --------------------------------------------------------------

@pytest.mark.parametrize(("name", "data", "line", "words"), [
    ("s.txt", b"fine\n\xff\xfebad\n", 2, "not UTF-8"),
    ("s.jsonl", b'{"prompt": "ok"}\n{"prompt": "x",}\n', 2, "not valid JSON"),
    ("s.jsonl", b'{"prompt": "ok"}\n\n["a list"]\n', 3, "expected a JSON object"),
    ("s.jsonl", b'{"prompt": 42}\n', 1, "prompt: must be text"),
    ("s.jsonl", b'{"reference": "no prompt"}\n', 1, "no prompt"),
    ("s.jsonl", b'{"prompt": "a"}\n{"prompt": " \\t "}\n', 2, "prompt: is empty"),
    ("s.jsonl", b'{"prompt": "a", "refrence": "typo"}\n', 1, "unknown key 'refrence'"),
    ("s.jsonl", b'{"prompt": "a", "reference": 3}\n', 1, "reference must be text"),
    ("s.jsonl", b'{"prompt": "a", "task_prefix": "' + b"p" * 201 + b'"}\n', 1, "task_prefix is 201 characters"),
    ("s.csv", b"question,reference\nWhat?,That\n", 1, 'no "prompt" column'),
    ("s.csv", b"prompt,reference\nok,1\n,2\n", 3, "prompt: is empty"),
    ("s.csv", b"", 1, "empty"),
])
def test_bad_files_are_refused_with_the_line_and_the_problem(name, data, line, words):
    with pytest.raises(PromptSetError) as info:
        parse_prompt_file(name, data)
    assert info.value.line == line
    assert str(info.value).startswith(f"line {line}: ")
    assert words in str(info.value)


def test_a_prompt_over_the_length_limit_is_refused_at_its_line():
    data = b"short\n" + b"x" * (MAX_PROMPT_CHARS + 1) + b"\n"
    with pytest.raises(PromptSetError, match=rf"^line 2: prompt: is {MAX_PROMPT_CHARS + 1:,} characters long"):
        parse_prompt_file("long.txt", data)
    assert len(parse_prompt_file("ok.txt", b"x" * MAX_PROMPT_CHARS)[0].prompt) == MAX_PROMPT_CHARS


def test_more_than_max_rows_is_refused_at_the_first_extra_row_and_max_rows_is_fine():
    assert len(parse_prompt_file("ok.txt", b"p\n" * MAX_ROWS)) == MAX_ROWS
    with pytest.raises(PromptSetError, match=rf"^line {2 * MAX_ROWS + 1}: more than {MAX_ROWS} rows"):
        parse_prompt_file("many.txt", b"p\n\n" * (MAX_ROWS + 1))  # blank lines in between do not count as rows


def test_a_file_over_one_megabyte_is_refused_unread():
    data = b"p\n" * (MAX_FILE_BYTES // 2 + 1)
    with pytest.raises(PromptSetError, match=f"{len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}") as info:
        parse_prompt_file("big.txt", data)
    assert info.value.line is None


@pytest.mark.parametrize("name", ["set.json", "set.xlsx", "noextension", ""])
def test_unknown_extensions_are_refused(name):
    with pytest.raises(PromptSetError, match="unknown file type"):
        parse_prompt_file(name, b"prompt\nhello\n")


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_a_file_without_prompts_is_refused(data):
    with pytest.raises(PromptSetError, match="holds no prompts"):
        parse_prompt_file("empty.txt", data)


# --- API rows ------------------------------------------------------------------------------------

def test_api_rows_are_validated_like_files():
    rows = validate_rows([{"prompt": "a"}, {"prompt": "b", "reference": "B", "task_prefix": "summarize: "},
                          PromptRow("c", "C")])
    assert rows == [PromptRow("a"), PromptRow("b", "B", "summarize: "), PromptRow("c", "C")]


@pytest.mark.parametrize(("rows", "message"), [
    ([{"prompt": "a"}, {"prompt": "a"}, {"prompt": ""}], r"^row 3 \(rows\[2\]\): prompt: is empty"),
    ([{"prompt": "a"}, "just a string"], r"^row 2 \(rows\[1\]\): expected an object"),
    ([{"prompt": "a", "refrence": "x"}], r"^row 1 \(rows\[0\]\): unknown key 'refrence'"),
    ([{"reference": "x"}], r"^row 1 \(rows\[0\]\): no prompt"),
    ([{"prompt": "x" * (MAX_PROMPT_CHARS + 1)}], r"^row 1 \(rows\[0\]\): prompt: is [\d,]+ characters long"),
    ([{"prompt": "a"}] * (MAX_ROWS + 1), rf"^rows: {MAX_ROWS + 1} rows; the limit is {MAX_ROWS}"),
    ([], r"^rows: the list is empty"),
    ({"prompt": "a"}, r"^rows: must be a list"),
])
def test_bad_api_rows_are_refused_naming_the_row(rows, message):
    with pytest.raises(PromptSetError, match=message):
        validate_rows(rows)


# --- built-in sets -------------------------------------------------------------------------------

def test_builtin_sets_cover_the_five_tasks_with_10_to_20_valid_rows_each():
    sets = [builtin_set(name) for name in BUILTIN_SETS]
    assert {s.task for s in sets} == {Task.SUMMARY, Task.TRANSLATION, Task.QA, Task.INSTRUCTION, Task.CONTINUATION}
    for s in sets:
        assert 10 <= len(s.rows) <= 20, s.name
        assert len(set(r.prompt for r in s.rows)) == len(s.rows), f"{s.name}: duplicate prompts"
        assert s.favours.count(".") <= 1 and ("encoder-decoder" in s.favours or "decoder-only" in s.favours), s.favours
        assert validate_rows(list(s.rows)) == list(s.rows)


def test_builtin_sets_have_references_where_their_task_needs_them():
    by_task = {builtin_set(name).task: builtin_set(name) for name in BUILTIN_SETS}
    for task in (Task.SUMMARY, Task.TRANSLATION, Task.QA):
        assert all(r.reference for r in by_task[task].rows), task
    assert not by_task[Task.CONTINUATION].has_references
    assert all(r.task_prefix == "summarize: " for r in by_task[Task.SUMMARY].rows)
    assert all(len(r.reference.split()) <= 3 for r in by_task[Task.QA].rows), "short answers stay short"
    summaries = by_task[Task.SUMMARY].rows
    assert all(len(r.reference) < len(r.prompt) / 2 for r in summaries), "a summary is much shorter than its text"


def test_unknown_builtin_set_lists_the_known_ones():
    with pytest.raises(KeyError, match="summarize"):
        builtin_set("nope")
