"""Explain a model to a person: which tokens enter it, and which Python class runs it.

Two questions a newcomer asks, answered from the model's own tokenizer and config:

* :func:`prompt_view`: how does my prompt enter the model? Every token the model
  receives, tagged with where it came from (the chat template, the task prefix,
  the prompt itself, or a special token the tokenizer adds), plus the token the
  seq2seq decoder starts from. Built from the run's :func:`models.prompt.prepare`
  result, so it shows exactly what generation uses, truncation included.
* :func:`class_report`: which Auto class loads it, which concrete class that
  resolves to, and what the *other* Auto class says when tried (transformers' own
  message, from :func:`models.detect.wrong_class_refusal`).

Both return plain dataclasses with ``to_dict()``; rendering is the UI's job.

Example:
    >>> prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, "Hi", settings)  # doctest: +SKIP
    >>> view = prompt_view(loaded, prepared, settings, "Hi")                                    # doctest: +SKIP
    >>> [t.role for t in view.tokens][:2]                                                       # doctest: +SKIP
    ['template', 'template']
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from transformers import PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING

from .detect import detect, lookup_class, wrong_class_refusal
from .loader import LoadedModel, files_folder, load_config
from .presets import Kind
from .prompt import has_chat_template
from .types import PreparedPrompt
from .settings import GenerationSettings
from .sources import ModelSource

#: Where a token came from. ``text`` is used when the origin cannot be told apart
#: (a slow tokenizer without character offsets, or a template that rewrites the prompt).
ROLES = ("template", "prefix", "prompt", "added", "start", "text")
_SENTINEL = "\u2063PLAYGROUND-PROMPT\u2063"  # stands in for the prompt when locating it inside the template


@dataclass(frozen=True)
class Token:
    """One token the model receives.

    Args:
        id: its id in the vocabulary.
        token: the vocabulary entry (``"▁capital"``, ``"Ġis"``, ``"<|im_start|>"``).
        text: the characters of the input it covers (the entry itself for added special tokens).
        role: one of :data:`ROLES`.
    """

    id: int
    token: str
    text: str
    role: str


@dataclass
class PromptView:
    """How a prompt enters a model, token by token.

    Args:
        kind: ``"seq2seq"`` or ``"causal"``.
        tokens: seq2seq: the encoder input; causal: the whole sequence the model continues.
        decoder: seq2seq: the decoder's starting token(s); causal: empty (there is no separate decoder).
        text: the text the model sees (after chat template or task prefix, after truncation).
        has_chat_template: causal: whether the tokenizer ships a chat template.
        used_chat_template: causal: whether it wrapped the prompt this time.
        wrapper: the template's text around the prompt, with the prompt shown as ``…``; ``None`` without a template.
        added_by_template: tokens the chat template added (causal), else 0.
        added_by_prefix: tokens the task prefix added (seq2seq), else 0.
        prompt_tokens: tokens of the prompt itself.
        special_tokens: special tokens the tokenizer added on its own (BOS, ``</s>``).
        max_new_tokens: new tokens allowed after capping to the model's context.
        notices: truncation and capping notes from :func:`models.prompt.prepare`.
    """

    kind: str
    tokens: list[Token]
    decoder: list[Token]
    text: str
    has_chat_template: bool
    used_chat_template: bool
    wrapper: str | None
    added_by_template: int
    added_by_prefix: int
    prompt_tokens: int
    special_tokens: int
    max_new_tokens: int
    notices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tokens as dicts)."""
        return asdict(self)


