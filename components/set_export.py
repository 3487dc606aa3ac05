"""A prompt set's result as CSV, JSON and Markdown files. Plain Python.

The result is the JSON form of ``models.sets.compare.SetResult`` plus what the page adds: the set's
name, the settings and the two models' descriptions (with revisions). JSON keeps everything (each
side's tokens with their probabilities too); CSV has one line per row, the table's columns (each side's
mean token probability, identical or where the answers differ); Markdown has the summary and one table
row per prompt, every cell escaped.

Example:
    >>> to_set_csv({"rows": [{"prompt": "Hi", "reference": None, "left": {"text": "a", "stats": {}},
    ...             "right": {"text": "b", "stats": {}}, "scores": {}, "rating": "tie"}]}).splitlines()[1]
    '1,Hi,,a,b,,,,,,,,,,tie'
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from evidence.csvsafe import SafeWriter

from .promptset_tab import score_column, table_headers, table_rows
from .export import table_cell
from .render import percent

FORMAT = "seq2seq-causal-playground/prompt-set"
FORMAT_VERSION = 1


def to_set_json(result: Mapping[str, Any]) -> str:
    """Everything: settings, models, every row, scores, ratings and the summary."""
    return json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **result}, indent=2, ensure_ascii=False,
                      default=str) + "\n"


def _table(result: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The table's headers (the score columns naming their score) and rows."""
    column = score_column(result.get("summary"))
    return (table_headers(column[1] if column else None),
            table_rows(result.get("rows", []), score=column[0] if column else None))


def to_set_csv(result: Mapping[str, Any]) -> str:
    """One line per row, the table's columns."""
    buffer = io.StringIO()
    writer = SafeWriter(buffer, lineterminator="\n")  # formula-like text cells quoted (evidence/csvsafe.py)
    headers, rows = _table(result)
    writer.writerow(headers)
    writer.writerows(rows)
    return buffer.getvalue()


def summary_markdown(result: Mapping[str, Any]) -> str:
    """The summary table (the page shows it above the set's table; the Markdown export starts with it): per side
    rows done, errors, time per row, tokens/s, output length, mean token probability, each score with its scale,
    and the rating tally; then how many rows both sides answered identically."""
    summary, models = result.get("summary") or {}, result.get("models") or {}
    sides = {side: summary.get(side) or {} for side in ("left", "right")}

    def row(label: str, key: str, fmt: Callable[[Any], str] = str) -> str:
        cells = ["–" if sides[side].get(key) is None else fmt(sides[side][key]) for side in sides]
        return f"| {label} | " + " | ".join(table_cell(c) for c in cells) + " |"

    lines = ["| | left | right |", "|---|---|---|",
             f"| model | {table_cell(models.get('left', {}).get('name'))} | {table_cell(models.get('right', {}).get('name'))} |",
             row("rows done", "rows_done"), row("errors", "errors"), row("mean time per row", "mean_seconds_per_row", "{:.2f} s".format),
             row("tokens/s", "tokens_per_second", "{:.1f}".format), row("mean output length", "mean_output_tokens", "{:.1f} tokens".format),
             row("mean token probability", "mean_prob", percent)]
    labels = summary.get("score_labels") or {}
    for name in sorted({*sides["left"].get("scores", {}), *sides["right"].get("scores", {})}):
        label, top = labels.get(name, (name, None))
        scores = [sides[side].get("scores", {}).get(name) for side in sides]
        lines.append(f"| {table_cell(label)}{f' (0–{top:g})' if top else ''} | "
                     + " | ".join("–" if v is None else f"{v:.3g}" for v in scores) + " |")
    tally = summary.get("ratings") or {}
    # a tie belongs to neither column: it goes with the row's label
    lines.append(f"| your ratings (ties: {tally.get('tie', 0)}) | left better: {tally.get('left', 0)} | "
                 f"right better: {tally.get('right', 0)} |")
    if "identical_rows" in summary:
        lines += ["", f"**{summary['identical_rows']} of {summary.get('rows', len(result.get('rows', [])))} rows** "
                      "identical on both sides (the same text)."]
    return "\n".join(lines)


def to_set_markdown(result: Mapping[str, Any]) -> str:
    """The summary table, then one row per prompt; every cell HTML-escaped and on one line."""
    headers, rows = _table(result)
    lines = [f"# Prompt set: {table_cell(result.get('set', 'uploaded'))}", "", summary_markdown(result), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(table_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_set_exports(result: Mapping[str, Any], folder: str | Path) -> tuple[Path, Path, Path]:
    """Write ``<stem>.csv``, ``.json`` and ``.md`` into ``folder``; return the three paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = result.get("created") or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")  # the run's time: re-rated, the same files
    stem = f"prompt-set-{re.sub(r'[^0-9A-Za-z_-]', '', str(result.get('set', 'uploaded')))[:40]}-{stamp}"
    paths = folder / f"{stem}.csv", folder / f"{stem}.json", folder / f"{stem}.md"
    for path, text in zip(paths, (to_set_csv(result), to_set_json(result), to_set_markdown(result))):
        path.write_text(text, encoding="utf-8")
    return paths
