"""Pure formatting: turn model-layer dicts into safe Markdown for the page.

Everything that may contain user or model text is HTML-escaped, so a prompt or a
model id such as ``<script>`` is shown, never run.
"""

from __future__ import annotations

import html
from typing import Any, Mapping

ARCH_EXPLAINER = {
    "seq2seq": ("**Encoder-decoder (seq2seq).** The encoder reads your whole input first; the decoder then writes a "
                "*new* text from its start token, looking back at the encoder's reading. Good at transforming an input: "
                "translate, summarize, answer. The shading under its answer shows how sure the decoder was of each "
                "token it wrote, given the encoded input and the answer so far: a pale red token is where it hesitated."),
    "causal": ("**Decoder-only (causal).** There is no separate input: your prompt (wrapped in a chat template for chat "
               "models) is the beginning of the text, and the model *continues* it one token at a time. The shading under its answer shows how sure it was of "
               "each token, given everything before it (your prompt and the answer so far)."),
}


def esc(text: Any) -> str:
    """HTML-escape any value for Markdown output."""
    return html.escape(str(text), quote=True)


ARCHITECTURES = {"seq2seq": "encoder-decoder", "causal": "decoder-only"}


#: Plain words for the terms a card may show, each put under the card once when it appears there.
GLOSSARY = (
    ("AutoModelFor", "`AutoModelFor… -> …`: the transformers class that loads the model, then the class it builds"),
    ("GGUF", "GGUF: llama.cpp's one-file model format"),
    ("Q4_", "Q4_0, Q4_1…: the GGUF file stores its weights in about 4 bits each (turned back into full precision here)"),
    ("Q8_", "Q8_0: the GGUF file stores its weights in about 8 bits each (turned back into full precision here)"),
    ("[playground cache]", "[playground cache]: this playground's cache folder on the server (its path is not shown)"),
)


def glossary(text: str) -> str:
    """One line explaining the terms of :data:`GLOSSARY` that ``text`` holds, or ``""``."""
    found = [words for term, words in GLOSSARY if term in text]
    return f"<br>ℹ️ {' · '.join(found)}" if found else ""


def card_markdown(description: Mapping[str, Any] | None = None, *, architecture: Mapping[str, Any] | None = None,
                  error: str | None = None, note: str | None = None) -> str:
    """The model card line: Auto class -> concrete class, architecture, size, dtype, device.

    Shows the full description of a loaded model (``ModelDescription.to_dict()``), who serves an
    endpoint model (``EndpointDescription.to_dict()``: "served by NAME (engine, model id)"), or what
    the config says before loading (``ClassReport.to_dict()``), or an error.
    """
    if error:
        return f"⚠️ {esc(error)}"
    parts: list[str] = []
    if description and description.get("served_by"):
        parts.append(f"{esc(description['served_by'])} · {esc(description['architecture'])} · "
                     "runs on the engine's machine, not here")
    elif description:
        parts.append(f"**{md_text(description.get('name', ''))}** · `{esc(description['auto_class'])} -> {esc(description['resolved_class'])}` · "
                     f"{esc(description['architecture'])} · {esc(description['params_text'])} params · "
                     f"{precision_text(description)} · {esc(description['device'])} · "
                     f"{description['memory_bytes'] / 2**20:.1f} MiB · from {esc(description['origin'])}")
    elif architecture:
        parts.append(f"`{esc(architecture['auto_class'])} -> {esc(architecture['resolved_class'])}` · "
                     f"{esc(ARCHITECTURES.get(architecture.get('kind', ''), architecture.get('kind', '')))} · "
                     f"model_type `{esc(architecture['model_type'])}` · not loaded yet")
    parts.append(glossary("".join(parts)))
    if note:
        parts.append(f"<br>ℹ️ {esc(note)}")
    return "".join(parts) or "Pick a model."


