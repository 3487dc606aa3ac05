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
                "translate, summarize, answer."),
    "causal": ("**Decoder-only (causal).** There is no separate input: your prompt (wrapped in a chat template for chat "
               "models) is the beginning of the text, and the model *continues* it one token at a time."),
}


def esc(text: Any) -> str:
    """HTML-escape any value for Markdown output."""
    return html.escape(str(text), quote=True)


def card_markdown(description: Mapping[str, Any] | None = None, *, architecture: Mapping[str, Any] | None = None,
                  error: str | None = None, note: str | None = None) -> str:
    """The model card line: Auto class -> concrete class, architecture, size, dtype, device.

    Shows the full description of a loaded model, or what the config says before loading,
    or an error.
    """
    if error:
        return f"⚠️ {esc(error)}"
    parts: list[str] = []
    if description:
        d = description
        quant = " · 8-bit" if d.get("quantization", "none") != "none" else ""
        parts.append(f"`{esc(d['auto_class'])} -> {esc(d['resolved_class'])}` · {esc(d['architecture'])} · "
                     f"{esc(d['params_text'])} params · {esc(d['dtype'])}{quant} · {esc(d['device'])} · "
                     f"{d['memory_bytes'] / 2**20:.1f} MiB · from {esc(d['origin'])}")
    elif architecture:
        a = architecture
        parts.append(f"`{esc(a['auto_class'])} -> {esc(a['resolved_class'])}` · {esc(a['architecture'])} · "
                     f"model_type `{esc(a['model_type'])}` · not loaded yet")
    if note:
        parts.append(f"<br>ℹ️ {esc(note)}")
    return "".join(parts) or "Pick a model."


def stats_markdown(stats: Mapping[str, Any] | None, *, status: str | None = None) -> str:
    """The stats line under an answer, or a status / error line while there are no stats."""
    if status:
        return esc(status)
    if not stats:
        return ""
    ttft = stats.get("time_to_first_token")
    tps = stats.get("tokens_per_second")
    line = (f"first token **{ttft:.2f} s**" if ttft is not None else "no token") + " · "
    line += (f"**{tps:.1f}** tokens/s" if tps is not None else "– tokens/s") + " · "
    line += f"{stats['input_tokens']} in → {stats['output_tokens']} out · {stats['total_seconds']:.2f} s · finish: **{esc(stats['finish_reason'])}**"
    for notice in stats.get("notices", []):
        line += f"<br>ℹ️ {esc(notice)}"
    if stats.get("error"):
        line += f"<br>⚠️ {esc(stats['error'])}"
    return line


def error_markdown(message: str) -> str:
    """A readable error line for a panel."""
    return f"⚠️ {esc(message)}"
