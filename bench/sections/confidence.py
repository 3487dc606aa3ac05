"""11. Token probabilities: what recording each token's probability and top 5 (:class:`models.confidence.TokenRecorder`)
costs a lone greedy answer.

For each side's model (with ``--real`` offline: the SmolLM2-135M-Instruct GGUF, and a tiny untrained T5 built with
``models.tiny.build_tiny`` and widened, since no pretrained seq2seq model can be had offline) in float32 and in the
app's automatic precision, two ways of running the same ``model.generate`` call (same input, same arguments, a
:class:`~models.generation.StopOnEvents` in the stopping criteria as the app has, no streamer, in a fresh thread
under ``torch.inference_mode`` as :mod:`models.stream` runs it) alternate run by run:

- ``with``: a :class:`TokenRecorder` entered around the call and in its stopping criteria (what every app run does);
- ``without``: no recorder entered nor in the criteria, on the same model, whose forward hook an earlier recorder
  registered: the hook is a no-op then, the state the app's model is in after its first run.

Figures: decoding tokens/s of each (1 / the run's median step, from one step's stopping check to the next) and
whole-call tokens/s (new tokens over the call's wall time, prefill included); the cost, ``1 − with / without``,
median of the repetitions' pairs; whether both give the same answer; the time spent turning an answer's recorded
steps into token texts (:func:`models.confidence.build_tokens`, which the app runs once per answer after
``generate``); and a profile of the recorder: its own seconds in ``see`` (the hook's work per forward) and
``__call__`` (the stopping criterion's) per token, each of their tensor operations timed on the model's own last
logits, and what the idle hook costs a forward against a module that never had it (timed on a one-weight layer:
cheaper and far more exact than runs of a second copy of the model, whose difference would be lost in the noise).
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from transformers import StoppingCriteriaList

from models import Kind, LoadedModel, Precision, load_model
from models.confidence import TokenRecorder, build_tokens
from models.generation import StopOnEvents
from models.loader import pick_device, precision_refusal
from models.prompt import GenerateCall, generate_call

from ..context import SIDES, Context
from ..figures import figure, ms, tps
from ..machine import load_average
from ..runs import order, prepared
from .base import Table, all_met, row

COST_TARGET = 0.03  # recording may cost at most 3 % of decoding tokens/s
TARGET = (f"recording token probabilities costs ≤ {100 * COST_TARGET:.0f} % of a lone answer's decoding time "
          "(judged on the recorder's own time, timed inside the runs)")
MAX_NEW_TOKENS = 64
PRECISIONS = (Precision.FLOAT32, Precision.AUTO)
VARIANTS = ("with", "without")
PROFILE_RUNS = 2  # instrumented runs per model and precision (not timed for tokens/s)
OP_ITERATIONS = 200  # repetitions of each profiled tensor operation


@dataclass
class Answer:
    """One ``generate`` call: its wall time, the steps it took, its new token ids, and the time between one
    step's stopping check and the next (one decoding step each: forward, hook, logits processing, criteria)."""

    seconds: float
    steps: int
    ids: list[int]
    step_seconds: list[float] = field(default_factory=list)

    @property
    def decoding_rate(self) -> float | None:
        """Tokens/s of the median decoding step (prefill left out): a pause of the whole machine in one step
        moves it far less than the wall time."""
        return 1 / statistics.median(self.step_seconds) if self.step_seconds else None


class StepClock(StopOnEvents):
    """The app's :class:`StopOnEvents` that also notes when ``generate`` checks it, once a step."""

    def __init__(self) -> None:
        super().__init__([threading.Event()])
        self.stamps: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        self.stamps.append(time.perf_counter())
        return super().__call__(input_ids, scores, **kwargs)


@dataclass
class Profile:
    """The recorder's own time in one instrumented run."""

    steps: int
    see_seconds: float
    call_seconds: float
    generate_seconds: float