def precision_text(description: Mapping[str, Any]) -> str:
    """``"precision **bfloat16**"``; for 8-bit, the dtype of the layers left unquantized too."""
    precision = description.get("precision") or description.get("dtype", "?")
    quantized = description.get("quantization", "none") != "none"
    rest = f" (other layers {esc(description.get('dtype', '?'))})" if quantized else ""
    return f"precision **{esc(precision)}**{rest}"


#: Why an answer ended, in plain words (shown after the exact finish reason on the page).
FINISH_WORDS = {"eos": "the model ended its answer itself", "length": "it reached the longest answer, max_new_tokens",
                "stopped": "stopped before its end", "error": "it failed"}


def stats_line(stats: Mapping[str, Any], *, markdown: bool = True) -> str:
    """One line of a run's figures: first token, tokens/s, tokens in → out, total time, finish reason.

    ``markdown=False`` gives the plain form used in exported files.
    """
    bold = (lambda text: f"**{text}**") if markdown else (lambda text: text)
    ttft, tps, total = stats.get("time_to_first_token"), stats.get("tokens_per_second"), stats.get("total_seconds")
    unit = "chunks" if stats.get("count_unit") == "chunks" else "tokens"  # an endpoint that reports no token counts
    inputs = stats.get("input_tokens")
    parts = [f"first token {bold(f'{ttft:.2f} s')}" if isinstance(ttft, (int, float)) else "no token",
             f"{bold(f'{tps:.1f}')} {unit}/s" if isinstance(tps, (int, float)) else f"– {unit}/s",
             f"{'?' if inputs is None else inputs} in → {stats.get('output_tokens', '?')} out"
             + (" (stream chunks, not tokens)" if unit == "chunks" else "")]
    if isinstance(total, (int, float)):
        parts.append(f"{total:.2f} s")
    reason = str(stats.get("finish_reason", "?"))
    parts.append(f"finish: {bold(esc(reason))}" + (f" ({FINISH_WORDS[reason]})" if markdown and reason in FINISH_WORDS else ""))
    if stats.get("precision"):
        parts.append(f"ran in {esc(stats['precision'])}")
    if (stats.get("batch_rows") or 1) > 1:
        parts.append(f"answered together with {int(stats['batch_rows']) - 1} other request(s) in one batch")
    return " · ".join(parts)


#: A blind side's stats line until the visitor rates: the same on both sides, whatever ran there (token counts,
#: speed, time, finish reason and input notices each told the models apart).
BLIND_HELD = ("✅ done · finish: **shown after you rate**, with the tokens in and out, the speed and the time "
              "(they could tell the models apart)")
BLIND_FAILED = "⚠️ this side failed part-way · finish: **shown after you rate**, with why"


def stats_markdown(stats: Mapping[str, Any] | None, *, status: str | None = None, blind: bool = False) -> str:
    """The stats line under an answer with its notices and error, or a status / error line while there are no stats.

    ``blind``: none of the figures, only :data:`BLIND_HELD` (or :data:`BLIND_FAILED` when the answer failed
    part-way): until the visitor rates, nothing in it may tell which model ran where.
    """
    if status:
        return esc(status)
    if not stats:
        return ""
    if blind:
        return BLIND_FAILED if stats.get("error") or stats.get("finish_reason") == "error" else BLIND_HELD
    line = stats_line(stats)
    for notice in stats.get("notices", []):
        line += f"<br>ℹ️ {esc(notice)}"
    if stats.get("error"):
        line += f"<br>⚠️ {esc(stats['error'])}"
    return line


def error_markdown(message: str) -> str:
    """A readable error line for a panel."""
    return f"⚠️ {esc(message)}"


# ----- prompt view: the tokens that enter the model -----

