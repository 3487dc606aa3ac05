"""Turn the user's text into the token ids a model sees.

Causal models get the tokenizer's chat template when it has one (switchable) and
otherwise continue the plain text. Seq2seq models get the text, with an optional
task prefix, as encoder input; their decoder starts from its own start token.
Input longer than the model's context is cut with a notice, never silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PretrainedConfig, PreTrainedTokenizerBase

from .presets import Kind
from .settings import GenerationSettings

FALLBACK_CONTEXT = 512  # when neither config nor tokenizer states a limit (T5's relative positions)


@dataclass
class PreparedPrompt:
    """What goes into the model.

    Args:
        text: the text the model really sees (after template or prefix).
        input_ids: its token ids (batch of one, as a list).
        max_new_tokens: tokens allowed after capping to the model's limit.
        used_chat_template: whether the chat template wrapped the prompt.
        decoder_start: seq2seq only: the token the decoder starts from.
        notices: human-readable notes (truncation, caps).
        full_length: tokens before any cut (``len(input_ids)`` when nothing was cut).
    """

    text: str
    input_ids: list[int]
    max_new_tokens: int
    used_chat_template: bool = False
    decoder_start: str | None = None
    notices: list[str] = field(default_factory=list)
    full_length: int = 0

    @property
    def truncated(self) -> bool:
        """True when the input was cut to fit the model's context."""
        return self.full_length > len(self.input_ids)


def context_limit(config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> int:
    """The most tokens the model can attend to (input + output for causal models)."""
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return FALLBACK_CONTEXT


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer ships a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def prepare(kind: Kind, tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig,
            prompt: str, settings: GenerationSettings) -> PreparedPrompt:
    """Build the model input for ``prompt`` and cap lengths to the model's context."""
    limit = context_limit(config, tokenizer)
    notices: list[str] = []
    max_new = settings.max_new_tokens
    used_template = False
    decoder_start = None
    if kind is Kind.CAUSAL:
        if settings.use_chat_template and has_chat_template(tokenizer):
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            used_template = True
        else:
            text = prompt
            ids = tokenizer(text)["input_ids"]
        full_length = len(ids)
        if max_new >= limit:
            max_new = max(1, limit // 2)
            notices.append(f"max_new_tokens lowered to {max_new}: the model's context is {limit} tokens")
        room = limit - max_new
        if len(ids) > room:
            notices.append(f"prompt cut from {len(ids)} to its last {room} tokens: with {max_new} new tokens "
                           f"it must fit the model's {limit}-token context")
            ids = ids[-room:]
            text = tokenizer.decode(ids)
    else:
        text = settings.task_prefix + prompt
        ids = tokenizer(text)["input_ids"]
        full_length = len(ids)
        if len(ids) > limit:
            notices.append(f"input cut from {len(ids)} to its first {limit} tokens: the encoder reads at most {limit}")
            ids = ids[: limit - 1] + ids[-1:]  # keep the closing </s>
            text = tokenizer.decode(ids, skip_special_tokens=True)
        decoder_limit = getattr(config, "max_position_embeddings", None)
        if isinstance(decoder_limit, int) and max_new > decoder_limit:
            max_new = decoder_limit
            notices.append(f"max_new_tokens lowered to {max_new}: the decoder's limit")
        start_id = getattr(config, "decoder_start_token_id", None)
        if start_id is not None:
            decoder_start = tokenizer.convert_ids_to_tokens(int(start_id))
    return PreparedPrompt(text, list(ids), max_new, used_template, decoder_start, notices, full_length)
