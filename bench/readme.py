"""The benchmark tables of ``docs/benchmarks.md``, generated from a results file, never typed.

``python -m bench.readme [RESULTS.json ...]`` rewrites every block of the page that sits between
``<!-- bench:KEY -->`` and ``<!-- /bench:KEY -->``: a section table (:data:`RESULTS`: section 8 from
``precision.json``, section 9 from ``visitors.json``; a later file wins for a section both hold), or a whole
results file (:data:`REPORTS`: ``real.json``, the header and table of the real-model run of sections 1–7 and 10;
``endpoint.json``, what the endpoint path costs; ``confidence.json``, what recording token probabilities costs;
``ratings.json``, what computing the leaderboard costs; ``lone_answer.json``, one answer on CPU option by option).
``--check`` writes nothing and fails when a block differs from
what the files give; ``tests/test_bench_readme.py`` fails in the same case.

Example:
    >>> print(render("precision_quality", {"results": {"models": {}}}).splitlines()[0])
    | model | kind | weights | bfloat16: answers identical to float32 | bfloat16: first differing token (mean) | bfloat16 vs float32 speed | 8-bit: answers identical to float32 | 8-bit: first differing token (mean) | 8-bit vs float32 speed |
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from statistics import median
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
#: the docs page that holds the generated blocks
PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: where each section table comes from: ``python -m bench --real --sections 8 --name precision`` and
#: ``python -m bench --real --sections 9 --name visitors``
RESULTS = {"precision_quality": RESULTS_DIR / "precision.json", "visitors": RESULTS_DIR / "visitors.json"}
#: whole results files shown as one block each: ``python -m bench --real --sections 1,2,3,4,5,6,7,10``
#: (header lines and the table of every section the run holds), ``python -m bench.endpoint`` and
#: ``python -m bench --real --sections 11 --name confidence --max-new-tokens 64 --reps 7`` (section 11, its run's header)
#: and ``python -m bench --sections 12 --name ratings`` (section 12: no model, numpy only)
#: and ``python -m bench --real --sections 13 --name lone_answer`` (section 13: one answer on CPU, option by option)
REPORTS = {"real": RESULTS_DIR / "real.json", "endpoint": RESULTS_DIR / "endpoint.json",
           "confidence": RESULTS_DIR / "confidence.json", "ratings": RESULTS_DIR / "ratings.json",
           "lone_answer": RESULTS_DIR / "lone_answer.json"}
_BLOCK = re.compile(r"<!-- bench:(\w+) -->\n(.*?)<!-- /bench:\1 -->", flags=re.DOTALL)


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


def _ms(seconds: float, signed: bool = False) -> str:
    text = f"{1000 * seconds:+.0f} ms" if signed else f"{1000 * seconds:.0f} ms"
    return text.replace("-", "−")


def endpoint_block(result: dict[str, Any]) -> str:
    """What the endpoint path costs (``bench/results/endpoint.json``, ``python -m bench.endpoint``): the run,
    medians per path, and each repetition's pair (both paths back to back) as the median of its differences."""
    inside, served = result["figures"]["in-process"], result["figures"]["endpoint"]
    pairs = [(a["own_first_token"], b["own_first_token"]) for a, b in zip(inside["samples"], served["samples"])
             if a.get("own_first_token") is not None and b.get("own_first_token") is not None]
    own = median([b - a for a, b in pairs]) if pairs else None
    ratio = result["paired_tokens_per_second_ratio"]
    start, end = result["load_average_1min"]
    per_token = 1 / served["tokens_per_second"] - 1 / inside["tokens_per_second"]
    return "\n".join([
        f"- **Run:** {result['model']}, {result['dtype']}, greedy, {result['tokens']} new tokens, "
        f"{result['reps']} repetitions; {result['machine']}; {result['date']}; load average (1 min) at start/end: "
        f"{start:.1f} / {end:.1f}",
        f"- **Same text on both paths:** {result['same_text']} repetitions",
        "",
        "| path | time to first text | tokens/s | the run's own time to first token |",
        "|---|---|---|---|",
        f"| in-process (`models.stream`) | {_ms(inside['first_text_seconds'])} | {inside['tokens_per_second']:.1f} | "
        f"{_ms(inside['own_first_token_seconds'])} |",
        f"| endpoint (`transformers serve` on loopback) | {_ms(served['first_text_seconds'])} | "
        f"{served['tokens_per_second']:.1f} | {_ms(served['own_first_token_seconds'])} |",
        f"| endpoint vs in-process, median of each repetition's pair | "
        f"**{_ms(result['paired_first_text_overhead_seconds'], signed=True)}** | **× {ratio:.2f}** | "
        f"{'–' if own is None else _ms(own, signed=True)} |",
        "",
        f"On the endpoint: tokens/s {f'{100 * (ratio - 1):+.0f} %'.replace('-', '−')} (median of the pairs' ratios), "
        f"{f'{1000 * per_token:+.1f} ms'.replace('-', '−')} a token (1 / tokens/s, from the two medians).",
    ])


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.1f} %".replace("-", "−")