def _span_in_template(tokenizer: PreTrainedTokenizerBase, prompt: str, text: str) -> tuple[int, int] | None:
    """Where ``prompt`` sits in the chat-templated ``text``, or ``None`` if the template rewrote it.

    Renders the template around a sentinel: searching for the prompt itself could hit
    a system prompt or ``assistant`` that happens to contain the same words.
    """
    try:
        marked = tokenizer.apply_chat_template([{"role": "user", "content": _SENTINEL}], tokenize=False,
                                               add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that refuses the sentinel: fall back to searching
        marked = ""
    at = marked.find(_SENTINEL) if isinstance(marked, str) else -1
    if at >= 0:
        before, after = marked[:at], marked[at + len(_SENTINEL):]
        if before + prompt + after == text:
            return len(before), len(before) + len(prompt)
    for needle in (prompt, prompt.strip()):
        found = text.rfind(needle) if needle else -1
        if found >= 0:
            return found, found + len(needle)
    return None


def _tag(tokenizer: PreTrainedTokenizerBase, text: str, spans: dict[str, tuple[int, int]], outside: str,
         add_special_tokens: bool) -> list[Token] | None:
    """Tokenize ``text`` and tag each token by the span (``role -> (start, end)``) it falls in.

    Tokens in no span get ``outside``; tokens the tokenizer adds itself get ``added``.
    Returns ``None`` when the tokenizer gives no character offsets (slow tokenizers).
    """
    if not getattr(tokenizer, "is_fast", False):
        return None
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True, return_special_tokens_mask=True)
    pieces = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    out: list[Token] = []
    for tid, piece, (start, end), added in zip(enc["input_ids"], pieces, enc["offset_mapping"], enc["special_tokens_mask"]):
        if added:
            out.append(Token(int(tid), str(piece), str(piece), "added"))
            continue
        covered = text[start:end]
        # A token like "▁What" covers the space before the word too: it belongs where its
        # first visible character is (the prompt, not the prefix that ended with the space).
        at = start + (len(covered) - len(covered.lstrip())) if covered.strip() else start
        role = next((name for name, (lo, hi) in spans.items() if lo <= at < hi), outside)
        out.append(Token(int(tid), str(piece), covered or str(piece), role))
    return out