@dataclass
class ModelSamples:
    """Every run of one model in one precision; repetition ``i`` of each variant ran next to the others' ``i``."""

    name: str
    kind: str
    real: bool
    precision: str  # as asked: float32 or auto
    dtype: str = "?"  # what ran
    params: int = 0
    vocabulary: int = 0
    runs: dict[str, list[Answer]] = field(default_factory=lambda: {v: [] for v in VARIANTS})
    rows_seconds: list[float] = field(default_factory=list)  # recorder.row() per answer
    build_seconds: list[float] = field(default_factory=list)  # build_tokens() per answer
    tokens_built: list[int] = field(default_factory=list)  # entries build_tokens gave (0: the steps did not match)
    profiles: list[Profile] = field(default_factory=list)
    ops: dict[str, float] = field(default_factory=dict)  # seconds per call of each operation, on the last logits
    idle_hook_seconds: float | None = None  # a forward's extra time with the hook registered, not recording
    load_average: list[float] | None = None  # at the start of this model's runs
    unavailable: str | None = None


@dataclass
class Samples:
    max_new_tokens: int
    reps: int
    device: str
    models: list[ModelSamples] = field(default_factory=list)
    load_average_start: list[float] | None = None
    load_average_end: list[float] | None = None


class TimedRecorder(TokenRecorder):
    """A :class:`TokenRecorder` that adds up its own time in ``see`` and ``__call__`` and keeps the last logits."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.see_seconds = self.call_seconds = 0.0
        self.last_logits: torch.Tensor | None = None

    def see(self, logits: torch.Tensor) -> None:
        started = time.perf_counter()
        super().see(logits)
        self.see_seconds += time.perf_counter() - started
        self.last_logits = logits

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        started = time.perf_counter()
        out = super().__call__(input_ids, scores, **kwargs)
        self.call_seconds += time.perf_counter() - started
        return out


def _generate(loaded: LoadedModel, call: GenerateCall, recorder: TokenRecorder | None) -> Answer:
    """One ``generate`` of ``call`` in a fresh thread, with ``recorder`` entered and in the criteria (or none)."""
    def work() -> Answer:
        clock = StepClock()
        criteria = [clock] + ([recorder] if recorder is not None else [])
        started = time.perf_counter()
        with torch.inference_mode(), (recorder if recorder is not None else contextlib.nullcontext()):
            out = loaded.model.generate(**call.kwargs(stopping_criteria=StoppingCriteriaList(criteria)))
        seconds = time.perf_counter() - started
        start = call.input_ids.shape[1] if loaded.kind is Kind.CAUSAL else 1
        ids = out[0, start:].tolist()
        return Answer(seconds, len(ids), ids, [b - a for a, b in zip(clock.stamps, clock.stamps[1:])])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-confidence") as pool:
        return pool.submit(work).result()


def _best_of(fn: Callable[[], Any], iterations: int = OP_ITERATIONS, blocks: int = 5) -> float:
    """Seconds per call of ``fn``: the fastest of ``blocks`` blocks of ``iterations`` calls (less noise from a busy
    machine than a mean)."""
    fn()
    best = float("inf")
    for _ in range(blocks):
        started = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, (time.perf_counter() - started) / iterations)
    return best


def profile_ops(logits: torch.Tensor, chosen: torch.Tensor, top: int) -> dict[str, float]:
    """Seconds per call of each operation ``see`` and ``__call__`` run, on one step's logits (rows × vocabulary)."""
    with torch.inference_mode():
        raw = logits.detach()
        full = raw.float()
        logp = torch.log_softmax(full, dim=-1)
        k = min(top, logp.shape[-1])
        ids = logp.topk(k, dim=-1)[1]
        picked = chosen[:, None].to(logp.device)
        out = {
            "see: .float()": _best_of(lambda: raw.float()),
            "see: log_softmax (whole vocabulary)": _best_of(lambda: torch.log_softmax(full, dim=-1)),
            "see: topk of the log-probs": _best_of(lambda: logp.topk(k, dim=-1)),
            "call: gather + exp of the chosen": _best_of(lambda: logp.gather(1, picked).squeeze(1).exp()),
            "call: 4 × .cpu()": _best_of(lambda: [t.cpu() for t in (chosen, chosen, ids, ids)]),
            "call: torch.zeros (the 'never stop' answer)": _best_of(
                lambda: torch.zeros(chosen.shape[0], dtype=torch.bool, device=chosen.device)),
        }
    return out


