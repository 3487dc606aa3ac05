"""What every local ``generate`` shares, whether it answers one visitor, a group of visitors or a prompt set's
batch: the stop criterion, seeded sampling, padding, the new tokens of an output row, and the error message.

Example:
    >>> stopping = StoppingCriteriaList([StopOnEvents([stop_event])])          # doctest: +SKIP
    >>> model.generate(**call.kwargs(stopping_criteria=stopping, **sampling_kwargs(settings, model)))  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria
from transformers import generation as hf_generation

from .presets import Kind
from .settings import GenerationSettings


class StopOnEvents(StoppingCriteria):
    """Stops rows of a ``generate`` at the next token once their event is set: one flag per row.

    Args:
        events: one event for every row (a lone run, a prompt set's batch), or one per row in batch order
            (a group of visitors, each with their own Stop).
    """

    def __init__(self, events: Sequence[threading.Event]) -> None:
        self.events = list(events)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        flags = [event.is_set() for event in self.events]
        if len(flags) == 1:
            flags = flags * input_ids.shape[0]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)


class SeededSampling(LogitsProcessor):
    """Sampling with the run's own ``torch.Generator``, so that runs overlapping in other threads never
    share (and shift) one random stream.

    transformers samples with ``torch.multinomial`` on torch's global generator: two sampled runs at once
    take turns drawing from it, and neither answer follows from its seed. This processor goes last in a
    greedy ``generate`` (``do_sample=False``): it applies the sampling warpers transformers would apply
    (temperature, top-k, top-p, and min-p / typical / epsilon / eta / top-h when the model's generation
    config sets them, in transformers' order), draws one token per row from the softmax with the run's
    generator, and leaves only that token finite, so greedy decoding picks it. The draws are the ones
    ``torch.manual_seed(seed)`` then ``generate(do_sample=True)`` makes alone (checked on SmolLM2 and the
    tiny models), so the "Show code" script still reproduces the answer.

    Args:
        settings: the run's (sampled) settings: temperature, top_k, top_p, seed.
        model: its generation config supplies the other warpers.
        device: where the generator lives (the model's device).
    """

    def __init__(self, settings: GenerationSettings, model: PreTrainedModel, device: torch.device | str) -> None:
        config = model.generation_config
        warpers: list[LogitsProcessor] = []
        if settings.temperature != 1.0:
            warpers.append(hf_generation.TemperatureLogitsWarper(settings.temperature))
        top_h = getattr(config, "top_h", None)
        if top_h is not None and hasattr(hf_generation, "TopHLogitsWarper"):
            warpers.append(hf_generation.TopHLogitsWarper(top_h=top_h))
        if settings.top_k:
            warpers.append(hf_generation.TopKLogitsWarper(top_k=settings.top_k, min_tokens_to_keep=1))
        if settings.top_p < 1.0:
            warpers.append(hf_generation.TopPLogitsWarper(top_p=settings.top_p, min_tokens_to_keep=1))
        if getattr(config, "min_p", None) is not None:
            warpers.append(hf_generation.MinPLogitsWarper(min_p=config.min_p, min_tokens_to_keep=1))
        if getattr(config, "typical_p", None) is not None and config.typical_p < 1.0:
            warpers.append(hf_generation.TypicalLogitsWarper(mass=config.typical_p, min_tokens_to_keep=1))
        if getattr(config, "epsilon_cutoff", None) is not None and 0.0 < config.epsilon_cutoff < 1.0:
            warpers.append(hf_generation.EpsilonLogitsWarper(epsilon=config.epsilon_cutoff, min_tokens_to_keep=1))
        if getattr(config, "eta_cutoff", None) is not None and 0.0 < config.eta_cutoff < 1.0:
            warpers.append(hf_generation.EtaLogitsWarper(epsilon=config.eta_cutoff, min_tokens_to_keep=1, device=device))
        self.warpers = LogitsProcessorList(warpers)
        self.generator = torch.Generator(device=device).manual_seed(settings.seed)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = self.warpers(input_ids, scores)
        probs = torch.nn.functional.softmax(scores, dim=-1)
        chosen = torch.multinomial(probs, num_samples=1, generator=self.generator)
        only = torch.full_like(scores, float("-inf"))
        return only.scatter_(1, chosen, 0.0)


def sampling_kwargs(settings: GenerationSettings, model: PreTrainedModel) -> dict[str, Any]:
    """``generate`` arguments that sample with the run's own generator (:class:`SeededSampling`); ``{}`` when greedy."""
    if settings.greedy:
        return {}
    return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None,
            "logits_processor": LogitsProcessorList([SeededSampling(settings, model, model.device)])}


def pad_rows(kind: Kind, tokenizer: PreTrainedTokenizerBase, id_lists: Sequence[Sequence[int]],
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` for rows of ids, padded by the tokenizer: on the left for a decoder-only
    model (its new tokens must follow each prompt's last token), on the right for an encoder-decoder one."""
    side = "left" if kind is Kind.CAUSAL else "right"
    batch = tokenizer.pad({"input_ids": [list(ids) for ids in id_lists]}, padding=True, padding_side=side,
                          return_attention_mask=True, return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


def new_tokens(kind: Kind, row: Sequence[int], prompt_width: int, eos: set[int] | Sequence[int]) -> list[int]:
    """The tokens a ``generate`` output row added, up to and including its first end-of-sequence token.

    A decoder-only model's row starts with its (padded) prompt, ``prompt_width`` tokens; an encoder-decoder
    model's with the decoder's start token. What follows the first end-of-sequence token is padding.
    """
    generated = list(row[prompt_width:] if kind is Kind.CAUSAL else row[1:])
    end = next((i + 1 for i, token in enumerate(generated) if token in eos), len(generated))
    return generated[:end]


def error_message(exc: BaseException) -> str:
    """One line saying why generation failed (out-of-memory named as such)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in first.lower():
        return f"ran out of memory while generating ({first})"[:500]
    return f"generation failed: {type(exc).__name__}: {first}"[:500]
