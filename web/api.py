"""The HTTP API (``/generate``, ``/models``): plain functions over the run layer, one per endpoint.

``gradio_client`` callers pass named parameters; raw HTTP callers send the positional list
:func:`generate_payload` builds, in :data:`GENERATE_PARAMETERS` order.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import gradio as gr

from models import GenerationSettings, Kind, ModelIdError, SettingsError
from models.request import RunRequest
from models.run import Chunk, Finished, Runner

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


def models_endpoint(runner: Runner) -> Callable[[], dict]:
    """The ``/models`` function: every selectable model per kind, with the reason when it is unavailable."""
    def models() -> dict:
        """Every selectable model per kind, with the reason when it is unavailable."""
        return {kind.value: [{"name": name, "label": label, "unavailable": reason}
                             for name, label, reason in runner.registry.choices(kind)]
                for kind in (Kind.SEQ2SEQ, Kind.CAUSAL)}
    return models
