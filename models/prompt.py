"""Turn the user's text into the token ids a model sees.

Causal models get the tokenizer's chat template when it has one (switchable) and
otherwise continue the plain text. Seq2seq models get the text, with an optional
task prefix, as encoder input; their decoder starts from its own start token.
Input longer than the model's context is cut with a notice, never silently.

:func:`generate_call` then turns a prepared prompt and the settings into the
arguments of ``model.generate``: the one place they are built, for streaming,
for the reproducing script and for the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import torch
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from .loader import LoadedModel
from .presets import Kind
from .settings import GenerationSettings
from .types import PreparedPrompt

FALLBACK_CONTEXT = 512  # when neither config nor tokenizer states a limit (T5's relative positions)


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
            prompt: str, settings: GenerationSettings, *, max_input_tokens: int | None = None) -> PreparedPrompt:
    """Build the model input for ``prompt`` and cap lengths to the model's context, and the input
    to ``max_input_tokens`` when given (a public server's budget, ``PublicLimits.max_input_tokens``)."""
    limit = context_limit(config, tokenizer)
    budget = max_input_tokens or limit
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
        kept = min(room, budget)
        if len(ids) > kept:
            notices.append(f"prompt cut from {len(ids)} to its last {room} tokens: with {max_new} new tokens "
                           f"it must fit the model's {limit}-token context" if kept == room else
                           f"prompt cut from {len(ids)} to its last {kept} tokens: this server reads at most {kept}")
            ids = ids[-kept:]
            text = tokenizer.decode(ids)
    else:
        text = settings.task_prefix + prompt
        ids = tokenizer(text)["input_ids"]
        full_length = len(ids)
        kept = min(limit, budget)
        if len(ids) > kept:
            reader = "the encoder" if kept == limit else "this server"
            notices.append(f"input cut from {len(ids)} to its first {kept} tokens: {reader} reads at most {kept}")
            ids = ids[: kept - 1] + ids[-1:]  # keep the closing </s>
            text = tokenizer.decode(ids, skip_special_tokens=True)
        decoder_limit = getattr(config, "max_position_embeddings", None)
        if isinstance(decoder_limit, int) and max_new > decoder_limit:
            max_new = decoder_limit
            notices.append(f"max_new_tokens lowered to {max_new}: the decoder's limit")
        start_id = getattr(config, "decoder_start_token_id", None)
        if start_id is not None:
            decoder_start = tokenizer.convert_ids_to_tokens(int(start_id))
    return PreparedPrompt(text, list(ids), max_new, used_template, decoder_start, notices, full_length)


@dataclass(frozen=True, eq=False)  # tensors have no single truth value to compare
class GenerateCall:
    """The arguments of one ``model.generate`` call, built by :func:`generate_call`.

    Args:
        input_ids: the prepared token ids, shape ``(1, n)``, on the model's device.
        attention_mask: ones like ``input_ids`` (a batch of one has no padding).
        pad_token_id: the tokenizer's pad token, else the model's end-of-sequence token, else 0.
        options: the generation options from the settings, ``max_new_tokens`` capped to the
            model's context (read-only; in the order ``settings.generate_kwargs()`` gives them).

    Example:
        >>> call = generate_call(loaded, prepared, settings)              # doctest: +SKIP
        >>> output_ids = loaded.model.generate(**call.kwargs(streamer=streamer))  # doctest: +SKIP
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pad_token_id: int
    options: Mapping[str, Any]

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``model.generate``, plus ``extra`` (a streamer, stopping criteria)."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "pad_token_id": self.pad_token_id,
                **self.options, **extra}


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The model's end-of-sequence ids (its generation config's, else the tokenizer's), in declared order."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return list(dict.fromkeys(int(eos_id) for eos_id in (eos if isinstance(eos, (list, tuple)) else [eos])))


def generate_call(loaded: LoadedModel, prepared: PreparedPrompt, settings: GenerationSettings) -> GenerateCall:
    """The ``model.generate`` arguments for ``prepared`` with ``settings`` on ``loaded``.

    Args:
        loaded: the model (its device, tokenizer and generation config decide inputs and padding).
        prepared: the model input from :func:`prepare` (its ``max_new_tokens`` is already capped).
        settings: the run's generation settings.
    """
    model, tokenizer = loaded.model, loaded.tokenizer
    input_ids = torch.tensor([prepared.input_ids], dtype=torch.long, device=model.device)
    options = settings.generate_kwargs()
    options["max_new_tokens"] = prepared.max_new_tokens
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = next(iter(eos_token_ids(model, tokenizer)), 0)
    return GenerateCall(input_ids, torch.ones_like(input_ids), int(pad), MappingProxyType(options))
