"""The shareable record of one comparison, and a session's history of them. Plain Python.

A *comparison* is a JSON-ready dict: the prompt, each side's last-run record (model
with description and revision, settings, what the model saw, output, stats, the
reproducing code) under ``"left"`` and ``"right"`` (either side may hold any model), the
visitor's rating, whether it was given blind (model names hidden until rated), and a timestamp. It is kept in a per-session
history that can be reopened, and written as JSON and as Markdown for download in its
file form (:func:`export_form`), which holds the prompt once.

Example:
    >>> c = build_comparison({"model": "a", "text": "x"}, {"model": "b", "text": "y"}, prompt="Hi", rating="tie")
    >>> c["rating_label"]
    'Tie'
    >>> to_markdown(c).splitlines()[0]
    '# One prompt, two models, side by side'
"""

from __future__ import annotations

import copy
import html
import json
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from .render import confidence_line, percent, stats_line, visible

FORMAT = "seq2seq-causal-playground/comparison"  # identifies the JSON files
FORMAT_VERSION = 3  # 3: sides are "left"/"right" (any model on either), blind ratings; 2: the prompt once
PROMPT_MARK = "⟨prompt⟩"  # where the prompt sits in a side's model input, in the Markdown file
SIDES = ("left", "right")
SIDE_TITLES = {"left": "Left", "right": "Right"}
RATINGS = {"left": "Left better", "right": "Right better", "tie": "Tie", "both_bad": "Both bad"}  # evidence.types.CHOICES
RATING_CHOICES = [(label, value) for value, label in RATINGS.items()]  # for a gr.Radio: (label, value)
MAX_HISTORY = 50  # comparisons kept per session; the oldest go first


def _now() -> datetime:
    return datetime.now(timezone.utc)


def build_comparison(left: Mapping[str, Any] | None, right: Mapping[str, Any] | None, *, prompt: str | None = None,
                     rating: str | None = None, created: datetime | None = None, comparison_id: str | None = None,
                     blind: bool = False, swapped: bool = False) -> dict[str, Any]:
    """One comparison from the two sides' last-run records.

    Args:
        left / right: the sides' records (``None`` when a side has no result).
        prompt: the user's prompt; defaults to the one stored in the records.
        rating: ``"left"``, ``"right"``, ``"tie"``, ``"both_bad"`` or ``None`` (anything else counts as ``None``).
        created: when the comparison was made (UTC now by default).
        comparison_id: a stable id (a new random one by default).
        blind: the model names were hidden from the visitor until the first rating (``blind_rating``).
        swapped: blind mode put the left panel's choice on the right and the right one's on the left.
    """
    records = {"left": copy.deepcopy(dict(left)) if left else None,
               "right": copy.deepcopy(dict(right)) if right else None}
    if prompt is None:
        prompt = next((r["prompt"] for r in records.values() if r and isinstance(r.get("prompt"), str)), "")
    created = created or _now()
    rating = rating if rating in RATINGS else None
    out = {
        "format": FORMAT, "version": FORMAT_VERSION, "id": comparison_id or uuid.uuid4().hex[:12],
        "created": created.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "prompt": prompt, "rating": None, "rating_label": "not rated",
        "blind": bool(blind), "blind_rating": None, "swapped": bool(swapped) if blind else False,
        "sides": records,
    }
    return with_rating(out, rating)


def with_rating(comparison: Mapping[str, Any], rating: str | None) -> dict[str, Any]:
    """A copy of ``comparison`` with a new rating. In a blind comparison the first rating is kept as
    ``blind_rating`` (the names are revealed once it is given; a later change is not blind)."""
    out = copy.deepcopy(dict(comparison))
    out["rating"] = rating if rating in RATINGS else None
    out["rating_label"] = RATINGS.get(out["rating"] or "", "not rated")
    if out.get("blind") and out.get("blind_rating") is None and out["rating"] is not None:
        out["blind_rating"] = out["rating"]
    return out


def hidden(comparison: Mapping[str, Any]) -> bool:
    """True while a blind comparison's model names must stay hidden (it has not been rated yet)."""
    return bool(comparison.get("blind")) and comparison.get("blind_rating") is None


def rating_note(comparison: Mapping[str, Any]) -> str:
    """How the rating was given: ``""``, ``"given blind"`` or ``"first given blind: Tie, changed after the reveal"``."""
    blind_rating = comparison.get("blind_rating")
    if not comparison.get("blind") or blind_rating is None:
        return "blind, not rated yet" if comparison.get("blind") else ""
    if blind_rating == comparison.get("rating"):
        return "given blind: the model names were hidden until it was given"
    return f"first given blind: {RATINGS.get(blind_rating, blind_rating)}, changed after the names were revealed"


