"""The HTTP API (``/generate``, ``/compare``, ``/models``): plain functions over the run layer, one per endpoint.

``gradio_client`` callers pass named parameters; raw HTTP callers send the positional list
:func:`generate_payload` builds, in :data:`GENERATE_PARAMETERS` order.
"""

from __future__ import annotations

import queue
import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import gradio as gr

from evidence.store import StoreUnavailable
from evidence.types import TASKS

from models import GenerationSettings, Kind, ModelIdError, SettingsError
from models.request import RunRequest
from models.run import Chunk, Finished, Runner

from .evidence import Evidence
from .policy import Policy
from .privacy import PathRedactor
from .quiet import note, refuse
from .zerogpu import gpu_seconds, on_gpu

#: ``/generate``'s parameters in order, with their defaults (greedy, no penalty, auto precision;
#: ``load_in_8bit`` is the older way to ask for 8-bit, ``None`` = not given).
GENERATE_PARAMETERS: dict[str, Any] = {
    "model": None, "prompt": None, "max_new_tokens": 128, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
    "repetition_penalty": 1.0, "seed": 0, "load_in_8bit": None, "precision": "auto",
}


def generate_payload(model: str, prompt: str, **values: Any) -> list[Any]:
    """The positional ``data`` list of a raw ``/generate`` call (defaults for what is not given)."""
    unknown = set(values) - set(GENERATE_PARAMETERS)
    if unknown:
        raise TypeError(f"not a /generate parameter: {', '.join(sorted(unknown))}")
    given = dict(GENERATE_PARAMETERS, model=model, prompt=prompt, **values)
    return [given[name] for name in GENERATE_PARAMETERS]


def generate_endpoint(runner: Runner, policy: Policy) -> Callable[..., Iterator[tuple[str, dict]]]:
    """The ``/generate`` function: stream one model's answer to a prompt (server paths redacted).

    Settings beyond ``policy.limits`` (a public server) are refused. A refusal or a failed run is
    one log line naming the visitor, never a traceback.
    """
    def generate(model: str, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
                 top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0, seed: int = 0,
                 load_in_8bit: bool | None = None, precision: str = "auto",
                 request: gr.Request | None = None) -> Iterator[tuple[str, dict]]:
        """Stream one model's answer to a prompt.

        ``precision``: auto, float32, bfloat16, float16 (GPU only) or 8-bit; ``load_in_8bit=true`` still
        means 8-bit (with another precision it is refused, naming both). Yields the growing text with an
        empty stats object, then the final text with the stats (tokens in/out, time to first token,
        tokens/s, finish reason, the precision that ran). Bad settings, ids or models are refused with an
        error naming what was wrong.
        """
        try:
            settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                          repetition_penalty=repetition_penalty, seed=seed)
            run_request = RunRequest.parse(prompt=prompt, settings=policy.check(settings), precision=precision,
                                           load_in_8bit=load_in_8bit)
            source = runner.registry.resolve(model, custom=True)
        except (SettingsError, ModelIdError) as exc:
            raise refuse("/generate", str(exc), policy.who(request)) from None
        session = (request.session_hash if request is not None else None) or "api"
        for event in runner.start(source, run_request, session).events():
            if isinstance(event, Chunk) and event.text:
                yield event.text, {}
            elif isinstance(event, Finished):
                try:
                    final = _final(event, policy.redact)
                except gr.Error as exc:  # the run failed and says why: one line, no traceback of ours
                    note("failed", "/generate", str(exc.message), policy.who(request))
                    raise
                yield policy.redact(final)
    return on_gpu(generate, duration=lambda *args, **kwargs: gpu_seconds(kwargs.get("max_new_tokens", args[2] if len(args) > 2 else 128)))


def _final(event: Finished, redact: PathRedactor) -> tuple[str, dict]:
    """The last ``/generate`` output, or the error it ends with."""
    result = event.result
    if result.stats is None:
        raise gr.Error(redact(result.error or "no answer"), print_exception=False)
    stats = dict(result.stats.to_dict(), model=result.model,
                 description=result.description.to_dict() if result.description else None)
    if stats["finish_reason"] == "error":
        raise gr.Error(redact(f"{stats['error']} (partial text: {result.text[-200:]!r})"), print_exception=False)
    return result.text, stats


