"""The README's benchmark tables, generated from a results file, never typed.

``python -m bench.readme [RESULTS.json ...]`` rewrites every block of README.md that sits between
``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->`` with the table of section KEY, taken from the results
files (default :data:`RESULTS`: section 8 from ``precision.json``, section 9 from ``visitors.json``; a later
file wins for a section both hold), and the block ``<!-- bench:real -->`` with the header and the table of
the whole real-model run (:data:`REPORTS`: ``real.json``, sections 1–7 and 10);
``tests/test_bench_readme.py`` fails when the README and the files disagree.

Example:
    >>> print(render("precision_quality", {"results": {"models": {}}}).splitlines()[0])
    | model | kind | weights | bfloat16: answers identical to float32 | bfloat16: first differing token (mean) | bfloat16 vs float32 speed | 8-bit: answers identical to float32 | 8-bit: first differing token (mean) | 8-bit vs float32 speed |
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: where each README table comes from: ``python -m bench --real --sections 8 --name precision`` and
#: ``python -m bench --real --sections 9 --name visitors``
RESULTS = {"precision_quality": RESULTS_DIR / "precision.json", "visitors": RESULTS_DIR / "visitors.json"}
#: whole runs shown as one block (header lines and the table of every section they hold):
#: ``python -m bench --real --sections 1,2,3,4,5,6,7,10``
REPORTS = {"real": RESULTS_DIR / "real.json"}


def _share(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "–"
    return f"{figures['identical']}/{figures['prompts']} ({100 * figures['share']:.0f}%)"


def _first(figures: dict[str, Any] | None) -> str:
    if not figures:
        return "–"
    mean = figures.get("mean_first_difference")
    return "none differ" if mean is None else f"token {mean:.1f}"


def _speed(model: dict[str, Any], precision: str) -> str:
    speed = model.get("tokens_per_second") or {}
    if precision not in speed or "float32" not in speed:
        return "–"
    mine, base = speed[precision]["median"], speed["float32"]["median"]
    return f"{mine:.1f} vs {base:.1f} tok/s ({mine / base:.2f}×)" if mine and base else "–"


def precision_table(entry: dict[str, Any]) -> str:
    """Section 8: per model, bfloat16 and 8-bit against float32 (identical answers, first difference, speed)."""
    header = ["model", "kind", "weights"]
    for precision in ("bfloat16", "8-bit"):
        header += [f"{precision}: answers identical to float32", f"{precision}: first differing token (mean)",
                   f"{precision} vs float32 speed"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, model in entry["results"]["models"].items():
        cells = [f"`{name}`", model.get("kind", "?"), "trained" if model.get("real") else "untrained (random)"]
        for precision in ("bfloat16", "8-bit"):
            why = (model.get("unavailable") or {}).get(precision)
            figures = model.get(precision)
            cells += ([f"not run: {why}", "–", "–"] if figures is None and why else
                      [_share(figures), _first(figures), _speed(model, precision)])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def visitors_table(entry: dict[str, Any]) -> str:
    """Section 9: per option and model, aggregate tokens/s and first-text times for 1, 4 and 8 clients."""
    results = entry["results"]
    lines = ["| option | model | clients | aggregate tokens/s | first text p50 | first text p95 | vs 1 client | "
             "answers identical to a lone run |", "|---|---|---|---|---|---|---|---|"]
    for option, per_kind in results["options"].items():
        label = option + (" **(as shipped)**" if option == results.get("shipped") else "")
        for kind, data in per_kind.items():
            by_n = data["by_clients"]
            one = by_n.get("1", {}).get("aggregate_tokens_per_second")
            for n, fig in by_n.items():
                rate = fig["aggregate_tokens_per_second"]
                same = fig.get("identical_to_lone")
                lines.append(f"| {label} | {kind} | {n} | {rate:.1f} | {fig['p50_first_text']:.2f} s | "
                             f"{fig['p95_first_text']:.2f} s | {rate / one:.2f}× | "
                             f"{'–' if same is None or 'grouped' not in option else f'{same}/{n}'} |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {"precision_quality": precision_table, "visitors": visitors_table}


def report_block(result: dict[str, Any]) -> str:
    """A whole run: its header lines (machine, versions, commit, load, models, settings) and its table."""
    from .report import header, table

    return "\n".join(header(result)[2:] + [""] + table(result["sections"]))


def render(key: str, entry: dict[str, Any]) -> str:
    """The Markdown table of section ``key`` from its entry in a results file."""
    return TABLES[key](entry)


def blocks(readme: str) -> dict[str, str]:
    """The generated blocks in ``readme``: key -> its current text."""
    return {m.group(1): m.group(2).strip("\n")
            for m in re.finditer(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", readme, flags=re.DOTALL)}


def reports(files: dict[str, Path] | None = None) -> dict[str, dict[str, Any]]:
    """The whole runs shown as blocks: ``{key: result}`` for every file of ``files`` (default :data:`REPORTS`)."""
    files = REPORTS if files is None else files
    return {key: json.loads(path.read_text(encoding="utf-8")) for key, path in files.items() if path.exists()}


def rewrite(readme: str, result: dict[str, Any], runs: dict[str, dict[str, Any]] | None = None) -> str:
    """``readme`` with every generated block redrawn from ``result`` (section tables) and ``runs`` (whole-run
    blocks, by key); a block whose section or run is missing is kept."""
    runs = runs or {}

    def table(match: re.Match) -> str:
        key = match.group(1)
        if key in runs:
            return f"<!-- bench:{key} -->\n{report_block(runs[key])}\n<!-- /bench:{key} -->"
        entry = result["sections"].get(key)
        if entry is None or "error" in entry:
            return match.group(0)
        return f"<!-- bench:{key} -->\n{render(key, entry)}\n<!-- /bench:{key} -->"
    return re.sub(r"<!-- bench:(\w+) -->\n.*?<!-- /bench:\1 -->", table, readme, flags=re.DOTALL)


def sections(files: dict[str, Path] | list[Path] | None = None) -> dict[str, Any]:
    """The sections the README's tables come from: ``{key: file}`` (only that key from each file), or every
    section of each file in a list (later files win)."""
    files = RESULTS if files is None else files
    out: dict[str, Any] = {}
    if isinstance(files, dict):
        for key, path in files.items():
            entry = json.loads(path.read_text(encoding="utf-8"))["sections"].get(key)
            if entry is not None:
                out[key] = entry
        return out
    for path in files:
        out.update(json.loads(path.read_text(encoding="utf-8"))["sections"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.readme",
                                     description="Redraw README.md's generated benchmark blocks from the results files.")
    parser.add_argument("results", nargs="*", type=Path,
                        help="results files to take the section tables from (default: precision.json, visitors.json)")
    files = parser.parse_args(argv).results
    argv = [str(f) for f in files]
    chosen = sections(files or None)
    text = README.read_text(encoding="utf-8")
    new = rewrite(text, {"sections": chosen}, reports())
    if new != text:
        README.write_text(new, encoding="utf-8")
    print(f"README.md: {len(blocks(new))} generated table(s) from {', '.join(argv) or 'bench/results/precision.json, visitors.json'} and "
          f"{', '.join(str(p.relative_to(ROOT)) for p in REPORTS.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
