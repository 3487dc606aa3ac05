"""Prompt sets: many prompts (with optional references) compared on both models at once.

A prompt set is a list of :class:`PromptRow`. It comes from an uploaded file
(:func:`parse_prompt_file`), from API rows (:func:`validate_rows`) or from a
built-in set shipped in ``data/prompt_sets/`` (:func:`builtin_set`). Every rule
is checked before anything runs, and a refusal (:class:`PromptSetError`) names
the line (files) or the row (API) and what is wrong.

Formats:

- ``.jsonl``: one JSON object per line with ``prompt`` and optional ``reference``
  and ``task_prefix``; blank lines are skipped; other keys are refused (a typo
  such as ``"refrence"`` would otherwise silently drop every score).
- ``.csv``: a header naming a ``prompt`` column and optionally ``reference`` and
  ``task_prefix`` (names compared without case or surrounding spaces); other columns
  are ignored (spreadsheets carry ids and notes); blank lines are skipped.
- ``.txt``: one prompt per line; blank lines are skipped; no references.

Pure Python: no torch, no Gradio.

Example:
    >>> rows = parse_prompt_file("set.jsonl", b'{"prompt": "2+2?", "reference": "4"}\\n')
    >>> rows[0].reference
    '4'
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..presets import Kind
from ..settings import MAX_PROMPT_CHARS, MAX_SET_ROWS, MAX_TASK_PREFIX_CHARS, GenerationSettings, SettingsError, validate_prompt

MAX_ROWS = MAX_SET_ROWS  # rows per set, files and API alike
MAX_FILE_BYTES = 1_000_000  # an uploaded file of more than 1 MB is refused unread
EXTENSIONS = (".jsonl", ".csv", ".txt")
ROW_KEYS = ("prompt", "reference", "task_prefix")
SETS_DIR = Path(__file__).resolve().parents[2] / "data" / "prompt_sets"
SETS_INDEX = SETS_DIR / "sets.json"


class Task(str, Enum):
    """What a set asks for; it decides which scores are computed (see :mod:`models.sets.scores`)."""

    SUMMARY = "summary"  # chrF + ROUGE-L against reference summaries
    TRANSLATION = "translation"  # chrF against reference translations
    QA = "qa"  # chrF + exact match + contains match against short answers
    INSTRUCTION = "instruction"  # chrF where a (loose) reference exists
    CONTINUATION = "continuation"  # no reference: no score
    OTHER = "other"  # uploaded sets: chrF where a reference exists


class PromptSetError(ValueError):
    """A prompt file or API rows refused before anything runs.

    Args:
        problem: what is wrong, in plain words.
        line: 1-based line of the file where it is wrong (files).
        row: 1-based row number (API rows; the message also gives the 0-based index).
    """

    def __init__(self, problem: str, *, line: int | None = None, row: int | None = None) -> None:
        self.problem, self.line, self.row = problem, line, row
        if line is not None:
            where = f"line {line}: "
        elif row is not None:
            where = f"row {row} (rows[{row - 1}]): "
        else:
            where = ""
        super().__init__(where + problem)


@dataclass(frozen=True)
class PromptRow:
    """One prompt of a set.

    Args:
        prompt: the text both models get (control characters removed).
        reference: the expected answer, when known; scores need it.
        task_prefix: seq2seq task prefix for this row (e.g. ``"summarize: "``);
            ``None`` keeps the run's setting.
    """

    prompt: str
    reference: str | None = None
    task_prefix: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready dict with the three keys."""
        return {"prompt": self.prompt, "reference": self.reference, "task_prefix": self.task_prefix}


@dataclass(frozen=True)
class PromptSet:
    """A named set of rows with the task that decides its scores.

    Args:
        name: short id (``"summarize"``), also the file name in ``data/prompt_sets/``.
        title: label for a selector.
        task: what the rows ask for.
        favours: one line on which kind of model the set should favour and why.
        rows: the prompts.
    """

    name: str
    title: str
    task: Task
    favours: str
    rows: tuple[PromptRow, ...]

    @property
    def has_references(self) -> bool:
        """True when at least one row has a reference (so there is something to score)."""
        return any(r.reference is not None for r in self.rows)