def compare_endpoint(runner: Runner, policy: Policy, evidence: Evidence,
                     coin: Callable[[], bool] = lambda: random.random() < 0.5) -> Callable[..., Iterator[dict]]:
    """The ``/compare`` function: both models answer one prompt at once, streamed together; the finished comparison
    is kept in the store (its ``id`` is what ``/vote`` takes). ``coin``: whether a blind comparison swaps sides."""
    def compare(left: str, right: str, prompt: str, task: str = "other", max_new_tokens: int = 128,
                temperature: float = 0.0, top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0,
                seed: int = 0, precision_left: str = "auto", precision_right: str = "auto", blind: bool = False,
                request: gr.Request | None = None) -> Iterator[dict]:
        """Both models answer ``prompt`` at once (the ``/generate`` settings, a precision per side).

        Yields ``{"left": {"text"}, "right": {"text"}}`` as the answers grow, then ``{"id", "task", "blind",
        "left": {"text", "stats"}, "right": {...}, "kept"}``: ``id`` is the comparison's in the database (``None``
        when it was not kept; ``kept`` says why). Blind: the sides may be swapped and nothing names the models (no
        ``model``, no stats: counts and speed would tell them apart) until ``/vote`` reveals them, stats included. A side that fails has an ``error``.
        """
        who = policy.who(request)
        if task not in TASKS:
            raise refuse("/compare", f"task {task!r}: expected one of {', '.join(TASKS)}", who)
        try:
            settings = policy.check(GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature,
                                                       top_p=top_p, top_k=top_k,
                                                       repetition_penalty=repetition_penalty, seed=seed))
            asked = {"left": (runner.registry.resolve(left, custom=True),
                              RunRequest.parse(prompt=prompt, settings=settings, precision=precision_left)),
                     "right": (runner.registry.resolve(right, custom=True),
                               RunRequest.parse(prompt=prompt, settings=settings, precision=precision_right))}
        except (SettingsError, ModelIdError) as exc:
            raise refuse("/compare", str(exc), who) from None
        swapped = bool(blind) and bool(coin())
        if swapped:
            asked = {"left": asked["right"], "right": asked["left"]}
        session = (request.session_hash if request is not None else None) or "api"
        runs = {side: runner.start(source, run_request, session) for side, (source, run_request) in asked.items()}
        events: queue.Queue = queue.Queue()

        def pump(side: str) -> None:
            try:
                for event in runs[side].events():
                    events.put((side, event))
            finally:
                events.put((side, None))

        texts, results = {"left": "", "right": ""}, {}
        with ThreadPoolExecutor(2, thread_name_prefix="compare") as pool:
            try:
                for side in runs:
                    pool.submit(pump, side)
                ended = 0
                while ended < 2:
                    side, event = events.get()
                    if event is None:
                        ended += 1
                    elif isinstance(event, Chunk) and event.text:
                        texts[side] = event.text
                        yield {s: {"text": policy.redact(t)} for s, t in texts.items()}
                    elif isinstance(event, Finished):
                        results[side] = event.result
            finally:  # the caller hung up, or both ended: nothing keeps running
                for run in runs.values():
                    run.stop()
        yield policy.redact(_compared(results, task, bool(blind), swapped, session, evidence))
    # both sides run in this one call, at once: one lease as long as one side's
    return on_gpu(compare, duration=lambda *args, **kwargs: gpu_seconds(kwargs.get("max_new_tokens", args[4] if len(args) > 4 else 128)))


def _compared(results: dict[str, Any], task: str, blind: bool, swapped: bool, session: str,
              evidence: Evidence) -> dict[str, Any]:
    """``/compare``'s last answer, with the comparison kept in the store."""
    records = {side: result.to_dict() for side, result in results.items()}
    comparison = {"id": uuid.uuid4().hex, "prompt": next(iter(results.values())).prompt, "blind": blind,
                  "swapped": swapped, "sides": records}
    kept: str | None = None
    store_id = None
    try:
        store_id = evidence.record(comparison, session, task)
    except StoreUnavailable as exc:
        kept = f"not saved: {exc}"
    except ValueError as exc:
        kept = f"not kept: {exc}"
    out: dict[str, Any] = {"id": store_id, "task": task, "blind": blind, "kept": kept}
    names = sorted({str(r.get("model")) for r in records.values() if r.get("model")}, key=len, reverse=True)
    for side, record in records.items():
        stats = {k: v for k, v in (record.get("stats") or {}).items() if k != "tokens"}
        # blind: no stats at all until /vote reveals them (token counts, speed and truncation notices tell the
        # models apart as surely as their names: issue 24.3)
        shown: dict[str, Any] = {"text": record.get("text", "")} if blind else {"text": record.get("text", ""),
                                                                               "stats": stats}
        if record.get("error") or stats.get("error"):
            error = str(record.get("error") or stats.get("error"))
            for name in (names if blind else ()):  # a blind side's error would name its model
                error = error.replace(name, "this side's model")
            shown["error"] = error
            stats.pop("error", None)
        if not blind:
            shown |= {"model": record.get("model"), "precision": (record.get("stats") or {}).get("precision")}
        out[side] = shown
    return out


def models_endpoint(runner: Runner) -> Callable[[], dict]:
    """The ``/models`` function: every selectable model per kind, with the reason when it is unavailable."""
    def models() -> dict:
        """Every selectable model per kind, with the reason when it is unavailable."""
        return {kind.value: [{"name": name, "label": label, "unavailable": reason}
                             for name, label, reason in runner.registry.choices(kind)]
                for kind in (Kind.SEQ2SEQ, Kind.CAUSAL)}
    return models
