"""Write the reliability table of docs/benchmarks.md from ``artifacts/reliability.json`` (what the last test run counted).

    python -m tests.readme_figures          # print the table
    python -m tests.readme_figures --write  # replace it in docs/benchmarks.md, between its two markers
    python -m tests.readme_figures --check  # write nothing; exit 1 when the page's table is not this one

Every number comes from the JSON the tests write (``tests/apphelpers.py``: ``case`` counts a case when it
runs and again only when its checks pass; ``set_figures`` stores what a test measured), so no figure is typed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = ROOT / "artifacts" / "reliability.json"
#: the docs page that holds the table
PAGE = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


def _cases(f: dict[str, Any], what: str) -> str:
    return f"{f['tried']} tried · **{f['behaved']} {what}**"


def _load(f: dict[str, Any]) -> str:
    return (f"{f['requests_sent']} sent · {f['completed']} completed · {f['cancelled']} cancelled · {f['busy']} told "
            f"\"busy\" · {f['error']} errors · **{f['lost']} lost**; afterwards {f['threads_after']} threads "
            f"(before: {f['threads_before']}), {f['rss_growth_mb']:+.0f} MB RSS, the app still answers")


#: (section in the JSON, what the check is, how its figures read)
ROWS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    ("load", "load: 20 concurrent clients against a queue of 10 and 2 generation slots, 8 of them cancelling or "
             "disconnecting half-way", _load),
    ("faults", "faults injected: exception at the 8th token (API and page), no first token (timeout), 4 kinds of "
               "corrupt folder, out-of-memory while loading", lambda f: _cases(f, "survived") +
     ": clear message, partial text kept, the next request works"),
    ("bad_inputs", "bad input: settings out of range, NaN, ±inf, huge integers, wrong types, empty (hypothesis "
                   "examples counted one by one); hostile model ids; 1 MB, empty and control-character prompts; "
                   "remote-code models; pickle-only weights; over-size custom ids",
     lambda f: _cases(f, "refused") + " with the field or problem named, no thread started"),
    ("file_routes", "file routes: `/etc/passwd` and encoded `../` variants under `/file=` and `/gradio_api/file=`",
     lambda f: f"{f['tried']} tried · **{f['tried'] - f['behaved']} served**"),
    ("public: flood from one visitor", "flood from one visitor: unread `/generate` calls of 2048 tokens from one "
                                       "address while another address asks for 8 tokens",
     lambda f: f"{f['sent']} sent · {f['accepted']} accepted · **{f['refused']} refused** (all answered in "
               f"{f['refusal_seconds_for_all']:.2f} s) · the other visitor waited {f['other_wait_during_flood_s']:.2f} s "
               f"during the flood ({f['other_wait_alone_s']:.2f} s alone) · unread requests freed after "
               f"{f['unread_freed_after_s']:.1f} s (grace {f['grace_s']:g} s in the test)"),
    ("public: a request whose client went away", "a client that went away: stream closed after the first text; a "
                                                 "REST call whose stream is never opened",
     lambda f: f"closed stream: free after **{f['closed_stream_freed_after_s']:.2f} s**; never read: "
               f"**{f['unread_freed_after_s']:.1f} s** (grace {f['grace_s']:g} s)"),
    ("public: bytes on disk", "bytes on disk: comparisons with a 20,000-character prompt, then Gradio's prune",
     lambda f: f"{f['comparisons']} comparisons · {f['files']} files · {f['bytes_after']:,} bytes "
               f"({f['bytes_per_comparison'] / 1000:.0f} KB a comparison, the prompt once in the JSON, in the Markdown once plus once in each side's code"
               + (f"; {f['tokens']} tokens with their top 5, {f['bytes_per_token']} bytes a token"
                  if "tokens" in f else "") + ") · "
               f"**{f['bytes_after_prune']} bytes** after the prune"),
    ("public: scheduled prune", "scheduled prune (`--keep-files` of 2 s)",
     lambda f: f"cache empty {f['pruned_after_s']:.1f} s after the export"),
    ("public: uploads", "uploads: at the limit, 1 byte over, 20 times over; a page with no file input",
     lambda f: f"{f['at_limit']} · **{f['one_byte_over']}** · **{f['twenty_times_over']}** "
               f"({f['bytes_kept']:,} bytes kept) · **{f['page_without_file_input']}**"),
    ("public: nothing left after a signal", "stopped server: `python app.py`, a comparison and an upload, then "
                                            "SIGTERM or SIGINT",
     lambda f: f"{f['bytes_before_SIGTERM']:,} bytes before · **{f['bytes_after_SIGTERM']} bytes** after SIGTERM, "
               f"**{f['bytes_after_SIGINT']}** after SIGINT"),
    ("public: CSV formulas", "CSV exports: formula payloads (`=HYPERLINK`, `+cmd|`, `@SUM`, `-2+3`, `=IMPORTXML`, tab, CR) "
                             "in a prompt set's CSV and the evidence export",
     lambda f: f"{f['payloads']} payloads · **{f['set_csv_verbatim']}** came back as formulas from the set CSV, "
               f"**{f.get('evidence_csv_verbatim', '–')}** from `python -m evidence export`"),
    ("public: replayed session", "a session hash replayed from another address (the history's reopen event)",
     lambda f: f"owner reopens it: {f['owner_reply_has_prompt']} · replay: **{f['replayed_prompt_bytes']} bytes** of the "
               f"prompt in a {f['replayed_reply_bytes']}-byte refusal"),
    ("public: empty tmp files", "empty `tmp*` files left by events carrying an upload",
     lambda f: f"**{f['empty_tmp_files_left']}** after {f['events']} events"),
    ("public: config", "`GET /config`: memory addresses and server paths",
     lambda f: f"**{f['memory_addresses']}** addresses, **{f['server_paths']}** paths in {f['config_bytes']:,} bytes"),
    ("public: unwritable model cache", "SmolLM2 (GGUF) with an unwritable `PLAYGROUND_CACHE`",
     lambda f: f"first load {f['first_load_s']} s (converted into a temporary folder) · second **{f['second_load_s']} s** "
               f"· said in {f['lines_said']} line"),
    ("public: blind-mode prediction rate", "blind mode before the vote: blind comparisons of tiny T5 (float32) against "
                                           "tiny Llama (bfloat16), prompts cut to the input budget, own settings per side, "
                                           "sides swapped by a shuffled coin; a 1-nearest-neighbour predictor on every "
                                           "word the page sends except the answers",
     lambda f: f"{f['runs']} runs ({f['swapped']} swapped) · swap guessed **{f['predicted_right']}/{f['runs']}** "
               f"(chance {f['chance']}) · both sides sent the same in **{f['sides_identical']}/{f['runs']}** · "
               f"{f['distinct_signatures']} distinct payload sequence per side"),
    ("public: out-of-queue flood", "out-of-queue flood: 6 clients re-sending the set tab's `about_set` event for one "
                                   "uploaded 1 MB file while another visitor generates with the tiny model and presses Stop",
     lambda f: f"{f['events']} events · **{f['parses_during_flood']} re-parses** · the visitor's speed "
               f"**{f['flood_tok_s']:g} tok/s** ({f['alone_tok_s']:g} alone) · Stop's round trip "
               f"**{f['flood_stop_ms']} ms** ({f['alone_stop_ms']} alone)"),
    ("public: sessions", "sessions on a public server: one address minting session hashes",
     lambda f: f"{f['minted']} minted · **{f['kept']} kept** ({f['per_visitor']} per visitor), {f['evicted']} of its "
               f"own evicted, the other visitor's kept · {f['total']:,} sessions in all at most · {f['fast_sent']} new "
               f"sessions at once from another address: {f['fast_accepted']} made, **{f['fast_refused']} refused** "
               f"(429; {f['per_minute']:g} a minute after the first {f['per_visitor']})"),
    ("public: crafted input", "crafted input: a `.jsonl` line of 100,000 `[` through the set tab, nested rows through "
                              "`/run_set`, out-of-range and wrong-typed slider values sent to the page's run event",
     lambda f: f"{f['refusals']} refusals · **{f['log_lines']} log lines**, {f['tracebacks']} tracebacks · "
               f"{f['log_bytes_per_refusal']} bytes each"),
    ("public: upload caps", "upload caps on a public server: 60 files in one POST (of 1,000 bytes, and of 1 MB), "
                            "foreign and own `Origin`, small per-visitor and total caps, the set tab in Chromium",
     lambda f: f"{_cases(f, 'behaved')} · 60 files **{f['sixty_files_status']}**, 60 MB **{f['sixty_mb_status']}** in "
               f"{f['sixty_mb_answer_s']} s, **{f['bytes_kept_after_refusals']} bytes** kept · `Origin` evil.example "
               f"**{f['foreign_origin']}**, own {f['own_origin']}, none {f['no_origin']} · per visitor "
               f"{f['accepted_first_visitor']} accepted then **{f['per_visitor_status']}**, in all "
               f"{f['accepted_first_visitor'] + f['accepted_second_visitor']} then **{f['total_status']}** · "
               f"Chromium's upload {f['chromium_upload_status']}"),
    ("public: body and slow-header limits", "body and slow-header limits: a 100 MB JSON body (declared), an 80 MB "
                                            "chunked one, 100 connections sending headers a byte at a time or nothing",
     lambda f: f"{_cases(f, 'behaved')} · 100 MB **{f['declared_status']}** in {f['declared_answer_s']} s, chunked "
               f"**{f['chunked_status']}** (limit {f['body_limit_bytes'] / 1e6:g} MB), memory "
               f"+{f['memory_growth_mib']:g} MiB · **{f['slow_closed']} of {f['slow_connections']}** slow connections "
               f"closed, the last after **{f['slowest_closed_s']} s** (deadline {f['header_timeout_s']:g} s) · idle "
               f"closed after {f['idle_closed_s']} s"),
    ("public: set caps", "prompt-set caps on a public server: a 200-row × 512-token set on the set tab and `/run_set`, a "
                         "set past a 2 s wall-clock cap (tiny models slowed), a second set from one visitor",
     lambda f: f"**{f['max_set_tokens']:,} new tokens** per set and side, **{f['max_set_seconds']:g} s**, "
               f"{f['sets_per_visitor']} set per visitor · {f['refused_rows']} × {f['refused_max_new_tokens']} refused "
               f"in {f['refusal_s']} s (\"{f['refusal'].split('; ')[-1]}\") · capped set stopped after "
               f"{f['time_capped_after_s']} s, rows kept {f['time_capped_rows_kept']['left']}/{f['time_capped_rows']} "
               f"and {f['time_capped_rows_kept']['right']}/{f['time_capped_rows']} · second set: 429"),
    ("public: a single prompt while sets run", "a single prompt while sets run: three visitors' sets (slowed) with "
                                               "`--concurrency 3`, then a tiny-model `/generate` from a fourth",
     lambda f: f"{f['sets_running']} sets running ({f['set_slots']} set slots), {f['sets_waiting']} waiting · first "
               f"token **{f['first_token_during_sets_s']} s** ({f['first_token_alone_s']} s alone)"),
    ("public: model loads", "model loads: 3 runs stopped while a 1.5 s load runs on one load worker; a fourth load "
                            "past a queue of 2, another precision past 1 per model",
     lambda f: f"**{f['queued_loads_dropped']} of {f['stopped_runs']} queued loads dropped** before they started, "
               f"{f['loads_started']} load for {f['runs_sharing_one_load']} runs of one model · {f['refused']} refused "
               f"at once"),
    ("public: log bytes per refusal", "log bytes per refusal: `/generate` calls with `top_p=0`; a real fault",
     lambda f: f"{f['refusals']} refusals · **{f['log_bytes_per_refusal']} bytes** and 1 line each, "
               f"{f['tracebacks']} tracebacks; the fault still logs its traceback ({f['fault_traceback_bytes']:,} bytes)"),
]


def table(figures: dict[str, Any]) -> str:
    """The Markdown table; a section the last run did not write is left out."""
    lines = ["| check | figures |", "|---|---|"]
    lines += [f"| {what} | {render(figures[key])} |" for key, what, render in ROWS if key in figures]
    return "\n".join(lines)


def shown(page: str) -> str:
    """The table between the markers of ``page`` (ValueError when they are missing)."""
    if START not in page or END not in page.split(START, 1)[1]:
        raise ValueError(f"no {START} … {END} block")
    return page.split(START, 1)[1].split(END, 1)[0].strip("\n")


def replace(page: str, text: str) -> str:
    """``page`` with the table between its markers replaced by ``text``; everything else kept."""
    shown(page)
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{text}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="replace the table in the page")
    action.add_argument("--check", action="store_true", help="exit 1 when the page's table differs from this one")
    parser.add_argument("--page", type=Path, default=PAGE, help="the page (default: docs/benchmarks.md)")
    args = parser.parse_args(argv)
    text = table(json.loads(ARTIFACT.read_text()))
    if args.check:
        same = shown(args.page.read_text(encoding="utf-8")) == text
        print(f"{args.page}: the reliability table {'is' if same else 'is not'} the one {ARTIFACT.name} gives")
        return 0 if same else 1
    if not args.write:
        print(text)
        return 0
    args.page.write_text(replace(args.page.read_text(encoding="utf-8"), text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