def _model_input(seen: str, prompt: str) -> dict[str, str]:
    """What a model received, without repeating the prompt: the text around it, or the whole text
    when the prompt is not in it intact (an input cut to fit)."""
    at = seen.find(prompt) if prompt else -1
    if at < 0:
        return {"text": seen}
    return {"before": seen[:at], "after": seen[at + len(prompt):]}


def _code_reading_prompt(code: str, prompt: str, json_name: str) -> str:
    """The reproducing script with its prompt literal replaced by a read of this export's JSON file."""
    literal = f"prompt = {prompt!r}"  # how models/snippet.py writes it
    reading = (f"import json\nprompt = json.load(open({json_name!r}, encoding=\"utf-8\"))[\"prompt\"]"
               "  # the comparison's prompt, from its JSON export")
    return code.replace(literal, reading, 1)


def export_form(comparison: Mapping[str, Any], *, code_reads_json: bool = True) -> dict[str, Any]:
    """The comparison as written to files: what a reader needs, with the prompt once.

    The prompt stays at the top only. Each side keeps its model, settings, output, stats and code,
    but not the prompt again: what the model received becomes ``model_input`` (the chat template or
    task prefix around the prompt: ``before`` and ``after``, or ``text`` when the input was cut), the
    code reads the prompt from the JSON file (``code_reads_json``; else the code keeps its prompt, so it runs
    copied out of a Markdown file alone), and the token view (a display of the same text) is left out.
    """
    out = copy.deepcopy(dict(comparison))
    prompt = str(out.get("prompt", ""))
    json_name = f"{file_stem(comparison)}.json"
    out["version"] = FORMAT_VERSION
    for side, record in (out.get("sides") or {}).items():
        if not record:
            continue
        if record.get("prompt") == prompt:
            del record["prompt"]
        record.pop("prompt_view", None)
        if record.get("prompt_as_seen") is not None:
            record["model_input"] = _model_input(str(record.pop("prompt_as_seen")), prompt)
        if code_reads_json and isinstance(record.get("code"), str):
            record["code"] = _code_reading_prompt(record["code"], prompt, json_name)
    return out


def to_json(comparison: Mapping[str, Any]) -> str:
    """The comparison's file form (:func:`export_form`) as pretty JSON (UTF-8 text, non-ASCII kept).

    Everything is indented for reading except each side's token list, written one compact token per line:
    indented, a token with its top 5 takes 25 lines and about 1 KB; compact, about 250 bytes.
    """
    out = export_form(comparison)
    compact: dict[str, str] = {}
    for side, record in (out.get("sides") or {}).items():
        stats = (record or {}).get("stats")
        if isinstance(stats, dict) and isinstance(stats.get("tokens"), list):
            mark = f"\u0000tokens-{side}-{uuid.uuid4().hex}"
            compact[json.dumps(mark)] = stats["tokens"]
            stats["tokens"] = mark
    text = json.dumps(out, indent=2, ensure_ascii=False, default=str)
    for mark, tokens in compact.items():
        at = text.index(mark)
        pad = " " * (at - text.rindex("\n", 0, at) - 1 - len('"tokens": '))
        lines = [json.dumps(t, ensure_ascii=False, separators=(",", ":"), default=str) for t in tokens]
        body = ("[\n" + ",\n".join(pad + "  " + line for line in lines) + "\n" + pad + "]") if lines else "[]"
        text = text.replace(mark, body, 1)
    return text + "\n"


# ----- Markdown -----