def _us(seconds: float | None) -> str:
    return "–" if seconds is None else f"{1e6 * seconds:,.0f} µs" if seconds >= 1e-5 else f"{1e6 * seconds:.1f} µs"


def _ms_short(seconds: float | None) -> str:
    return "–" if seconds is None else f"{1000 * seconds:.1f} ms"


def confidence_block(result: dict[str, Any]) -> str:
    """Section 11 (``bench/results/confidence.json``): its run's machine, date, load and models, then per model and
    precision tokens/s with and without the recorder, the cost, the recorder's own time and the token texts' time;
    under the table, the idle hook and where the recorder's time goes."""
    from .report import MET, header

    entry = result["sections"]["confidence"]
    res = entry["results"]
    wanted = ("- **Machine:**", "- **Versions:**", "- **Date:**", "- **Seq2seq:**", "- **Causal:**", "- **Note:**")
    lines = [line for line in header(result) if line.startswith(wanted)]
    start, end = res.get("load_average_start"), res.get("load_average_end")
    models_end = max(i for i, line in enumerate(lines) if line.startswith(("- **Seq2seq:**", "- **Causal:**"))) + 1
    lines.insert(models_end, f"- **Settings:** greedy, {res['max_new_tokens']} new tokens, prompt "
                    f"{result['settings']['prompt']!r}, on {res['device']}; with and without the recorder in turns, "
                    f"{res['reps']} runs each per model and precision; load average (1 min) at the section's "
                    f"start/end: {start[0] if start else '?'} / {end[0] if end else '?'}")
    lines.append(f"- **Target:** {entry['target']}: {MET[entry.get('met')]}")
    lines += ["", "| model | precision | decoding tokens/s without → with | cost (median of the pairs) | the pairs' "
              "costs | whole call: tokens/s without → with, cost | recorder's own time a token (share of generate) | "
              "build_tokens() per answer | same answer | load (1 min) at its start |", "|" + "---|" * 10]
    idle, where = [], []
    for model in res["models"].values():
        if model.get("unavailable"):
            lines.append(f"| `{model['name']}` | {model['precision']} | not run: {model['unavailable']} |"
                         + " |" * 8)
            continue
        label = f"auto ({model['dtype']})" if model["precision"] == "auto" else model["precision"]
        dec, whole, rec = model["decoding"], model["whole_call"], model["recorder"]
        d, w = dec["tokens_per_second"], whole["tokens_per_second"]
        pairs = sorted(1 - r for r in dec["pair_ratios"]["samples"])
        own = (rec["see_seconds_per_token"] or 0) + (rec["call_seconds_per_token"] or 0)
        same = model["same_answer"]
        load = model.get("load_average")
        lines.append(
            f"| `{model['name']}` | {label} | {d['without']['median']:.1f} → {d['with']['median']:.1f} | "
            f"**{_pct(dec['cost'])}** | {_pct(pairs[0]) if pairs else '–'} to {_pct(pairs[-1]) if pairs else '–'} | "
            f"{w['without']['median']:.1f} → {w['with']['median']:.1f}, {_pct(whole['cost'])} | "
            f"{_us(own)} ({_pct(rec['share_of_generate']['median'])}) | "
            f"{_ms_short(model['build_tokens_seconds']['median'])} for {model['tokens']['median']:.0f} tokens | "
            f"{same['identical']}/{same['runs']} | {load[0] if load else '?'} |")
        hook = model["idle_hook"]
        idle.append(f"`{model['name']}` {label}: {_us(hook['seconds_per_forward'])} ({_pct(hook['share_of_step'])} "
                    "of a step)")
        ops = sorted(model["ops_seconds"].items(), key=lambda kv: -kv[1])
        where.append(f"`{model['name']}` {label} (vocabulary {model['vocabulary']:,}): "
                     + ", ".join(f"{name} {_us(sec)}" for name, sec in ops))
    lines += ["", "Idle hook (a model hooked by an earlier run, not recording, against one never hooked), per forward: "
              + "; ".join(idle) + ".", "", "Where the recorder's time goes, per step (each operation of see() and "
              "__call__ on the model's own last logits, fastest of 5 × 200 calls):", ""]
    lines += [f"- {line}" for line in where]
    return "\n".join(lines)


