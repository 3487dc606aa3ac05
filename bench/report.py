"""The Markdown report and the files it is written to."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .sections import by_key

MET = {True: "✅ yes", False: "❌ no", None: "—"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def header(result: dict[str, Any]) -> list[str]:
    """The lines above the table: machine, versions, date and load, models, settings."""
    m = result["machine"]
    v = m["versions"]
    lines = [f"# Benchmark: {result['mode']} models" + (" (quick)" if result.get("quick") else ""), ""]
    lines.append(f"- **Machine:** {m['cpu']}, {m['cores']} cores (torch uses {m['torch_threads']} threads), "
                 f"GPU: {m['gpu'] or 'none'}; {m['os']}, Python {m['python']}")
    lines.append(f"- **Versions:** torch {v.get('torch')}, transformers {v.get('transformers')}, gradio {v.get('gradio')}, "
                 f"gradio_client {v.get('gradio_client')}, bitsandbytes {v.get('bitsandbytes') or 'not installed'}")
    load = m.get("load_average_start"), m.get("load_average_end")
    lines.append(f"- **Date:** {m['date']} · commit {m.get('git') or '?'} · load average (1 min) at start/end: "
                 f"{load[0][0] if load[0] else '?'} / {load[1][0] if load[1] else '?'} · took {result['duration_seconds']:.0f} s")
    for side in ("seq2seq", "causal"):
        s = result["models"][side]
        extra = f", {s['params']}" if s.get("params") else ""
        lines.append(f"- **{side.capitalize()}:** {s['label']}{extra}")
    st = result["settings"]
    lines.append(f"- **Settings:** greedy, {st['max_new_tokens']} new tokens (time to first token: {st['ttft_tokens']}; "
                 f"stop runs: up to {st['stop_tokens']}), prompt {st['prompt']!r}; every figure is the median of "
                 f"{result['reps']} repetitions unless marked")
    for side in ("seq2seq", "causal"):
        note = result["models"][side].get("note")
        if note:
            lines.append(f"- **Note:** {note}")
    return lines


def table(sections: dict[str, dict[str, Any]]) -> list[str]:
    """The table: a line per row of each section (a failed section: one line with its error)."""
    lines = ["| # | Measure | Seq2seq | Causal | Target | Met |", "|---|---|---|---|---|---|"]
    for key, entry in sections.items():
        section = by_key(key)
        if "error" in entry:
            lines.append(f"| {section.number} | {_cell(section.heading)}: failed | {_cell(entry['error'])} | | "
                         f"{_cell(entry.get('target', section.target))} | ❌ no |")
            continue
        for r in entry["rows"]:
            lines.append(f"| {section.number} | {_cell(r['measure'])} | {_cell(r['seq2seq'])} | {_cell(r['causal'])} | "
                         f"{_cell(r['target'])} | {MET[r['met']]} |")
    return lines


def notes(sections: dict[str, dict[str, Any]]) -> list[str]:
    """Per section: its heading, target and verdict, then its notes."""
    lines = []
    for key, entry in sections.items():
        section = by_key(key)
        verdict = MET[entry.get("met")] if "error" not in entry else "❌ failed"
        lines += [f"**{section.heading}** — target: {entry.get('target', section.target)} — met: {verdict}", ""]
        lines += [f"- {note}" for note in entry.get("notes", [])]
        if entry.get("notes"):
            lines.append("")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The whole report: header (machine, models, settings), one table, then notes per section."""
    lines = header(result) + [""] + table(result["sections"]) + ["", "## Notes", ""] + notes(result["sections"])
    return "\n".join(lines).rstrip() + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write via ``<name>.tmp`` and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write(result: dict[str, Any], out_dir: Path, name: str) -> tuple[Path, Path, str]:
    """Write ``<name>.json`` and ``<name>.md`` into ``out_dir``; return both paths and the Markdown."""
    md = markdown(result)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    write_atomic(json_path, json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    write_atomic(md_path, md)
    return json_path, md_path, md
