"""13. One answer on CPU: a lone greedy answer's decoding speed, option by option, against the machine's memory
bandwidth and (when installed) llama.cpp.

For each side's model (with ``--real`` offline: the SmolLM2-135M-Instruct GGUF, and a seq2seq model with
flan-t5-small's shape and random weights, since no pretrained one can be had offline) in float32 and bfloat16,
these ways of running the app's own ``model.generate`` call (same input and arguments, the app's
:class:`~models.generation.StopOnEvents`, no streamer, in a fresh thread under ``torch.inference_mode``) alternate
run by run (:data:`OPTIONS`):

- ``current``: the call as the app makes it (``attn_implementation="sdpa"``, the dynamic KV cache, torch's
  default thread count);
- ``eager``: the same with ``attn_implementation="eager"`` (switched on the loaded model for the run);
- ``static``: ``cache_implementation="static"``;
- ``compiled``: the static cache plus transformers' own compile of the decoding step
  (``generate(..., cache_implementation="static", compile_config=CompileConfig(...))``, with
  ``_compile_all_devices`` set, as ``_valid_auto_compile_criteria`` asks on a CPU); its first call, which compiles,
  is timed on its own and left out of the repetitions;
- ``1 thread``: the current call with ``torch.set_num_threads(1)`` (the default is one per core).

Figures: decoding tokens/s (1 / the run's median step, prefill left out: a pause of the whole machine in one step
moves it far less than the wall time), each option's ratio to ``current`` (the median of the repetitions' pairs),
the fraction of the bandwidth limit (a large ``torch`` copy gives bytes/s; the limit is that over the bytes of
weights one token reads), and whether the option's greedy tokens equal ``current``'s. The CPU's ``avx512_bf16`` /
``amx`` flags say whether bfloat16 is computed natively. llama.cpp runs the same GGUF when ``llama_cpp`` can be
imported, else the section says it is not installed.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from models import Kind, LoadedModel, ModelSource, Precision, load_model
from models.loader import cpu_has_native_bf16, precision_refusal
from models.prompt import GenerateCall, generate_call

from ..context import SIDES, Context
from ..figures import figure, ratio, secs, tps
from ..machine import load_average
from ..runs import order, prepared
from .base import Table, row
from .confidence import Answer, _generate

TARGET_SPEEDUP = 1.5  # a lone SmolLM2 answer, auto precision, against today's path
TARGET_BANDWIDTH = 0.6  # of the bandwidth limit, in bfloat16 on a CPU that computes it natively
TARGET = (f"a lone causal answer ≥ {TARGET_SPEEDUP}× today's tokens/s in the app's auto precision, and ≥ "
          f"{100 * TARGET_BANDWIDTH:.0f} % of the bandwidth limit in bfloat16 where the CPU computes it natively")
PRECISIONS = (Precision.FLOAT32, Precision.BFLOAT16)
OPTIONS = ("current", "eager", "static", "compiled", "1 thread")
COPY_BYTES = 512 * 2**20  # the bandwidth probe's tensor: far larger than any cache
CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
#: flan-t5-small's shape (its config.json), for the seq2seq side when no trained seq2seq model is at hand
FLAN_T5_SMALL = dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_decoder_layers=8, num_heads=6,
                     feed_forward_proj="gated-gelu", is_gated_act=True, dense_act_fn="gelu_new",
                     tie_word_embeddings=False, relative_attention_num_buckets=32, relative_attention_max_distance=128)
FLAN_NAME = "flan-t5-small-shape"


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` the CPU lists (all ``False`` where ``/proc/cpuinfo`` cannot be read)."""
    try:
        text = path.read_text()
    except OSError:
        return {flag: False for flag in CPU_FLAGS}
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {flag: flag in flags for flag in CPU_FLAGS}