def idle_hook_seconds(iterations: int = 2000) -> float:
    """What a model that once recorded pays per forward, while no recorder is entered, over a model that never
    had the hook: torch's hook dispatch plus the hook's check of the thread. Timed on a one-weight layer (the
    difference does not depend on the model), the hook registered the way the app registers it."""
    bare, hooked = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    with TokenRecorder(hooked):  # type: ignore[arg-type] - any module takes the hook
        pass
    x = torch.zeros(1, 1)
    with torch.inference_mode():
        return max(0.0, _best_of(lambda: hooked(x), iterations) - _best_of(lambda: bare(x), iterations))


def measure_model(ctx: Context, kind: Kind, precision: Precision, max_new: int) -> ModelSamples:
    """Both variants of one model in one precision, ``ctx.reps`` repetitions each in turns, then the profile."""
    subject = ctx.subjects[kind]
    samples = ModelSamples(subject.source.name, kind.value, subject.real, precision.value)
    settings = ctx.settings(max_new)
    hooked = load_model(subject.source, precision=precision)
    d = hooked.description
    samples.dtype, samples.params = d.dtype, d.params
    call = generate_call(hooked, prepared(hooked, ctx.prompt, settings), settings)

    def run(variant: str) -> Answer:
        recorder = TokenRecorder(hooked.model) if variant == "with" else None
        answer = _generate(hooked, call, recorder)
        if recorder is not None:  # the app then turns the steps into token texts, once per answer
            started = time.perf_counter()
            steps = recorder.row(0, len(answer.ids))
            samples.rows_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            built = build_tokens(hooked.tokenizer, steps) if [s[0] for s in steps] == answer.ids else []
            samples.build_seconds.append(time.perf_counter() - started)
            samples.tokens_built.append(len(built))
        return answer

    for variant in VARIANTS:  # warm-up; the first recorder registers the hook: "without" is the hooked model
        run(variant)
    for warm in (samples.rows_seconds, samples.build_seconds, samples.tokens_built):
        warm.clear()
    samples.load_average = load_average()
    label = f"11 confidence: {subject.source.name} {precision.value}"
    for rep in range(ctx.reps):
        ctx.rep_log(label, rep)
        for variant in order(rep, VARIANTS):
            samples.runs[variant].append(run(variant))
    last: TimedRecorder | None = None
    for _ in range(1 if ctx.quick else PROFILE_RUNS):
        last = TimedRecorder(hooked.model)
        answer = _generate(hooked, call, last)
        samples.profiles.append(Profile(len(last.steps), last.see_seconds, last.call_seconds, answer.seconds))
    if last is not None and last.last_logits is not None and last.steps:
        logits = last.last_logits
        logits = logits[:, -1] if logits.dim() == 3 else logits
        samples.vocabulary = int(logits.shape[-1])
        samples.ops = profile_ops(logits, last.steps[-1][0], last.top)
    samples.idle_hook_seconds = idle_hook_seconds()
    return samples


def measure(ctx: Context) -> Samples:
    max_new = ctx.max_new_tokens if ctx.quick else MAX_NEW_TOKENS
    device = pick_device()
    samples = Samples(max_new, ctx.reps, device, load_average_start=load_average())
    for kind in SIDES:
        subject = ctx.subjects[kind]
        for precision in PRECISIONS:
            refusal = precision_refusal(precision, device)
            if refusal:
                samples.models.append(ModelSamples(subject.source.name, kind.value, subject.real, precision.value,
                                                   unavailable=refusal))
                continue
            samples.models.append(measure_model(ctx, kind, precision, max_new))
            gc.collect()  # the model measure_model loaded
    samples.load_average_end = load_average()
    return samples