#: Colour and meaning of each token role (see ``models.explain.ROLES``).
TOKEN_ROLES = {
    "template": ("#fde68a", "added by the chat template"),
    "prefix": ("#fbcfe8", "task prefix"),
    "prompt": ("#bfdbfe", "your prompt"),
    "added": ("#d1d5db", "special token the tokenizer adds"),
    "start": ("#bbf7d0", "decoder start token"),
    "text": ("#e5e7eb", "input token"),
}
#: Styles for :func:`prompt_view_html` (a ``css_template``; Gradio scopes it to the component).
TOKENS_CSS = (
    ".pv-row { display: flex; flex-wrap: wrap; gap: 3px; margin: 4px 0 8px; max-height: 18em; overflow-y: auto; }"
    ".tok { font-family: ui-monospace, monospace; font-size: 0.85em; padding: 1px 4px; border-radius: 4px;"
    " color: #111827; white-space: pre; border: 1px solid rgba(0,0,0,0.12); }"
    ".pv p { margin: 4px 0; }"
    ".pv code { white-space: pre-wrap; overflow-wrap: anywhere; }"  # a chat template's text has no spaces to wrap at
    + "".join(f".tok-{role} {{ background: {colour}; }}" for role, (colour, _) in TOKEN_ROLES.items())
)
PROMPT_VIEW_EMPTY = "Run to see the tokens this model receives."


def visible(text: str) -> str:
    """Make whitespace visible in a token: ``·`` for a space, ``↵`` for a newline, ``→`` for a tab."""
    return text.replace(" ", "·").replace("\n", "↵").replace("\r", "⏎").replace("\t", "→")


def md_text(text: Any) -> str:
    """HTML-escape ``text`` and backslash-escape Markdown punctuation, so it shows literally."""
    return esc("".join("\\" + ch if ch in "\\`*_[]#|~" else ch for ch in str(text)))  # entities stay intact


def _chip(token: Mapping[str, Any]) -> str:
    role = token.get("role", "text")
    role = role if role in TOKEN_ROLES else "text"
    title = f"id {token.get('id')} · {token.get('token')} · {TOKEN_ROLES[role][1]}"
    return f'<span class="tok tok-{role}" title="{esc(title)}">{esc(visible(str(token.get("text", ""))))}</span>'


def prompt_view_html(view: Mapping[str, Any] | None, *, error: str | None = None) -> str:
    """HTML chips for a ``models.explain.PromptView`` dict: token counts, the template's effect, then each token.

    Every token and template text is escaped: a prompt such as ``<script>`` shows as text.
    """
    if error:
        return f"<p>⚠️ {esc(error)}</p>"
    if not view:
        return f"<p>{esc(PROMPT_VIEW_EMPTY)}</p>"
    tokens = list(view.get("tokens", []))
    parts = ['<div class="pv">']
    if view.get("kind") == "seq2seq":
        counts = [f"{view.get('prompt_tokens', 0)} from your prompt"]
        if view.get("added_by_prefix"):
            counts.insert(0, f"{view['added_by_prefix']} from the task prefix")
        if view.get("special_tokens"):
            counts.append(f"{view['special_tokens']} special")
        parts.append(f"<p><b>Encoder input: {len(tokens)} tokens</b> ({esc(' · '.join(counts))}). "
                     "The encoder reads all of them at once.</p>")
        parts.append('<div class="pv-row">' + "".join(_chip(t) for t in tokens) + "</div>")
        decoder = list(view.get("decoder", []))
        start = "".join(_chip(t) for t in decoder) or "<i>(no start token in the config)</i>"
        parts.append(f"<p><b>Decoder starts from</b> {start} and writes the answer after it, one token at a time "
                     f"(at most {esc(view.get('max_new_tokens'))}), looking back at the encoder's reading.</p>")
    else:
        if view.get("used_chat_template"):
            wrapper = view.get("wrapper")
            effect = (f"Chat template added <b>{esc(view.get('added_by_template', 0))} tokens</b>"
                      + (f': <code>{esc(visible(wrapper))}</code> (your prompt is the “…”)' if wrapper else ".")
                      if view.get("added_by_template") or wrapper else "The chat template added nothing.")
        elif view.get("has_chat_template"):
            effect = "Chat template switched off: the model continues your text as is."
        else:
            effect = "This model has no chat template: it continues your text as is."
        special = f" · {view['special_tokens']} special" if view.get("special_tokens") else ""
        parts.append(f"<p><b>The model continues these {len(tokens)} tokens</b> "
                     f"({esc(view.get('prompt_tokens', 0))} from your prompt{esc(special)}), "
                     f"then adds at most {esc(view.get('max_new_tokens'))} new ones.</p>")
        parts.append(f"<p>{effect}</p>")
        parts.append('<div class="pv-row">' + "".join(_chip(t) for t in tokens) + "</div>")
    roles = {t.get("role") for t in tokens} | {t.get("role") for t in view.get("decoder", [])}
    legend = " ".join(f'<span class="tok tok-{r}">{esc(label)}</span>' for r, (_, label) in TOKEN_ROLES.items() if r in roles)
    parts.append(f"<p>{legend} · <code>·</code> = space, <code>↵</code> = new line; hover a token for its id.</p>")
    for notice in view.get("notices", []):
        parts.append(f"<p>ℹ️ {esc(notice)}</p>")
    parts.append("</div>")
    return "".join(parts)