def flan_shaped(ctx: Context) -> ModelSource:
    """A seq2seq model with flan-t5-small's shape and random weights (``build_tiny``'s tokenizer and marker of an
    untrained model; only the end-of-sequence token suppressed, so every answer runs to its full length), built
    under ``ctx.work`` once and registered."""
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    from models.tiny import build_tiny

    folder = ctx.work / "models" / FLAN_NAME
    if not (folder / "model.safetensors").is_file():
        build_tiny("t5", folder, never_stop=True)
        config = T5Config.from_pretrained(folder)
        for key, value in FLAN_T5_SMALL.items():
            setattr(config, key, value)
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config)
        model.generation_config = GenerationConfig.from_pretrained(folder)
        model.generation_config.suppress_tokens = [config.eos_token_id]
        model.save_pretrained(folder)
    return next(s for s in ctx.registry.register_dir(folder) if s.name == FLAN_NAME)


def copy_bandwidth(n_bytes: int = COPY_BYTES, reps: int = 5) -> float:
    """Bytes/s of a large ``torch`` copy (each byte read once and written once: ``2 × n_bytes`` moved), the best
    of ``reps``: the memory bandwidth a decoding step that streams every weight can hope for."""
    src = torch.ones(n_bytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch of the pages
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - started)
    return 2 * n_bytes / best


def bytes_per_token(loaded: LoadedModel) -> int:
    """Bytes of weights one decoding step reads: every parameter once, an encoder-decoder model's encoder left out
    (it runs once, at prefill), and embedding tables left out unless the output head is one (a lookup reads one row;
    a tied embedding is the head and is read whole)."""
    model = loaded.model
    head = model.get_output_embeddings()
    head_weight = getattr(head, "weight", None)
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)} - {id(head_weight)}
    total = 0
    for name, param in model.named_parameters():  # named_parameters lists a tied weight once
        if (loaded.kind is Kind.SEQ2SEQ and name.startswith("encoder.")) or id(param) in lookups:
            continue
        total += param.numel() * param.element_size()
    return total


def compile_config() -> Any:
    """transformers' ``CompileConfig`` for the decoding step, with the flag its generate asks for on a CPU."""
    from transformers import CompileConfig

    config = CompileConfig()
    config._compile_all_devices = True
    return config


@dataclass
class Run:
    """One option's way of running the call: extra ``generate`` arguments, and what to set around it."""

    extra: dict[str, Any] = field(default_factory=dict)
    attn: str | None = None  # attn_implementation for the run
    threads: int | None = None  # torch.set_num_threads for the run


def runs(cores: int) -> dict[str, Run]:
    """Each option of :data:`OPTIONS` (``compiled`` shares one ``CompileConfig``, so it compiles once)."""
    return {"current": Run(), "eager": Run(attn="eager"), "static": Run({"cache_implementation": "static"}),
            "compiled": Run({"cache_implementation": "static", "compile_config": compile_config()}),
            "1 thread": Run(threads=1 if cores > 1 else None)}


def run_option(loaded: LoadedModel, call: GenerateCall, option: Run) -> Answer:
    """One ``generate`` of ``call`` with ``option`` set around it, then the model as it was."""
    model = loaded.model
    before_attn, before_threads = model.config._attn_implementation, torch.get_num_threads()
    if option.attn:
        model.set_attn_implementation(option.attn)
    if option.threads:
        torch.set_num_threads(option.threads)
    try:
        return _generate(loaded, GenerateCall(call.input_ids, call.attention_mask, call.pad_token_id,
                                              {**call.options, **option.extra}), None)
    finally:
        torch.set_num_threads(before_threads)
        if option.attn:
            model.set_attn_implementation(before_attn)


@dataclass
class ModelSamples:
    """Every run of one model in one precision; repetition ``i`` of each option ran next to the others' ``i``."""

    name: str
    kind: str
    real: bool
    precision: str
    dtype: str = "?"
    params: int = 0
    weight_bytes: int = 0  # read per decoding step (:func:`bytes_per_token`)
    runs: dict[str, list[Answer]] = field(default_factory=lambda: {o: [] for o in OPTIONS})
    compile_seconds: float | None = None  # the compiled option's first call, less a current run's time
    failed: dict[str, str] = field(default_factory=dict)  # option -> why it could not run
    load_average: list[float] | None = None
    unavailable: str | None = None