RATES: dict[str, Callable[[Answer], float | None]] = {
    "decoding": lambda a: a.decoding_rate,  # the median step
    "whole_call": lambda a: a.steps / a.seconds if a.seconds > 0 else None,  # new tokens over the call, prefill included
}


def paired(model: ModelSamples, rate: str) -> dict[str, Any]:
    """With over without, repetition by repetition (the two runs of a repetition ran one after the other)."""
    get = RATES[rate]
    pairs = [(get(a), get(b)) for a, b in zip(model.runs["with"], model.runs["without"])]
    return figure([a / b for a, b in pairs if a and b], "ratio")


def model_figures(model: ModelSamples) -> dict[str, Any]:
    """The JSON figures of one model in one precision: per rate (:data:`RATES`) each variant's tokens/s, the
    pairs and the cost they give; the recorder's own time, the idle hook's, and the token texts' per answer."""
    rates: dict[str, Any] = {}
    for rate, get in RATES.items():
        ratio = paired(model, rate)
        rates[rate] = {"tokens_per_second": {v: figure([get(a) for a in model.runs[v]], "tokens/s") for v in VARIANTS},
                       "pair_ratios": ratio, "cost": None if ratio["median"] is None else 1 - ratio["median"]}
    steps = sum(p.steps for p in model.profiles)
    own = [(p.see_seconds + p.call_seconds) / p.generate_seconds for p in model.profiles if p.generate_seconds]
    step = statistics.median([t for a in model.runs["without"] for t in a.step_seconds] or [0.0])
    idle = model.idle_hook_seconds
    return {
        "kind": model.kind, "real": model.real, "precision": model.precision, "dtype": model.dtype,
        "params": model.params, "vocabulary": model.vocabulary, "load_average": model.load_average,
        **rates,
        "tokens": figure([a.steps for a in model.runs["with"]], "tokens"),
        "same_answer": {"identical": sum(a.ids == b.ids for a, b in zip(model.runs["with"], model.runs["without"])),
                        "runs": len(model.runs["with"])},
        "row_seconds": figure(model.rows_seconds, "s"),
        "build_tokens_seconds": figure(model.build_seconds, "s"),
        "tokens_built": model.tokens_built,
        "recorder": {
            "see_seconds_per_token": (sum(p.see_seconds for p in model.profiles) / steps) if steps else None,
            "call_seconds_per_token": (sum(p.call_seconds for p in model.profiles) / steps) if steps else None,
            "share_of_generate": figure(own, "share"),
            "runs": len(model.profiles),
        },
        "ops_seconds": model.ops,
        "idle_hook": {"seconds_per_forward": idle, "median_step_seconds": step,
                      "share_of_step": idle / step if idle is not None and step else None},
    }


def percent(value: float | None) -> str:
    """``"1.2 %"``, ``"−0.4 %"``."""
    return "–" if value is None else f"{100 * value:.1f} %".replace("-", "−")


def precision_label(figures: dict[str, Any]) -> str:
    """``"float32"``, ``"auto (bfloat16)"``."""
    return f"auto ({figures['dtype']})" if figures["precision"] == "auto" else figures["precision"]


def spread(ratios: dict[str, Any]) -> str:
    """The range of the pairs' costs: ``"pairs −8.1 % to 12.0 %"``."""
    if not ratios["samples"]:
        return "no pairs"
    return f"pairs {percent(1 - max(ratios['samples']))} to {percent(1 - min(ratios['samples']))}"


