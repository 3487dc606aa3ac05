"""The Markdown report and the files it is written to."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MET = {True: "✅ yes", False: "❌ no", None: "—"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(result: dict[str, Any]) -> str:
    """The whole report: header (machine, models, settings), one table, then notes per section."""
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
    lines += ["", "| # | Measure | Seq2seq | Causal | Target | Met |", "|---|---|---|---|---|---|"]
    for key, sec in result["sections"].items():
        number = sec["title"].split(".")[0]
        if "error" in sec:
            lines.append(f"| {number} | {_cell(sec['title'])}: failed | {_cell(sec['error'])} | | {_cell(sec.get('target', ''))} | ❌ no |")
            continue
        for r in sec["rows"]:
            lines.append(f"| {number} | {_cell(r['measure'])} | {_cell(r['seq2seq'])} | {_cell(r['causal'])} | "
                         f"{_cell(r['target'])} | {MET[r['met']]} |")
    lines += ["", "## Notes", ""]
    for key, sec in result["sections"].items():
        verdict = MET[sec.get("met")] if "error" not in sec else "❌ failed"
        lines.append(f"**{sec['title']}** — target: {sec.get('target', '')} — met: {verdict}")
        lines.append("")
        for note in sec.get("notes", []):
            lines.append(f"- {note}")
        if sec.get("notes"):
            lines.append("")
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