@dataclass
class Samples:
    max_new_tokens: int
    reps: int
    cores: int
    threads: int
    flags: dict[str, bool]
    native_bf16: bool
    bandwidth: float  # bytes/s
    copy_bytes: int  # the probe's tensor
    models: list[ModelSamples] = field(default_factory=list)
    llama_cpp: dict[str, Any] = field(default_factory=dict)
    load_average_start: list[float] | None = None
    load_average_end: list[float] | None = None


def measure_model(ctx: Context, source: ModelSource, real: bool, kind: Kind, precision: Precision,
                  options: dict[str, Run]) -> ModelSamples:
    """Every option on one model in one precision: the compile first (timed), then ``ctx.reps`` repetitions in turns."""
    samples = ModelSamples(source.name, kind.value, real, precision.value)
    loaded = load_model(source, precision=precision)
    samples.dtype, samples.params = loaded.description.dtype, loaded.description.params
    samples.weight_bytes = bytes_per_token(loaded)
    settings = ctx.settings()
    call = generate_call(loaded, prepared(loaded, ctx.prompt, settings), settings)
    label = f"13 one answer: {source.name} {precision.value}"
    working = dict(options)
    current = run_option(loaded, call, working["current"])  # warm-up
    for name, option in list(working.items()):
        if name == "current":
            continue
        ctx.log(f"{label}: first {name} run" + (" (compiles)" if name == "compiled" else ""))
        started = time.perf_counter()
        try:
            run_option(loaded, call, option)
        except Exception as exc:  # noqa: BLE001 - an option that cannot run here is reported, the others go on
            samples.failed[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]
            del working[name]
            continue
        if name == "compiled":
            samples.compile_seconds = max(0.0, time.perf_counter() - started - current.seconds)
    samples.load_average = load_average()
    for rep in range(ctx.reps):
        ctx.rep_log(label, rep)
        for name in order(rep, tuple(working)):
            samples.runs[name].append(run_option(loaded, call, working[name]))
    del loaded, call
    gc.collect()
    return samples


def llama_cpp_reference(ctx: Context, cores: int) -> dict[str, Any]:
    """The causal side's GGUF in-process with ``llama_cpp`` (greedy, the same number of new tokens): its decoding
    tokens/s, median of ``ctx.reps``; ``{"installed": False}`` when ``llama_cpp`` cannot be imported."""
    try:
        import llama_cpp  # type: ignore[import-not-found]
    except ImportError:
        return {"installed": False, "why": "llama-cpp-python is not installed (it builds llama.cpp from source: "
                                           "about an hour on this machine)"}
    source = ctx.subjects[Kind.CAUSAL].source
    if not source.gguf_file:
        return {"installed": True, "why": f"{source.name} is not a GGUF model"}
    llm = llama_cpp.Llama(model_path=str(Path(source.path) / source.gguf_file), n_threads=cores, verbose=False)
    prompt = [{"role": "user", "content": ctx.prompt}]
    rates: list[float] = []
    for rep in range(ctx.reps + 1):
        started = time.perf_counter()
        out = llm.create_chat_completion(prompt, max_tokens=ctx.max_new_tokens, temperature=0.0, top_k=1)
        tokens = out["usage"]["completion_tokens"]
        if rep:  # the first one warms up
            rates.append(tokens / (time.perf_counter() - started))
    return {"installed": True, "version": getattr(llama_cpp, "__version__", "?"),
            "tokens_per_second": figure(rates, "tokens/s"), "note": "whole call (prefill included), greedy"}