def summarize(samples: Samples) -> Table:
    results: dict[str, Any] = {}
    notes: list[str] = []
    cells: dict[str, dict[str, dict[Kind, str]]] = {}  # row -> precision label -> side -> cell
    met: dict[str, list[bool | None]] = {}

    def put(what: str, label: str, kind: Kind, text: str) -> None:
        cells.setdefault(what, {}).setdefault(label, {})[kind] = text

    for model in samples.models:
        kind, key = Kind(model.kind), f"{model.name} {model.precision}"
        if model.unavailable:
            results[key] = {"name": model.name, "kind": model.kind, "precision": model.precision,
                            "unavailable": model.unavailable}
            put("decoding", model.precision, kind, f"not run: {model.unavailable}")
            continue
        fig = results[key] = {"name": model.name, **model_figures(model)}
        label = precision_label(fig)
        for rate in RATES:
            speeds = fig[rate]["tokens_per_second"]
            put(rate, label, kind, f"{percent(fig[rate]['cost'])} ({tps(speeds['with']['median'])} with vs "
                                   f"{tps(speeds['without']['median'])} without; {spread(fig[rate]['pair_ratios'])})")
        rec = fig["recorder"]
        share = rec["share_of_generate"]["median"]
        met.setdefault(label, []).append(None if share is None else share <= COST_TARGET)
        per_token = (rec["see_seconds_per_token"] or 0) + (rec["call_seconds_per_token"] or 0)
        put("own", label, kind, f"{ms(per_token)} a token = {percent(rec['share_of_generate']['median'])} of "
                                f"generate (vocabulary {model.vocabulary:,})")
        idle = fig["idle_hook"]
        put("idle", label, kind, f"{ms(idle['seconds_per_forward'])} a forward = {percent(idle['share_of_step'])} of a "
                                 "step")
        put("build", label, kind, f"{ms(fig['build_tokens_seconds']['median'])} for "
                                  f"{int(fig['tokens']['median'] or 0)} tokens")
        same = fig["same_answer"]
        if same["identical"] != same["runs"]:
            notes.append(f"{key}: the answer with the recorder differed from the one without in "
                         f"{same['runs'] - same['identical']}/{same['runs']} repetitions")
    target = f"≤ {100 * COST_TARGET:.0f} %"
    titles = {
        "decoding": ("Token probabilities recorded, {}: decoding tokens/s cost (median step), median of paired runs",
                     "reported"),
        "whole_call": ("Token probabilities recorded, {}: whole-call tokens/s cost, median of paired runs", "reported"),
        "own": ("Recorder's own time, {}: see() + __call__ per token (profiled runs), share of generate", target),
        "idle": ("Idle hook, {}: a hooked model not recording vs one never hooked, per forward", "reported"),
        "build": ("Token texts, {}: build_tokens() per answer (after generate)", "reported"),
    }
    rows = []
    for what, (title, goal) in titles.items():
        for label, by_kind in cells.get(what, {}).items():
            rows.append(row(title.format(label), by_kind, goal, all_met(met.get(label, [])) if goal == target else None))
    notes.append(f"Lone greedy answers of {samples.max_new_tokens} new tokens on {samples.device}: the same generate "
                 "call with a TokenRecorder and without (the model already hooked by an earlier recorder, not "
                 "recording: the app's state after its first run), in turns, no streamer. Decoding tokens/s = 1 / the "
                 "run's median time from one step's stopping check to the next (prefill left out); whole call = new "
                 "tokens over the generate call's wall time. Cost = 1 − with / without, median of the repetitions' "
                 "pairs. The recorder's own time is what it spends in see() and __call__, timed inside two further "
                 "runs; the idle hook's is timed on a one-weight layer with and without the hook.")
    notes.append("The target is judged on the recorder's own time: on a machine shared with other work, runs of the "
                 "same call differ by more than the 3 % being checked (the pairs' range in each cell), so the paired "
                 "tokens/s show whether a cost is visible, and the timing inside the runs says how large it is.")
    notes.append("Offline, the seq2seq side is a tiny untrained T5 (models.tiny.build_tiny, widened): no pretrained "
                 "seq2seq model can be had without the hub. Its steps take a few milliseconds, so a fixed cost per "
                 "step weighs far more on it than on a real model.")
    return Table(rows, {"max_new_tokens": samples.max_new_tokens, "reps": samples.reps, "device": samples.device,
                        "load_average_start": samples.load_average_start,
                        "load_average_end": samples.load_average_end, "models": results}, notes)