def ratings_block(result: dict[str, Any]) -> str:
    """Section 12 (``bench/results/ratings.json``): its run's machine, date and load, the simulated votes, then the
    median seconds of each step with the repetitions' range, and how close the fit came to the simulated strengths."""
    from .report import MET, header

    entry = result["sections"]["ratings"]
    res = entry["results"]
    lines = [line for line in header(result) if line.startswith(("- **Machine:**", "- **Date:**"))]
    lines.append(f"- **Votes:** {res['votes']:,} simulated (seeded; {res['blind_votes']:,} of them blind, the board's "
                 f"default), {res['contestants']} contestants, {res['tasks']} tasks; numpy {res['numpy']}, "
                 f"{res['reps']} repetitions")
    lines.append(f"- **Target:** {entry['target']}: {MET[entry.get('met')]}")
    lines += ["", "| step | median | repetitions (fastest – slowest) |", "|---|---|---|"]
    labels = {"table": "the votes (a list of `PairVote`) to arrays: `VoteTable.from_votes`",
              "boards": f"{res['boards']} boards (every task + each task), each with {res['bootstrap']} bootstrap "
                        "resamples, the length-controlled fit and kind vs kind: `boards()`",
              "total": "**the whole refresh**"}
    for key, label in labels.items():
        fig = res["figures"][key]
        samples = fig["samples"]
        lines.append(f"| {label} | **{fig['median']:.2f} s** | {min(samples):.2f} – {max(samples):.2f} s |")
    lines += ["", f"The fit on these votes: {entry['rows'][1]['seq2seq']}."]
    return "\n".join(lines)


def lone_answer_block(result: dict[str, Any]) -> str:
    """Section 13 (``bench/results/lone_answer.json``): its run's machine, date and load, the bandwidth probe and the
    CPU's flags, then per model, precision and option the decoding tokens/s, the ratio to today's path, the fraction
    of the bandwidth limit and whether the tokens stayed the same; compile times and llama.cpp under the table."""
    from .report import MET, header

    entry = result["sections"]["lone_answer"]
    res = entry["results"]
    lines = [line for line in header(result) if line.startswith(("- **Machine:**", "- **Versions:**", "- **Date:**"))]
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in res["cpu_flags"].items())
    start, end = res.get("load_average_start"), res.get("load_average_end")
    lines.append(f"- **Run:** greedy, {res['max_new_tokens']} new tokens, prompt {result['settings']['prompt']!r}, "
                 f"options in turns, {res['reps']} runs each per model and precision; load average (1 min) at the "
                 f"section's start/end: {start[0] if start else '?'} / {end[0] if end else '?'}")
    lines.append(f"- **Memory bandwidth:** {res['bandwidth_bytes_per_second'] / 1e9:.1f} GB/s ({res['copy_bytes'] // 2**20} "
                 f"MiB torch copy, read + write, best of 5); **CPU flags:** {flags} (bfloat16 native: "
                 f"{'yes' if res['native_bf16'] else 'no'}, so auto = {res['auto_precision']}); {res['cores']} cores, "
                 f"torch {res['threads']} threads")
    lines.append(f"- **Target:** {entry['target']}: {MET[entry.get('met')]}")
    lines += ["", "| model | precision | option | decoding tokens/s | × today's (median of the pairs) | of the bandwidth "
              "limit | whole call tokens/s | tokens identical to today's |", "|" + "---|" * 8]
    extra = []
    for model in res["models"].values():
        weights = "trained" if model["real"] else "random weights"
        name = f"`{model['name']}` ({weights}, {model['params'] / 1e6:.3g}M params)"
        if model.get("unavailable"):
            lines.append(f"| {name} | {model['precision']} | not run: {model['unavailable']} |" + " |" * 5)
            continue
        limit = model["bandwidth_limit_tokens_per_second"]
        for option, fig in model["options"].items():
            rate = fig["tokens_per_second"]["median"]
            times = "1 (today)" if option == "current" else f"{fig['ratio_to_current']:.2f}×"
            lines.append(f"| {name} | {model['precision']} | {option} | {rate:.1f} | {times} | "
                         f"{100 * (fig['bandwidth_fraction'] or 0):.0f} % of {limit:.0f} | "
                         f"{fig['whole_call_tokens_per_second']['median']:.1f} | "
                         f"{fig['identical_to_current']}/{fig['runs']} |")
        if model.get("compile_seconds") is not None:
            extra.append(f"`{model['name']}` {model['precision']}: {model['compile_seconds']:.0f} s")
        extra += [f"`{model['name']}` {model['precision']}: {o} could not run ({why})" for o, why in model["failed"].items()]
    ref = res["llama_cpp"]
    lines += ["", "Compile of the decoding step (its first call, less a normal run's time): "
              + ("; ".join(extra) if extra else "not run") + ".",
              "", "llama.cpp on the same GGUF: " + (f"{ref['tokens_per_second']['median']:.1f} tokens/s "
                                                    f"(llama-cpp-python {ref.get('version')}, {ref.get('note')})"
                                                    if "tokens_per_second" in ref else ref.get("why", "not run")) + "."]
    return "\n".join(lines)


