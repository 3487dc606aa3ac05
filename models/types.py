"""The vocabulary every engine shares: why a generation ended, its figures, one stream step, one row of a set,
the model input as built. Plain data: this module imports nothing of the project (nor torch), so any module
may import it and none needs another for a type.

Example:
    >>> finish_reason(error=None, eos=False, length=True, stopped=False).value
    'length'
    >>> Stats(input_tokens=3, output_tokens=2).to_dict()["finish_reason"]
    'eos'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

THREAD_PREFIX = "generate["  # generation threads are named generate[<model name>] (lone and grouped runs alike)
NOT_RUN_NOTICE = "not run: stopped before its batch started"


class FinishReason(str, Enum):
    """Why a generation ended."""

    EOS = "eos"  # the model produced its end-of-sequence token (an engine's "stop")
    LENGTH = "length"  # max_new_tokens reached
    STOPPED = "stopped"  # the user (or a closed page) stopped it
    ERROR = "error"  # an exception or a timeout


def finish_reason(*, error: str | None, eos: bool, length: bool, stopped: bool,
                  otherwise: FinishReason = FinishReason.LENGTH) -> FinishReason:
    """The one rule for why a generation ended, whatever ran it.

    An error wins; then the model's own end (its end-of-sequence token); then the token limit; then a stop;
    ``otherwise`` when none of these holds (another limit of the generation config, or an engine's own reason).
    """
    if error:
        return FinishReason.ERROR
    if eos:
        return FinishReason.EOS
    if length:
        return FinishReason.LENGTH
    if stopped:
        return FinishReason.STOPPED
    return otherwise


@dataclass(frozen=True)
class TokenChoice:
    """One candidate for a generated token: its id (``None`` when an endpoint gives only text), its text and the
    model's probability for it (the softmax of the raw logits at that step)."""

    id: int | None
    text: str
    prob: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "prob": round(self.prob, 6)}


@dataclass(frozen=True)
class TokenProb:
    """One generated token: what was chosen, the model's probability for it, and the most likely tokens at that
    step (at most :data:`TOP_TOKENS`, most likely first).

    ``prob`` is the softmax of the model's raw logits, before repetition penalty, temperature, top-k or top-p:
    how sure the model itself was, whatever the sampler then did. ``text`` is the token's share of the answer
    (the texts of an answer's tokens add up to the answer; ``""`` for an end token).
    """

    id: int | None
    text: str
    prob: float
    top: tuple[TokenChoice, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "prob": round(self.prob, 6), "top": [c.to_dict() for c in self.top]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenProb":
        top = tuple(TokenChoice(c.get("id"), str(c.get("text", "")), float(c["prob"])) for c in data.get("top") or ())
        return cls(data.get("id"), str(data.get("text", "")), float(data["prob"]), top)


TOP_TOKENS = 5  # alternatives kept per generated token


def confidence_summary(tokens: "list[TokenProb] | tuple[TokenProb, ...] | None") -> dict[str, Any] | None:
    """Mean probability, mean log-probability and tokens below 50 % of an answer's tokens; ``None`` without any."""
    if not tokens:
        return None
    probs = [t.prob for t in tokens]
    logs = [math.log(max(p, 1e-45)) for p in probs]
    return {"mean_prob": round(sum(probs) / len(probs), 6), "mean_logprob": round(sum(logs) / len(logs), 6),
            "below_half": sum(1 for p in probs if p < 0.5), "tokens": len(probs)}


@dataclass
class Stats:
    """Figures for one generation.

    Args:
        input_tokens: tokens fed to the model (after template / prefix / truncation); ``None`` when
            unknown (an endpoint that reports no counts, with no tokenizer here).
        output_tokens: tokens generated, counted from the generated ids (an endpoint's: from its usage
            report, else its tokenizer here, else stream chunks; see ``count_unit``).
        time_to_first_token: seconds from start to the first generated token.
        tokens_per_second: output tokens after the first, per second after the first
            (so the prompt's processing time does not dilute the decoding speed).
        total_seconds: start to end.
        finish_reason: why it ended.
        error: the error message when ``finish_reason`` is ``error``.
        notices: truncation and capping notes.
        count_unit: ``"tokens"``, or ``"chunks"`` when only stream chunks could be counted (then
            ``tokens_per_second`` is chunks per second).
        precision: the precision the model ran in (``"bfloat16"``, ``"8-bit"``…); ``None`` for an endpoint.
        batch_rows: requests answered by the same ``generate`` (more than 1 when grouped, see
            :mod:`models.grouping`).
        tokens: each generated token with its probability and the top alternatives (:class:`TokenProb`), in
            generation order; ``None`` when the engine gives none (then ``tokens_note`` says why).
        tokens_note: why there are no token probabilities, in one line.
    """

    input_tokens: int | None
    output_tokens: int = 0
    time_to_first_token: float | None = None
    tokens_per_second: float | None = None
    total_seconds: float = 0.0
    finish_reason: FinishReason = FinishReason.EOS
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    count_unit: str = "tokens"
    precision: str | None = None
    batch_rows: int = 1
    tokens: list[TokenProb] | None = None
    tokens_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "time_to_first_token": None if self.time_to_first_token is None else round(self.time_to_first_token, 4),
            "tokens_per_second": None if self.tokens_per_second is None else round(self.tokens_per_second, 2),
            "total_seconds": round(self.total_seconds, 4), "finish_reason": self.finish_reason.value,
            "error": self.error, "notices": list(self.notices), "count_unit": self.count_unit,
            "precision": self.precision, "batch_rows": self.batch_rows,
            "tokens": None if self.tokens is None else [t.to_dict() for t in self.tokens],
            "tokens_note": self.tokens_note, "confidence": confidence_summary(self.tokens),
        }


