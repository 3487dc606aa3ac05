"""The one registry of curated models.

A preset's ``kind`` decides which Auto class loads it; nothing in the code
branches on a model's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Kind(str, Enum):
    """What a model does with its input."""

    SEQ2SEQ = "seq2seq"  # encoder-decoder: reads the input, writes a new output
    CAUSAL = "causal"  # decoder-only: continues the prompt

    @property
    def auto_class_name(self) -> str:
        """Name of the transformers Auto class that loads this kind."""
        return "AutoModelForSeq2SeqLM" if self is Kind.SEQ2SEQ else "AutoModelForCausalLM"

    @property
    def architecture(self) -> str:
        """Plain-language architecture name."""
        return "encoder-decoder" if self is Kind.SEQ2SEQ else "decoder-only"


@dataclass(frozen=True)
class Preset:
    """A curated model.

    Args:
        id: hub id, e.g. ``"google/flan-t5-small"``.
        kind: seq2seq or causal.
        label: short name shown in the selector.
        params: parameter count, as text (``"77M"``).
        memory: approximate memory needed in full precision on CPU, as text.
        defaults: generation settings that suit it (merged over the global defaults).
    """

    id: str
    kind: Kind
    label: str
    params: str
    memory: str
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def choice_label(self) -> str:
        """Label for a dropdown: name, size and memory."""
        return f"{self.label} · {self.params} · ~{self.memory}"


PRESETS: tuple[Preset, ...] = (
    # instruction-tuned T5: answers, translates, summarizes short inputs
    Preset("google/flan-t5-small", Kind.SEQ2SEQ, "FLAN-T5 small", "77M", "0.3 GB", {"max_new_tokens": 128}),
    Preset("google/flan-t5-base", Kind.SEQ2SEQ, "FLAN-T5 base", "248M", "1 GB", {"max_new_tokens": 128}),
    Preset("google/flan-t5-large", Kind.SEQ2SEQ, "FLAN-T5 large", "783M", "3.2 GB", {"max_new_tokens": 128}),
    # summarizes news-style text; ignores instructions
    Preset("sshleifer/distilbart-cnn-12-6", Kind.SEQ2SEQ, "DistilBART CNN (summarizer)", "306M", "1.2 GB",
           {"max_new_tokens": 142, "no_repeat_ngram_size": 3}),
    # translates English text to German; nothing else
    Preset("Helsinki-NLP/opus-mt-en-de", Kind.SEQ2SEQ, "OPUS-MT English→German", "74M", "0.3 GB", {"max_new_tokens": 256}),
    # small chat models with a chat template: follow simple instructions
    Preset("HuggingFaceTB/SmolLM2-135M-Instruct", Kind.CAUSAL, "SmolLM2 135M Instruct", "135M", "0.6 GB",
           {"max_new_tokens": 128, "repetition_penalty": 1.1}),
    Preset("HuggingFaceTB/SmolLM2-360M-Instruct", Kind.CAUSAL, "SmolLM2 360M Instruct", "362M", "1.5 GB",
           {"max_new_tokens": 128, "repetition_penalty": 1.1}),
    Preset("Qwen/Qwen2.5-0.5B-Instruct", Kind.CAUSAL, "Qwen2.5 0.5B Instruct", "494M", "2 GB", {"max_new_tokens": 128}),
    # base models: continue text, do not follow instructions
    Preset("openai-community/gpt2", Kind.CAUSAL, "GPT-2", "124M", "0.5 GB", {"max_new_tokens": 64, "repetition_penalty": 1.2}),
    Preset("distilbert/distilgpt2", Kind.CAUSAL, "DistilGPT-2", "82M", "0.35 GB", {"max_new_tokens": 64, "repetition_penalty": 1.2}),
)

DEFAULT_SEQ2SEQ = "google/flan-t5-small"
DEFAULT_CAUSAL = "HuggingFaceTB/SmolLM2-135M-Instruct"

_BY_ID = {p.id: p for p in PRESETS}


def get_preset(model_id: str) -> Preset | None:
    """The preset with this hub id, or ``None``."""
    return _BY_ID.get(model_id)
