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