@dataclass
class StreamUpdate:
    """One step of a stream: the text so far and, on the last step, the stats."""

    text: str
    delta: str
    stats: Stats | None = None

    @property
    def done(self) -> bool:
        return self.stats is not None


@dataclass
class PreparedPrompt:
    """What goes into a local model: built once per run by its engine's ``prepare``.

    Args:
        text: the text the model really sees (after template or prefix).
        input_ids: its token ids (batch of one, as a list).
        max_new_tokens: tokens allowed after capping to the model's limit.
        used_chat_template: whether the chat template wrapped the prompt.
        decoder_start: seq2seq only: the token the decoder starts from.
        notices: human-readable notes (truncation, caps, settings an engine cannot take).
        full_length: tokens before any cut (``len(input_ids)`` when nothing was cut).
        call: the ``model.generate`` arguments, built with the input (``models.prompt.GenerateCall``), so that
            the stream and the reproducing code use the same ones, built once.
    """

    text: str
    input_ids: list[int]
    max_new_tokens: int
    used_chat_template: bool = False
    decoder_start: str | None = None
    notices: list[str] = field(default_factory=list)
    full_length: int = 0
    call: Any = field(default=None, repr=False, compare=False)

    @property
    def truncated(self) -> bool:
        """True when the input was cut to fit the model's context."""
        return self.full_length > len(self.input_ids)


@dataclass(frozen=True)
class RowResult:
    """One row's output and figures, from any engine.

    Args:
        index: the row's position in the input (results may arrive out of order).
        text: the generated text (special tokens skipped); empty when nothing was generated.
        output_tokens: generated tokens counted from the ids, up to and including the first
            end-of-sequence token (padding after it is not counted).
        input_tokens: the row's prompt tokens (after template, prefix and caps), padding excluded.
        seconds: the row's share of its batch's wall time (batch seconds / rows in the batch),
            so the rows' seconds add up to the time spent generating.
        finish_reason: ``eos``, ``length``, ``stopped`` or ``error``.
        error: what went wrong, when ``finish_reason`` is ``error``.
        batch_size: rows in the ``generate`` call that produced it (1 for a retried row).
        batch_seconds: wall time of that call.
        output_ids: the generated ids (same span as ``output_tokens``).
        notices: truncation and capping notes of the engine's ``prepare``.
        tokens: each generated token's probability and alternatives (``None`` when the engine gives none).
        tokens_note: why there are none.
    """

    index: int
    text: str
    output_tokens: int
    input_tokens: int
    seconds: float
    finish_reason: FinishReason
    error: str | None = None
    batch_size: int = 1
    batch_seconds: float = 0.0
    output_ids: tuple[int, ...] = ()
    notices: tuple[str, ...] = field(default_factory=tuple)
    tokens: tuple[TokenProb, ...] | None = None
    tokens_note: str | None = None

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per second of this row's share of the batch time."""
        return self.output_tokens / self.seconds if self.seconds > 0 and self.output_tokens else None

    def stats_dict(self) -> dict[str, Any]:
        """JSON-ready figures (everything but the text and the ids)."""
        tps = self.tokens_per_second
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "seconds": round(self.seconds, 4), "tokens_per_second": None if tps is None else round(tps, 2),
                "finish_reason": self.finish_reason.value, "error": self.error, "batch_size": self.batch_size,
                "batch_seconds": round(self.batch_seconds, 4), "notices": list(self.notices)}

    @classmethod
    def failed(cls, index: int, message: str, prepared: PreparedPrompt | None = None) -> "RowResult":
        """A row that produced nothing because of ``message``."""
        return cls(index, "", 0, len(prepared.input_ids) if prepared else 0, 0.0, FinishReason.ERROR, message,
                   notices=tuple(prepared.notices) if prepared else ())

    @classmethod
    def not_run(cls, index: int, prepared: PreparedPrompt | None = None) -> "RowResult":
        """A row left out because the set was stopped before its turn."""
        notices = tuple(prepared.notices) if prepared else ()
        return cls(index, "", 0, len(prepared.input_ids) if prepared else 0, 0.0, FinishReason.STOPPED,
                   batch_size=0, notices=(*notices, NOT_RUN_NOTICE))


class Prepared(Protocol):
    """An engine's input for one run, as the run layer sees it (a local :class:`PreparedPrompt`, an endpoint's
    request): the text the model is given and the notes about it."""

    text: str
    notices: list[str]


class Description(Protocol):
    """What a card, the API and exports say about a model an engine answers with."""

    def to_dict(self) -> dict[str, Any]: ...