#: the whole-file blocks: key -> how its results file reads on the page
WHOLE: dict[str, Callable[[dict[str, Any]], str]] = {"real": report_block, "endpoint": endpoint_block,
                                                      "confidence": confidence_block, "ratings": ratings_block,
                                                      "lone_answer": lone_answer_block}


def render(key: str, entry: dict[str, Any]) -> str:
    """The Markdown table of section ``key`` from its entry in a results file."""
    return TABLES[key](entry)


def blocks(page: str) -> dict[str, str]:
    """The generated blocks in ``page``: key -> its current text."""
    return {m.group(1): m.group(2).strip("\n") for m in _BLOCK.finditer(page)}


def reports(files: dict[str, Path] | None = None) -> dict[str, dict[str, Any]]:
    """The whole results files shown as blocks: ``{key: result}`` for every file of ``files`` (default
    :data:`REPORTS`) that exists."""
    files = REPORTS if files is None else files
    return {key: json.loads(path.read_text(encoding="utf-8")) for key, path in files.items() if path.exists()}


def rewrite(page: str, result: dict[str, Any], runs: dict[str, dict[str, Any]] | None = None) -> str:
    """``page`` with every generated block redrawn from ``result`` (section tables) and ``runs`` (whole-file
    blocks, by key, drawn by :data:`WHOLE`); a block whose section or file is missing is kept."""
    runs = runs or {}

    def table(match: re.Match) -> str:
        key = match.group(1)
        if key in runs and key in WHOLE:
            return f"<!-- bench:{key} -->\n{WHOLE[key](runs[key])}\n<!-- /bench:{key} -->"
        entry = result["sections"].get(key)
        if entry is None or "error" in entry or key not in TABLES:
            return match.group(0)
        return f"<!-- bench:{key} -->\n{render(key, entry)}\n<!-- /bench:{key} -->"
    return _BLOCK.sub(table, page)


def sections(files: dict[str, Path] | list[Path] | None = None) -> dict[str, Any]:
    """The sections the page's tables come from: ``{key: file}`` (only that key from each file), or every
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


def stale(old: str, new: str) -> list[str]:
    """The keys of the blocks that differ between two versions of the page (one missing counts)."""
    before, after = blocks(old), blocks(new)
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.readme",
                                     description="Redraw the generated benchmark blocks of docs/benchmarks.md "
                                                 "from the results files.")
    parser.add_argument("results", nargs="*", type=Path,
                        help="results files to take the section tables from (default: precision.json, visitors.json)")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page to redraw (default: docs/benchmarks.md)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 and name the blocks that differ from the results files")
    args = parser.parse_args(argv)
    files = args.results
    chosen = sections(files or None)
    text = args.page.read_text(encoding="utf-8")
    new = rewrite(text, {"sections": chosen}, reports())
    sources = (", ".join(str(f) for f in files) or "bench/results/precision.json, visitors.json") + " and " + \
        ", ".join(_shown(p) for p in REPORTS.values())
    if args.check:
        differ = stale(text, new)
        if differ:
            print(f"{_shown(args.page)}: block(s) {', '.join(differ)} differ from {sources}; "
                  f"run python -m bench.readme")
            return 1
        print(f"{_shown(args.page)}: {len(blocks(text))} generated block(s), all equal to {sources}")
        return 0
    if new != text:
        args.page.write_text(new, encoding="utf-8")
    print(f"{_shown(args.page)}: {len(blocks(new))} generated block(s) from {sources}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