def _optional_text(value: Any, key: str, limit: int) -> str | None:
    """``None`` for a missing or blank value, the text otherwise; raises ``ValueError`` naming ``key``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise ValueError(f"{key} is {len(value):,} characters long; the limit is {limit:,}")
    return value if value.strip() else None


def _make_row(values: Mapping[str, Any]) -> PromptRow:
    """Validate one row's values; raises ``ValueError`` saying what is wrong (without the where)."""
    if "prompt" not in values:
        raise ValueError("no prompt")
    try:
        prompt = validate_prompt(values["prompt"])
    except SettingsError as exc:
        raise ValueError(str(exc)) from None
    return PromptRow(prompt=prompt,
                     reference=_optional_text(values.get("reference"), "reference", MAX_PROMPT_CHARS),
                     task_prefix=_optional_text(values.get("task_prefix"), "task_prefix", MAX_TASK_PREFIX_CHARS))


def _check_keys(obj: Mapping[str, Any]) -> None:
    unknown = sorted(str(k) for k in obj if k not in ROW_KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (known: {', '.join(ROW_KEYS)})")


def _jsonl_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"not valid JSON ({exc.msg} at column {exc.colno})", line=number) from None
        except RecursionError:  # the JSON reader's own depth bound (about 1,000 levels): "[" * 100000
            raise PromptSetError("JSON nested too deeply to read (a row is one object whose values are text)",
                                 line=number) from None
        if not isinstance(obj, dict):
            raise PromptSetError(f"expected a JSON object with a \"prompt\", got {type(obj).__name__}", line=number)
        try:
            _check_keys(obj)
        except ValueError as exc:
            raise PromptSetError(str(exc), line=number) from None
        yield number, obj


def _csv_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise PromptSetError("the file is empty", line=1)
        names = [h.strip().lower() for h in header]
        if "prompt" not in names:
            raise PromptSetError(f"the CSV header has no \"prompt\" column (found: {', '.join(header) or 'nothing'})", line=1)
        columns = {key: names.index(key) for key in ROW_KEYS if key in names}
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            yield reader.line_num, {key: cells[i] if i < len(cells) else None for key, i in columns.items()}
    except csv.Error as exc:
        raise PromptSetError(f"not valid CSV ({exc})", line=reader.line_num) from None


