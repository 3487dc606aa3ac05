"""A prompt set's result as CSV, JSON and Markdown files. Plain Python.

The result is the JSON form of ``models.setcompare.SetResult`` plus what the page adds: the set's
name, the settings and the two models' descriptions (with revisions). JSON keeps everything; CSV
has one line per row; Markdown has the summary and one table row per prompt, every cell escaped.

Example:
    >>> to_set_csv({"rows": [{"prompt": "Hi", "reference": None, "left": {"text": "a", "stats": {}},
    ...             "right": {"text": "b", "stats": {}}, "scores": {}, "rating": "tie"}]}).splitlines()[1]
    '1,Hi,,a,b,,,,,,,tie'
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .promptset_tab import TABLE_HEADERS, table_rows
from .render import esc

FORMAT = "seq2seq-causal-playground/prompt-set"
FORMAT_VERSION = 1


def to_set_json(result: Mapping[str, Any]) -> str:
    """Everything: settings, models, every row, scores, ratings and the summary."""
    return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **result}, indent=2, ensure_ascii=False,
                      default=str) + "\n"


def to_set_csv(result: Mapping[str, Any]) -> str:
    """One line per row, the table's columns."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_HEADERS)
    writer.writerows(table_rows(result.get("rows", [])))
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return " ".join(esc("" if value is None else value).split()).replace("|", "\\|")


def _summary_lines(result: Mapping[str, Any]) -> list[str]:
    summary = result.get("summary") or {}
    models = result.get("models") or {}
    lines = ["| | left | right |", "|---|---|---|",
             f"| model | {_cell(models.get('left', {}).get('name'))} | {_cell(models.get('right', {}).get('name'))} |"]
    for key, label in (("rows_done", "rows done"), ("errors", "errors"), ("mean_seconds_per_row", "s per row"),
                       ("tokens_per_second", "tokens/s"), ("mean_output_tokens", "mean output tokens")):
        lines.append(f"| {label} | {_cell(summary.get('left', {}).get(key))} | {_cell(summary.get('right', {}).get(key))} |")
    names = sorted({*summary.get("left", {}).get("scores", {}), *summary.get("right", {}).get("scores", {})})
    for name in names:
        lines.append(f"| {name} | {_cell(summary['left'].get('scores', {}).get(name))} | "
                     f"{_cell(summary['right'].get('scores', {}).get(name))} |")
    tally = summary.get("ratings") or {}
    lines.append(f"| ratings (left / right / tie) | {tally.get('left', 0)} / {tally.get('right', 0)} / {tally.get('tie', 0)} | |")
    return lines


def to_set_markdown(result: Mapping[str, Any]) -> str:
    """The summary table, then one row per prompt; every cell HTML-escaped and on one line."""
    lines = [f"# Prompt set: {_cell(result.get('set', 'uploaded'))}", "", *_summary_lines(result), "",
             "| " + " | ".join(TABLE_HEADERS) + " |", "|" + "---|" * len(TABLE_HEADERS)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table_rows(result.get("rows", []))]
    return "\n".join(lines) + "\n"


def write_set_exports(result: Mapping[str, Any], folder: str | Path) -> tuple[Path, Path, Path]:
    """Write ``<stem>.csv``, ``.json`` and ``.md`` into ``folder``; return the three paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    stem = f"prompt-set-{re.sub(r'[^0-9A-Za-z_-]', '', str(result.get('set', 'uploaded')))[:40]}-{stamp}"
    paths = folder / f"{stem}.csv", folder / f"{stem}.json", folder / f"{stem}.md"
    for path, text in zip(paths, (to_set_csv(result), to_set_json(result), to_set_markdown(result))):
        path.write_text(text, encoding="utf-8")
    return paths