# ----- the class question -----

CLASS_EXPLAINER = (
    "In code, a model is loaded through an **Auto class**: a lookup table that reads the model's `config.json` "
    "and picks the Python class written for that architecture. `AutoModelForSeq2SeqLM` only lists encoder-decoder "
    "models, `AutoModelForCausalLM` only decoder-only ones, so the model's config, not its name, decides which one works."
)


def class_markdown(report: Mapping[str, Any] | None = None, *, error: str | None = None,
                   served_by: str | None = None) -> str:
    """Answer "which class runs this model, and what if I use the other Auto class?" for a
    ``models.explain.ClassReport`` dict, in plain words.

    ``served_by`` marks a model an inference engine serves: without a report its architecture cannot
    be seen from here; with one (its model id is a hub id whose config could be read) the answer says
    where it comes from.
    """
    if error:
        return f"**Which class runs it?** ⚠️ {esc(error)}"
    if served_by and not report:
        return "\n".join([
            "**Which class runs this model?**",
            f"- It is {esc(served_by)}. The engine loads and runs it on its own machine, so its architecture "
            "cannot be seen from here: this playground never reads its `config.json`.",
            "- The answer would show here if its model id were a Hugging Face hub id whose config this machine can read.",
            "", CLASS_EXPLAINER])
    if not report:
        return ""
    declared = ", ".join(report.get("declared") or ()) or "none listed"
    lines = [
        ARCH_EXPLAINER.get(str(report.get("kind")), ""), "",
        "**Which class runs this model?**",
        *([f"- It is {esc(served_by)}; the engine runs it with its own code. Its config, read from the Hugging Face "
           "hub under the same id, says what transformers would use:"] if served_by else []),
        f"- Loaded with `{esc(report['auto_class'])}`, which resolves to `{esc(report['resolved_class'])}` "
        f"(config: model_type `{esc(report['model_type'])}`, architectures: {esc(declared)}).",
    ]
    other = esc(report["other_auto_class"])
    if report.get("other_accepts"):
        lines.append(f"- With `{other}` instead: {md_text(report['other_result'])}")
        lines.append("- In plain words: the other class would build only part of this model, so it would not read "
                     "your prompt the way this panel does.")
    else:
        lines.append(f"- With `{other}` instead, transformers refuses:")
        lines.append(f"\n  > {md_text(report['other_result'])}\n")
        what = ("it has an encoder and a decoder, and the causal table only lists decoder-only models"
                if report.get("kind") == "seq2seq" else "it is decoder-only, and the seq2seq table only lists encoder-decoder models")
        lines.append(f"- In plain words: {what}, so the wrong Auto class cannot even build it.")
    lines.append("")
    lines.append(CLASS_EXPLAINER)
    return "\n".join(lines)


# ----- token confidence: how sure the model was of each token it wrote -----