def _txt_rows(text: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, {"prompt": line.strip()}


_READERS = {".jsonl": _jsonl_rows, ".csv": _csv_rows, ".txt": _txt_rows}


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (Excel's CSV export) is dropped
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PromptSetError(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                             "save the file as UTF-8", line=line) from None


def parse_prompt_file(filename: str, data: bytes) -> list[PromptRow]:
    """Read an uploaded prompt file into rows, or refuse it with the line and the problem.

    Args:
        filename: the uploaded file's name; its extension picks the format
            (``.jsonl``, ``.csv`` or ``.txt``, any case).
        data: the file's bytes.

    Returns:
        The rows in file order (1 to :data:`MAX_ROWS`).

    Raises:
        PromptSetError: unknown extension, over :data:`MAX_FILE_BYTES`, not UTF-8, a line that
            is not a JSON object, a CSV without a ``prompt`` column, an empty or over-long
            prompt, more than :data:`MAX_ROWS` rows, or no rows at all.
    """
    suffix = Path(filename or "").suffix.lower()
    if suffix not in _READERS:
        raise PromptSetError(f"{filename!r}: unknown file type {suffix or '(none)'}; use one of {', '.join(EXTENSIONS)}")
    if len(data) > MAX_FILE_BYTES:
        raise PromptSetError(f"the file is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,} (1 MB)")
    rows: list[PromptRow] = []
    for number, values in _READERS[suffix](_decode(data)):
        if len(rows) == MAX_ROWS:
            raise PromptSetError(f"more than {MAX_ROWS} rows; the limit is {MAX_ROWS}", line=number)
        try:
            rows.append(_make_row(values))
        except ValueError as exc:
            raise PromptSetError(str(exc), line=number) from None
    if not rows:
        raise PromptSetError("the file holds no prompts")
    return rows


def validate_rows(rows: Any) -> list[PromptRow]:
    """Apply the file rules to rows given through the API.

    Args:
        rows: a list of objects, each with ``prompt`` and optional ``reference`` and
            ``task_prefix`` (``PromptRow`` instances are accepted as they are re-checked).

    Returns:
        The validated rows, in the same order.

    Raises:
        PromptSetError: naming the row (``"row 3 (rows[2]): prompt: is empty ..."``), or the
            whole list when it is not a list, is empty or has more than :data:`MAX_ROWS` rows.
    """
    if not isinstance(rows, (list, tuple)):
        raise PromptSetError(f"rows: must be a list of objects, got {type(rows).__name__}")
    if not rows:
        raise PromptSetError("rows: the list is empty; give at least one row with a prompt")
    if len(rows) > MAX_ROWS:
        raise PromptSetError(f"rows: {len(rows)} rows; the limit is {MAX_ROWS}")
    checked: list[PromptRow] = []
    for number, item in enumerate(rows, start=1):
        values = item.to_dict() if isinstance(item, PromptRow) else item
        try:
            if not isinstance(values, Mapping):
                raise ValueError(f"expected an object with a \"prompt\", got {type(values).__name__}")
            _check_keys(values)
            checked.append(_make_row(values))
        except ValueError as exc:
            raise PromptSetError(str(exc), row=number) from None
    return checked


@lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, str]]:
    entries = json.loads(SETS_INDEX.read_text(encoding="utf-8"))
    return {entry["name"]: entry for entry in entries}


def builtin_set_names() -> tuple[str, ...]:
    """Names of the built-in sets, in display order (read from ``data/prompt_sets/sets.json``)."""
    return tuple(_index())


BUILTIN_SETS: tuple[str, ...] = builtin_set_names()


@lru_cache(maxsize=None)
def builtin_set(name: str) -> PromptSet:
    """A built-in set by name, read (and checked with the upload rules) from ``data/prompt_sets/``.

    Args:
        name: one of :data:`BUILTIN_SETS`.

    Raises:
        KeyError: for an unknown name (the message lists the known ones).
    """
    entry = _index().get(name)
    if entry is None:
        raise KeyError(f"no built-in prompt set {name!r}; known: {', '.join(BUILTIN_SETS)}")
    path = SETS_DIR / entry["file"]
    rows = parse_prompt_file(path.name, path.read_bytes())
    return PromptSet(name=name, title=entry["title"], task=Task(entry["task"]), favours=entry["favours"], rows=tuple(rows))


def row_settings(settings: GenerationSettings, row: PromptRow) -> GenerationSettings:
    """``settings`` with the row's ``task_prefix`` when it has one (validated like any setting)."""
    if row.task_prefix is None or row.task_prefix == settings.task_prefix:
        return settings
    return type(settings).from_mapping({**settings.to_dict(), "task_prefix": row.task_prefix})


def row_prompt(kind: Kind, row: PromptRow) -> str:
    """The text given to :func:`~models.prompt.prepare` for ``row``.

    Seq2seq models get the row's ``task_prefix`` through the settings (``prepare`` puts it
    before the prompt). Causal models have no prefix slot, so the row's prefix is put at
    the start of the prompt text: a summarize row must still ask the chat model to summarize.
    """
    if kind is Kind.CAUSAL and row.task_prefix:
        return row.task_prefix + row.prompt
    return row.prompt