def measure(ctx: Context) -> Samples:
    cores = os.cpu_count() or 1
    flags = cpu_flags()
    probe = COPY_BYTES // 8 if ctx.quick else COPY_BYTES
    samples = Samples(ctx.max_new_tokens, ctx.reps, cores, torch.get_num_threads(), flags, cpu_has_native_bf16(),
                      copy_bandwidth(probe), probe, load_average_start=load_average())
    options = runs(cores)
    if ctx.quick:  # a smoke run: a compile takes minutes
        options.pop("compiled")
    for kind in SIDES:
        subject = ctx.subjects[kind]
        source, real = subject.source, subject.real
        if kind is Kind.SEQ2SEQ and not real and not ctx.quick:
            ctx.log(f"13 one answer: building {FLAN_NAME} (random weights)")
            source = flan_shaped(ctx)
        for precision in PRECISIONS:
            refusal = precision_refusal(precision, "cpu")
            if refusal:
                samples.models.append(ModelSamples(source.name, kind.value, real, precision.value, unavailable=refusal))
                continue
            samples.models.append(measure_model(ctx, source, real, kind, precision, options))
    samples.llama_cpp = llama_cpp_reference(ctx, cores)
    samples.load_average_end = load_average()
    return samples


def _pairs(model: ModelSamples, option: str) -> dict[str, Any]:
    """``option`` over ``current``, repetition by repetition (decoding tokens/s)."""
    pairs = [(a.decoding_rate, b.decoding_rate) for a, b in zip(model.runs[option], model.runs["current"])]
    return figure([a / b for a, b in pairs if a and b], "ratio")


def model_figures(model: ModelSamples, bandwidth: float) -> dict[str, Any]:
    """The JSON figures of one model in one precision: each option's decoding and whole-call tokens/s, its ratio to
    ``current``, its fraction of the bandwidth limit and whether its tokens equal ``current``'s."""
    out: dict[str, Any] = {"name": model.name, "kind": model.kind, "real": model.real, "precision": model.precision,
                           "dtype": model.dtype, "params": model.params, "weight_bytes": model.weight_bytes,
                           "compile_seconds": model.compile_seconds, "failed": model.failed,
                           "load_average": model.load_average, "unavailable": model.unavailable}
    if model.unavailable:
        return out
    limit = bandwidth / model.weight_bytes if model.weight_bytes else None
    out["bandwidth_limit_tokens_per_second"] = limit
    base = model.runs["current"]
    options: dict[str, Any] = {}
    for option, answers in model.runs.items():
        if not answers:
            continue
        rate = figure([a.decoding_rate for a in answers], "tokens/s")
        options[option] = {
            "tokens_per_second": rate,
            "whole_call_tokens_per_second": figure([a.steps / a.seconds for a in answers if a.seconds > 0], "tokens/s"),
            "ratio_to_current": _pairs(model, option)["median"] if option != "current" else 1.0,
            "pair_ratios": _pairs(model, option) if option != "current" else None,
            "bandwidth_fraction": rate["median"] / limit if limit and rate["median"] else None,
            "identical_to_current": sum(a.ids == b.ids for a, b in zip(answers, base)),
            "runs": len(answers),
        }
    out["options"] = options
    return out


def best(figures: dict[str, Any]) -> tuple[str, float] | None:
    """The option with the highest ratio to ``current`` among those whose tokens stayed identical (float32) or
    whatever they gave (bfloat16, where any path's rounding may part from another's)."""
    ranked = [(name, fig["ratio_to_current"]) for name, fig in figures.get("options", {}).items()
              if name != "current" and fig["ratio_to_current"] is not None
              and (figures["dtype"] != "float32" or fig["identical_to_current"] == fig["runs"])]
    return max(ranked, key=lambda item: item[1]) if ranked else None