#: Probability bands, most sure first: (lowest probability of the band, colour, legend label).
CONFIDENCE_BANDS = (
    (0.9, "#bbf7d0", "90 % or more"),
    (0.7, "#d9f99d", "70–90 %"),
    (0.5, "#fef08a", "50–70 %"),
    (0.25, "#fed7aa", "25–50 %"),
    (0.0, "#fecaca", "under 25 %"),
)
#: Styles for :func:`confidence_html` (a ``css_template``; Gradio scopes it to the component).
CONFIDENCE_CSS = (
    ".cf p { margin: 4px 0; }"
    ".cf-text { line-height: 1.9; white-space: pre-wrap; max-height: 22em; overflow-y: auto; padding: 2px; }"
    ".ct { position: relative; border-radius: 3px; color: #111827; cursor: help; }"
    ".ct:focus { outline: 2px solid #2563eb; }"
    ".cf-special { font-size: 0.75em; color: #4b5563; border: 1px dashed #9ca3af; padding: 0 2px; }"
    ".cf-pop { display: none; position: absolute; z-index: 30; left: 0; top: 1.6em; min-width: 12em;"
    " background: #111827; color: #f9fafb; padding: 4px 8px; border-radius: 4px; white-space: pre;"
    " font-size: 0.8em; line-height: 1.4; font-family: ui-monospace, monospace; }"
    ".ct:hover .cf-pop, .ct:focus .cf-pop { display: block; }"
    ".cf-key { padding: 0 4px; border-radius: 3px; color: #111827; }"
    + "".join(f".cf-b{i} {{ background: {colour}; }}" for i, (_, colour, _) in enumerate(CONFIDENCE_BANDS))
)
CONFIDENCE_EMPTY = ""
CONFIDENCE_WHAT = {
    "seq2seq": "how sure the decoder was of each next token, given the encoded input and the answer so far",
    "causal": "how sure the model was of each next token, given everything before it: your prompt and the answer so far",
}
CONFIDENCE_HIDDEN = "<p>Token probabilities are shown after you rate (they could tell the models apart).</p>"


def band(prob: float) -> int:
    """The index of ``prob``'s band in :data:`CONFIDENCE_BANDS`."""
    return next(i for i, (low, _, _) in enumerate(CONFIDENCE_BANDS) if prob >= low)


def percent(prob: float) -> str:
    """``0.4132`` -> ``"41 %"``; below 1 %, one significant figure (``"0.3 %"``)."""
    value = prob * 100
    return f"{value:.0f} %" if value >= 1 or value == 0 else f"{value:.1g} %"


def quoted(text: str) -> str:
    """A token's text as shown in a list: quoted, whitespace made visible, escaped."""
    return f"“{esc(visible(text))}”"


def _token_span(token: Mapping[str, Any]) -> str:
    prob = float(token.get("prob", 0.0))
    top = list(token.get("top") or [])
    text = str(token.get("text", ""))
    lines = [f"{percent(prob)} for this token"]
    lines += [f"{'▶' if choice.get('id') == token.get('id') and token.get('id') is not None else ' '} "
              f"{percent(float(choice.get('prob', 0.0))):>6}  {quoted(str(choice.get('text', '')))}" for choice in top]
    if top:
        lines.insert(1, "most likely here:")
    shown, extra = esc(text), ""
    if not text:  # an end token, or the first part of a character the next token completes
        name = next((str(c.get("text", "")) for c in top if c.get("id") == token.get("id")), "")
        shown, extra = (esc(visible(name)) or "∅"), " cf-special"
    pop = "\n".join(lines)
    return (f'<span class="ct cf-b{band(prob)}{extra}" tabindex="0">{shown}'
            f'<span class="cf-pop" role="tooltip">{pop}</span></span>')


def confidence_legend() -> str:
    """The one-line key of the shading."""
    keys = " ".join(f'<span class="cf-key cf-b{i}">{esc(label)}</span>' for i, (_, _, label) in enumerate(CONFIDENCE_BANDS))
    return f"<p>Shading = the model's own probability for each token it wrote: {keys} · hover or tap a token for its top 5.</p>"


def confidence_line(stats: Mapping[str, Any]) -> str:
    """``"mean probability 78 % · 4 of 31 tokens below 50 %"``, or ``""`` without token probabilities."""
    summary = stats.get("confidence")
    if not summary:
        return ""
    return (f"mean probability **{percent(summary['mean_prob'])}** · {summary['below_half']} of {summary['tokens']} "
            "tokens below 50 %")