def _plain(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> list[Token]:
    """Tokens without origins (fallback): special ids are ``added``, the rest ``text``."""
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return [Token(int(token_id), str(piece), str(piece) if token_id in special else tokenizer.decode([token_id]),
                  "added" if token_id in special else "text")
            for token_id, piece in zip(ids, pieces)]


def _causal_tokens(tokenizer: PreTrainedTokenizerBase, prepared: PreparedPrompt,
                   prompt: str) -> tuple[list[Token] | None, str | None]:
    """A causal model's tagged tokens (``None`` when they cannot be tagged) and the template around the prompt."""
    wrapper = None
    if prepared.used_chat_template:
        full = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        span = _span_in_template(tokenizer, prompt, full)
        if span is not None:
            wrapper = full[: span[0]] + "…" + full[span[1]:]
        tokens = _tag(tokenizer, full, {"prompt": span} if span else {}, "template" if span else "text", False)
    else:
        tokens = _tag(tokenizer, prompt, {"prompt": (0, len(prompt))}, "prompt", True)
    kept = len(prepared.input_ids)
    if tokens is not None:
        tokens = tokens[-kept:] if len(tokens) >= kept else None  # prepare keeps the last tokens when cutting
    return tokens, wrapper


def _seq2seq_tokens(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig, prepared: PreparedPrompt,
                    settings: GenerationSettings, prompt: str) -> tuple[list[Token] | None, list[Token]]:
    """A seq2seq model's tagged encoder tokens (``None`` when they cannot be tagged) and its decoder start."""
    full = settings.task_prefix + prompt
    cut = len(settings.task_prefix)
    tokens = _tag(tokenizer, full, {"prefix": (0, cut), "prompt": (cut, len(full))}, "prompt", True)
    kept = len(prepared.input_ids)
    if tokens is not None and len(tokens) > kept:
        tokens = tokens[: kept - 1] + tokens[-1:]  # prepare keeps the first tokens and the closing </s>
    decoder: list[Token] = []
    start_id = getattr(config, "decoder_start_token_id", None)
    if start_id is not None:
        piece = str(tokenizer.convert_ids_to_tokens(int(start_id)))
        decoder = [Token(int(start_id), piece, piece, "start")]
    return tokens, decoder


def prompt_view(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings, prompt: str) -> PromptView:
    """Every token ``prompt`` became for this model, tagged with where it came from.

    Args:
        loaded: the model (its kind, tokenizer and config: context length, decoder start token).
        prepared: the model input the run uses, from :func:`models.prompt.prepare`.
        settings: generation settings (chat template switch, task prefix).
        prompt: the user's validated text (the one ``prepared`` was built from).

    The token ids always equal ``prepared.input_ids``, what generation feeds the model; when
    they cannot be tagged (slow tokenizer), the tokens are shown with role ``text``.
    """
    kind, tokenizer = loaded.kind, loaded.tokenizer
    wrapper = None
    decoder: list[Token] = []
    if kind is Kind.CAUSAL:
        tokens, wrapper = _causal_tokens(tokenizer, prepared, prompt)
    else:
        tokens, decoder = _seq2seq_tokens(tokenizer, loaded.model.config, prepared, settings, prompt)
    if tokens is None or [t.id for t in tokens] != list(prepared.input_ids):
        tokens = _plain(tokenizer, list(prepared.input_ids))
    count = {role: sum(1 for t in tokens if t.role == role) for role in ROLES}
    return PromptView(
        kind=kind.value, tokens=tokens, decoder=decoder, text=prepared.text,
        has_chat_template=kind is Kind.CAUSAL and has_chat_template(tokenizer), used_chat_template=prepared.used_chat_template,
        wrapper=wrapper, added_by_template=count["template"], added_by_prefix=count["prefix"], prompt_tokens=count["prompt"],
        special_tokens=count["added"], max_new_tokens=prepared.max_new_tokens, notices=list(prepared.notices),
    )


@dataclass(frozen=True)
class ClassReport:
    """Which Python class runs a model, and what the other Auto class makes of it.

    Args:
        kind: ``"seq2seq"`` or ``"causal"``.
        model_type: the config's ``model_type``.
        declared: the ``architectures`` the checkpoint's config lists.
        auto_class: the Auto class the playground loads it with.
        resolved_class: the concrete class that Auto class resolves to.
        other_auto_class: the Auto class of the other kind.
        other_accepts: whether the other Auto class builds a model from this config at all.
        other_result: transformers' refusal message, or which class the other Auto class would build.
    """

    kind: str
    model_type: str
    declared: tuple[str, ...]
    auto_class: str
    resolved_class: str
    other_auto_class: str
    other_accepts: bool
    other_result: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def class_report_for_config(config: PretrainedConfig) -> ClassReport:
    """Answer the class question for ``config`` (raises :class:`~models.detect.UnsupportedModelError`)."""
    arch = detect(config)
    other = Kind.CAUSAL if arch.kind is Kind.SEQ2SEQ else Kind.SEQ2SEQ
    mapping = MODEL_FOR_CAUSAL_LM_MAPPING if other is Kind.CAUSAL else MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING
    return ClassReport(arch.kind.value, arch.model_type, arch.declared, arch.auto_class, arch.resolved_class,
                       other.auto_class_name, lookup_class(mapping, config) is not None, wrong_class_refusal(config, arch.kind))


def ships_chat_template(source: ModelSource) -> bool | None:
    """Whether ``source``'s tokenizer has a chat template, read from its files on this machine without loading
    it (``chat_template.jinja``, ``chat_template.json`` or the ``chat_template`` of ``tokenizer_config.json``);
    ``None`` when its files are not here to read (a GGUF file not yet converted, a hub model not cached)."""
    folder = files_folder(source)
    if folder is None or not folder.is_dir():
        return None
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):  # not here (only the config was fetched) or unreadable: not known
        return None
    return bool(tokenizer_config.get("chat_template")) if isinstance(tokenizer_config, dict) else False


@functools.lru_cache(maxsize=64)
def class_report(source: ModelSource) -> ClassReport:
    """:func:`class_report_for_config` for a source, reading only its config (cached per source).

    Raises :class:`~models.loader.ModelLoadError` or :class:`~models.detect.UnsupportedModelError`
    (failures are not cached).
    """
    return class_report_for_config(load_config(source))