def summarize(samples: Samples) -> Table:
    auto = Precision.BFLOAT16.value if samples.native_bf16 else Precision.FLOAT32.value
    models = {f"{m.name} {m.precision}": model_figures(m, samples.bandwidth) for m in samples.models}
    results: dict[str, Any] = {
        "max_new_tokens": samples.max_new_tokens, "reps": samples.reps, "cores": samples.cores,
        "threads": samples.threads, "cpu_flags": samples.flags, "native_bf16": samples.native_bf16,
        "auto_precision": auto, "bandwidth_bytes_per_second": samples.bandwidth, "copy_bytes": samples.copy_bytes,
        "models": models,
        "llama_cpp": samples.llama_cpp, "load_average_start": samples.load_average_start,
        "load_average_end": samples.load_average_end,
    }
    rows = []
    by_kind: dict[Kind, dict[str, dict[str, Any]]] = {k: {} for k in SIDES}
    for fig in models.values():
        by_kind[Kind(fig["kind"])][fig["precision"]] = fig

    def cells(precision: str, text: Callable[[dict[str, Any]], str]) -> dict[Kind, str]:
        return {k: (text(by_kind[k][precision]) if precision in by_kind[k] and not by_kind[k][precision]["unavailable"]
                    else "not run") for k in SIDES}

    def current(fig: dict[str, Any]) -> str:
        cur = fig["options"]["current"]
        return (f"{tps(cur['tokens_per_second']['median'])} ({100 * (cur['bandwidth_fraction'] or 0):.0f} % of the "
                f"{tps(fig['bandwidth_limit_tokens_per_second'])} limit)")

    def options(fig: dict[str, Any]) -> str:
        return "; ".join(f"{name} {ratio(o['ratio_to_current'])}×" + ("" if o["identical_to_current"] == o["runs"]
                                                                       else f" ({o['identical_to_current']}/{o['runs']} same)")
                         for name, o in fig["options"].items() if name != "current")

    met_speed = met_bw = None
    for precision in (p.value for p in PRECISIONS):
        rows.append(row(f"One answer, {precision}: today's decoding tokens/s (fraction of the bandwidth limit)",
                        cells(precision, current), "reported", None))
        rows.append(row(f"One answer, {precision}: each option's tokens/s ratio to today's (median of the pairs)",
                        cells(precision, options), "reported", None))
    causal_auto = by_kind[Kind.CAUSAL].get(auto)
    if causal_auto and not causal_auto["unavailable"]:
        top = best(causal_auto)
        met_speed = top is not None and top[1] >= TARGET_SPEEDUP
        rows.append(row(f"Best option for a lone causal answer in auto precision ({auto}), tokens identical where "
                        "float32", {Kind.CAUSAL: "none" if top is None else f"{top[0]}: {ratio(top[1])}×"},
                        f"≥ {TARGET_SPEEDUP}×", met_speed))
    causal_bf16 = by_kind[Kind.CAUSAL].get(Precision.BFLOAT16.value)
    if samples.native_bf16 and causal_bf16 and not causal_bf16["unavailable"]:
        fraction = max((o["bandwidth_fraction"] or 0) for o in causal_bf16["options"].values())
        met_bw = fraction >= TARGET_BANDWIDTH
        rows.append(row("Best fraction of the bandwidth limit, causal, bfloat16 (native here)",
                        {Kind.CAUSAL: f"{100 * fraction:.0f} %"}, f"≥ {100 * TARGET_BANDWIDTH:.0f} %", met_bw))
    compiled = {k: secs(by_kind[k].get(auto, {}).get("compile_seconds")) for k in SIDES}
    rows.append(row(f"Compile time of the decoding step ({auto}, first call less a normal run)", compiled,
                    "reported", None))
    ref = samples.llama_cpp
    rows.append(row("llama.cpp on the same GGUF (whole call)",
                    {Kind.CAUSAL: tps(ref["tokens_per_second"]["median"]) if "tokens_per_second" in ref
                     else ref.get("why", "not run")}, "reported", None))
    flags = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in samples.flags.items())
    notes = [f"Memory bandwidth ({samples.copy_bytes // 2**20} MiB torch copy, read + write): "
             f"{samples.bandwidth / 1e9:.1f} GB/s; CPU flags: {flags} (native bfloat16: "
             f"{'yes' if samples.native_bf16 else 'no'}); {samples.cores} cores, torch {samples.threads} threads."]
    notes += [f"{fig['name']} {fig['precision']}: {name} could not run ({why})"
              for fig in models.values() for name, why in fig["failed"].items()]
    return Table(rows, results, notes)
