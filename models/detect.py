"""Decide from a config alone (no weights) whether a model is seq2seq, causal or neither.

The Auto classes are lookup tables from config class to model class:
``AutoModelForSeq2SeqLM`` on a ``T5Config`` *is* ``T5ForConditionalGeneration``.
This module does that lookup, and reproduces the refusal a user gets when the
wrong Auto class is tried, by really trying it on a weightless ("meta") model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING,
    MODEL_FOR_MASKED_LM_MAPPING,
    MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING,
)

from .presets import Kind

AUTO_CLASSES = {Kind.SEQ2SEQ: AutoModelForSeq2SeqLM, Kind.CAUSAL: AutoModelForCausalLM}

# Building models is not thread-safe in transformers 5 / accelerate: empty-weight
# initialisation patches torch globally, so two threads building at once can see
# each other's meta tensors ("Cannot copy out of meta tensor"). Every model
# construction in this package holds this lock; generation does not.
MODEL_BUILD_LOCK = threading.RLock()


class UnsupportedModelError(ValueError):
    """The model cannot generate text in this playground (e.g. an encoder-only BERT)."""


@dataclass(frozen=True)
class Architecture:
    """What the config says about a model.

    Args:
        kind: seq2seq or causal.
        model_type: the config's ``model_type`` (``"t5"``, ``"gpt2"``...).
        auto_class: name of the Auto class that loads it.
        resolved_class: the concrete class the Auto class resolves to.
        declared: the ``architectures`` listed in the checkpoint's config.
    """

    kind: Kind
    model_type: str
    auto_class: str
    resolved_class: str
    declared: tuple[str, ...]


def lookup_class(mapping: Mapping[type[PretrainedConfig], type], config: PretrainedConfig) -> type | None:
    """The model class ``mapping`` (an Auto class's table) gives for ``config``, or ``None``."""
    try:
        return mapping[type(config)]
    except KeyError:
        return None


def detect(config: PretrainedConfig) -> Architecture:
    """Classify ``config`` as seq2seq or causal, or raise :class:`UnsupportedModelError`.

    Encoder-decoder configs that ``AutoModelForSeq2SeqLM`` knows are seq2seq.
    Decoder configs that ``AutoModelForCausalLM`` knows are causal, unless the
    checkpoint declares only encoder heads (BERT is in the causal table as
    ``BertLMHeadModel``, but a ``BertForMaskedLM`` checkpoint fills in blanks and
    was never trained to continue text).
    """
    declared = tuple(getattr(config, "architectures", None) or ())
    model_type = getattr(config, "model_type", "unknown") or "unknown"
    seq2seq_cls = lookup_class(MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING, config)
    causal_cls = lookup_class(MODEL_FOR_CAUSAL_LM_MAPPING, config)
    if getattr(config, "is_encoder_decoder", False) and seq2seq_cls is not None:
        return Architecture(Kind.SEQ2SEQ, model_type, "AutoModelForSeq2SeqLM", seq2seq_cls.__name__, declared)
    if seq2seq_cls is not None and causal_cls is None:
        return Architecture(Kind.SEQ2SEQ, model_type, "AutoModelForSeq2SeqLM", seq2seq_cls.__name__, declared)
    encoder_heads = ("ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "Model")
    declares_decoder = any(a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in declared)
    encoder_only = declared and not declares_decoder and all(a.endswith(encoder_heads) for a in declared)
    if causal_cls is not None and not (encoder_only and lookup_class(MODEL_FOR_MASKED_LM_MAPPING, config) is not None):
        return Architecture(Kind.CAUSAL, model_type, "AutoModelForCausalLM", causal_cls.__name__, declared)
    what = f"'{model_type}'"
    if declared:
        what += f" ({', '.join(declared)})"
    if lookup_class(MODEL_FOR_MASKED_LM_MAPPING, config) is not None:
        raise UnsupportedModelError(
            f"{what} is an encoder-only masked language model: it fills in blanks inside a text "
            "but has no decoder to write new text, so it cannot generate here. "
            "Pick a seq2seq (encoder-decoder) or causal (decoder-only) model."
        )
    raise UnsupportedModelError(
        f"{what} is neither a seq2seq (encoder-decoder) nor a causal (decoder-only) language model "
        "that transformers can generate text with."
    )


def wrong_class_refusal(config: PretrainedConfig, kind: Kind) -> str:
    """The message transformers gives when ``config`` is loaded with the *other* Auto class.

    Produced by really calling ``from_config`` on the meta device (no memory, no
    weights), so it is transformers' own words, shortened to its first sentence.
    Returns ``""`` if the other class accepts the config (a few models, e.g. BART,
    have both a seq2seq and a causal head).
    """
    other = AUTO_CLASSES[Kind.CAUSAL if kind is Kind.SEQ2SEQ else Kind.SEQ2SEQ]
    try:
        with MODEL_BUILD_LOCK, torch.device("meta"):
            model = other.from_config(config)
    except ValueError as exc:
        return str(exc).split("\n")[0]
    except Exception as exc:  # noqa: BLE001 - any other refusal is shown as is
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return (
        f"{other.__name__} accepts this config too and resolves to {type(model).__name__}: "
        "that class uses only part of the model (e.g. the decoder alone)."
    )