def confidence_html(stats: Mapping[str, Any] | None, kind: str | None = None) -> str:
    """The answer drawn token by token, shaded by probability, with the key, the summary line and what the
    shading means for this kind of model; or the one line saying why there are no probabilities.

    Every token text is escaped: an answer holding ``<script>`` shows as text.
    """
    if not stats:
        return CONFIDENCE_EMPTY
    tokens = stats.get("tokens")
    if tokens is None:
        note = stats.get("tokens_note") or "this engine returns no token probabilities"
        return f'<div class="cf"><p>ℹ️ No token probabilities: {esc(note)}.</p></div>'
    if not tokens:
        return ""
    what = CONFIDENCE_WHAT.get(kind or "", "how sure the model was of each next token")
    summary = esc(confidence_line(stats)).replace("**", "")
    return (f'<div class="cf"><p><b>How sure was it?</b> {summary}. The shading shows {esc(what)}.</p>'
            f'<div class="cf-text">{"".join(_token_span(t) for t in tokens)}</div>{confidence_legend()}</div>')


def record_confidence(record: Mapping[str, Any]) -> str:
    """A finished side's token probabilities (a run record: its stats and its model's kind), drawn."""
    return confidence_html(record.get("stats"), (record.get("description") or {}).get("kind"))


# ----- where the two answers part -----

PARTING_CSS = (
    ".pt p { margin: 4px 0; } .pt-diff { line-height: 1.8; white-space: pre-wrap; }"
    ".pt-del { background: #fecaca; text-decoration: line-through; border-radius: 3px; padding: 0 2px; }"
    ".pt-ins { background: #bbf7d0; border-radius: 3px; padding: 0 2px; }"
)


def fork_sentence(fork: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """"At token 7 the answers take different turns: left (float32) wrote “ the” …" from a divergence's ``fork``."""
    parts = []
    for side in ("left", "right"):
        token = fork[side]
        top = list(token.get("top") or [])[:2]
        tops = " and ".join(f"{quoted(str(c.get('text', '')))} {percent(float(c.get('prob', 0.0)))}" for c in top)
        parts.append(f"{esc(labels.get(side, side))} wrote {quoted(str(token.get('text', '')))} "
                     f"({percent(float(token.get('prob', 0.0)))}; its top two there: {tops})")
    return f"At token {int(fork['index']) + 1} they took different turns: " + "; ".join(parts) + "."


def parting_html(divergence: Mapping[str, Any] | None, labels: Mapping[str, str] | None = None) -> str:
    """The line under the panels (identical, or where the answers first differ) and the word diff behind a
    click; ``labels`` (side -> "float32"…) name the sides in the token sentence (left out in blind mode)."""
    if not divergence:
        return ""
    if divergence.get("identical"):
        return '<div class="pt"><p>🟰 <b>The two answers are identical</b>, word for word.</p></div>'
    word = divergence.get("word")
    if word is None:
        head = "≈ <b>The two answers have the same words</b>; only spaces or line breaks differ."
    else:
        left, right = divergence.get("left_word") or "(ended)", divergence.get("right_word") or "(ended)"
        head = (f"↔️ <b>The answers part at word {int(word)}</b>: left {quoted(left)}, right {quoted(right)}.")
    lines = [f"<p>{head}</p>"]
    if divergence.get("fork") and labels:
        lines.append(f"<p>{fork_sentence(divergence['fork'], labels)}</p>")
    runs = []
    for op, words in divergence.get("diff") or []:
        text = esc(" ".join(words))
        runs.append(text if op == "equal" else f'<span class="pt-{"del" if op == "delete" else "ins"}">{text}</span>')
    lines.append('<details><summary>Word-by-word diff (struck: left only · green: right only)</summary>'
                 f'<p class="pt-diff">{" ".join(runs)}</p></details>')
    return f'<div class="pt">{"".join(lines)}</div>'