def _fence(text: str, info: str = "text") -> str:
    """``text`` in a code fence longer than any backtick run inside it (so it stays inert)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def file_text(value: Any) -> str:
    """Text for a Markdown *file*: ``<``, ``>`` and ``&`` as entities, so nothing renders as HTML, and nothing
    else (quotes and apostrophes stay as they are: ``task_prefix=''``, not ``task_prefix=&#x27;&#x27;``)."""
    return html.escape("" if value is None else str(value), quote=False)


def table_cell(value: Any) -> str:
    """Text for a Markdown table cell: escaped for a file (:func:`file_text`), one line, pipes escaped
    (``None``: empty)."""
    return " ".join(file_text(value).split()).replace("|", "\\|")


def code_cell(text: Any) -> str:
    """A token's text as a code span in a table cell: literal (a code span shows ``<pad>`` as it is, so it is
    not escaped), whitespace made visible, backticks replaced, pipes escaped; ``(none)`` for an empty text."""
    shown = visible(str(text)).replace("`", "ˋ").replace("|", "\\|")
    return f"`{shown}`" if shown else "(none)"


def _side_markdown(side: str, record: Mapping[str, Any] | None) -> list[str]:
    title = SIDE_TITLES.get(side, side)
    if not record:
        return [f"## {title}", "", "_No result._", ""]
    lines = [f"## {title}: {table_cell(record.get('model', 'unknown model'))}", ""]
    if record.get("error") and not record.get("stats"):
        return lines + [f"⚠️ {table_cell(record['error'])}", ""]
    model = record.get("description") or {}
    rows: list[tuple[str, Any]] = []
    if model.get("served_by"):  # a model an inference engine serves: its endpoint and model id, never its URL or token
        rows.append(("Served by", f"endpoint {model.get('endpoint')} · {model.get('engine')} · model id {model.get('model_id')} "
                                  f"({model.get('architecture', model.get('kind'))})"))
    elif model:
        rows.append(("Class", f"{model.get('auto_class')} → {model.get('resolved_class')} "
                              f"({model.get('architecture', model.get('kind'))})"))
        rows.append(("Revision", model.get("revision") or "not known (local or converted weights)"))
        size = f"{model.get('params_text', model.get('params'))} params · {model.get('dtype')} · {model.get('device')}"
        if model.get("quantization", "none") != "none":
            size += f" · {model['quantization']}"
        rows.append(("Size", size))
        rows.append(("From", model.get("origin", "")))
    settings = record.get("settings") or {}
    if settings:
        rows.append(("Settings", ", ".join(f"{k}={v!r}" for k, v in settings.items())))
    stats = record.get("stats") or {}
    if stats:
        rows.append(("Stats", stats_line(stats, markdown=False)))
        line = confidence_line(stats).replace("**", "")
        rows.append(("Confidence", line or f"no token probabilities ({stats.get('tokens_note') or 'none returned'})"))
        for notice in stats.get("notices") or ():
            rows.append(("Notice", notice))
        if stats.get("error"):
            rows.append(("Error", stats["error"]))
    lines += ["| | |", "|---|---|", *[f"| {name} | {table_cell(value)} |" for name, value in rows], ""]
    model_input = record.get("model_input")
    if model_input is not None:
        if "text" in model_input:
            lines += ["What the model received (cut to fit):", "", _fence(str(model_input["text"])), ""]
        else:
            lines += [f"What the model received ({PROMPT_MARK} is the prompt above):", "",
                      _fence(f"{model_input['before']}{PROMPT_MARK}{model_input['after']}"), ""]
    lines += ["Output:", "", _fence(str(record.get("text", ""))), ""]
    lines += _tokens_markdown(stats.get("tokens"))
    if record.get("code"):
        lines += ["<details><summary>Code that reproduces this side</summary>", "", _fence(str(record["code"]), "python"), "",
                  "</details>", ""]
    return lines


def _tokens_markdown(tokens: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """Each generated token with its probability and the most likely tokens at that step, in a folded table."""
    if not tokens:
        return []
    rows = [f"| {i} | {code_cell(t.get('text', ''))} | {percent(float(t.get('prob', 0.0)))} | "
            + " · ".join(f"{code_cell(c.get('text', ''))} {percent(float(c.get('prob', 0.0)))}" for c in t.get("top") or [])
            + " |" for i, t in enumerate(tokens, 1)]
    return ["<details><summary>Token by token: the model's probability for each token, and its top 5 there</summary>",
            "", "| # | token | probability | most likely there |", "|---|---|---|---|", *rows, "", "</details>", ""]


def _file_words(text: Any) -> str:
    """A word of an answer in running Markdown text: literal (Markdown punctuation backslash-escaped), for a file."""
    return file_text("".join("\\" + ch if ch in "\\`*_[]#|~" else ch for ch in str(text)))


def parting_markdown(parting: Mapping[str, Any] | None) -> list[str]:
    """Where the two answers part, as a section (nothing when the comparison has no such record)."""
    if not parting:
        return []
    if parting.get("identical"):
        return ["## Where the answers part", "", "The two answers are identical.", ""]
    lines = ["## Where the answers part", ""]
    if parting.get("word") is None:
        lines.append("The same words; only spaces or line breaks differ.")
    else:
        lines.append(f"They part at word {int(parting['word'])}: left {table_cell(parting.get('left_word') or '(ended)')}, "
                     f"right {table_cell(parting.get('right_word') or '(ended)')}.")
    fork = parting.get("fork")
    if fork:
        lines.append(f"First differing token: #{int(fork['index']) + 1}, left "
                     f"{table_cell(fork['left'].get('text'))} ({percent(float(fork['left'].get('prob', 0)))}), right "
                     f"{table_cell(fork['right'].get('text'))} ({percent(float(fork['right'].get('prob', 0)))}).")
    marks = {"equal": "", "delete": "~~", "insert": "**"}
    diff = " ".join(f"{marks[op]}{' '.join(_file_words(w) for w in words)}{marks[op]}"
                    for op, words in parting.get("diff") or [])
    return lines + ["", "Word diff (~~struck~~: left only, **bold**: right only):", "", diff, ""]


def to_markdown(comparison: Mapping[str, Any]) -> str:
    """The comparison's file form as a Markdown document, the prompt once outside the code: each side's code
    carries its prompt, so it runs copied out of this file alone. Prompt, outputs and code sit in code fences,
    every other value has its <, > and & as entities (quotes stay as they are), so nothing in it renders as HTML."""
    comparison = export_form(comparison, code_reads_json=False)
    sides = comparison.get("sides") or {}
    note = rating_note(comparison)
    lines = [
        "# One prompt, two models, side by side",
        "",
        f"{table_cell(comparison.get('created', ''))} · rating: **{table_cell(comparison.get('rating_label', 'not rated'))}**"
        + (f" ({table_cell(note)})" if note else ""),
        "",
        "## Prompt",
        "",
        _fence(str(comparison.get("prompt", ""))),
        "",
    ]
    for side in SIDES:
        lines += _side_markdown(side, sides.get(side))
    lines += parting_markdown(comparison.get("parting"))
    return "\n".join(lines).rstrip() + "\n"


def file_stem(comparison: Mapping[str, Any]) -> str:
    """``comparison-20250101-120000-ab12cd``: when it was made, plus its id (safe as a file name)."""
    stamp = re.sub(r"[^0-9T]", "", str(comparison.get("created", "")))[:15].replace("T", "-")
    ident = re.sub(r"[^0-9A-Za-z]", "", str(comparison.get("id", "")))[:6]
    return f"comparison-{stamp or 'undated'}-{ident or 'x'}"


def write_exports(comparison: Mapping[str, Any], folder: str | Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``folder`` (created); return both paths.

    Writing again for the same comparison (e.g. after rating it) replaces the files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = file_stem(comparison)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(to_json(comparison), encoding="utf-8")
    md_path.write_text(to_markdown(comparison), encoding="utf-8")
    return json_path, md_path


# ----- per-session history -----

def add_to_history(history: Sequence[Mapping[str, Any]] | None, comparison: Mapping[str, Any],
                   max_entries: int = MAX_HISTORY) -> list[dict[str, Any]]:
    """A new history list holding ``comparison``.

    A comparison with the same id (re-rated), or with the same two side records (one run
    reported by both sides), replaces the earlier entry in its place; anything else is
    appended. Only the last ``max_entries`` are kept.
    """
    out = [dict(c) for c in history or ()]
    for i, old in enumerate(out):
        if old.get("id") == comparison.get("id") or old.get("sides") == comparison.get("sides"):
            out[i] = dict(comparison)
            return out
    out.append(dict(comparison))
    return out[-max_entries:]


def find_comparison(history: Sequence[Mapping[str, Any]] | None, comparison_id: Any) -> dict[str, Any] | None:
    """The comparison with this id, or ``None``."""
    return next((dict(c) for c in history or () if c.get("id") == comparison_id), None)


def _side_label(record: Mapping[str, Any] | None) -> str:
    """A side in a history label: its model, saying so when that side gave no answer."""
    if not record:
        return "(no answer)"
    model = str(record.get("model") or "?")
    if record.get("error") and not record.get("stats"):
        return f"{model} (failed)"
    return model


def history_label(comparison: Mapping[str, Any], number: int) -> str:
    """A one-line label: ``#2 · 12:00:00 · What is the capital… · tiny-t5 vs tiny-gpt2 · Tie``."""
    created = str(comparison.get("created", ""))
    clock = created[11:19] if len(created) >= 19 else created
    prompt = " ".join(str(comparison.get("prompt", "")).split())
    prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
    sides = comparison.get("sides") or {}
    models = ("blind: models hidden until rated" if hidden(comparison)
              else " vs ".join(_side_label(sides.get(s)) for s in SIDES))
    label = f"#{number} · {clock} · {prompt} · {models}"
    if comparison.get("rating"):
        label += f" · {comparison.get('rating_label')}"
    return label


def history_choices(history: Sequence[Mapping[str, Any]] | None) -> list[tuple[str, str]]:
    """``(label, id)`` pairs for a dropdown, newest first."""
    entries = list(history or ())
    return [(history_label(c, i + 1), str(c.get("id"))) for i, c in reversed(list(enumerate(entries)))]
