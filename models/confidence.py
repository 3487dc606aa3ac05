"""Each generated token's probability and its most likely alternatives, recorded while ``generate`` runs.

What is recorded is the model's own view: the softmax of the raw logits at each step, taken from the model's
output before ``generate``'s logits processors (repetition penalty, no-repeat n-grams, temperature, top-k,
top-p) touch them. A forward hook on the model sees those logits; a stopping criterion, which ``generate``
calls right after it picks each token, learns which token was picked. Per step only the picked token's
probability and the top :data:`~models.types.TOP_TOKENS` are kept (a few floats a row), never the whole
vocabulary's scores.

The hook is registered once per model and does nothing unless the calling thread is recording (a
thread-local), so runs in other threads on the same model (other visitors, a prompt set) never mix.
Every way a local model answers records the same way: a lone run, a group of visitors (one row each)
and a prompt set's batch (one row each).

Example:
    >>> recorder = TokenRecorder(model)                                     # doctest: +SKIP
    >>> with recorder:                                                      # doctest: +SKIP
    ...     out = model.generate(**inputs, stopping_criteria=StoppingCriteriaList([recorder]))
    >>> recorder.row(0, n_new)                                              # doctest: +SKIP
    [(id, prob, [(id, prob), ...]), ...]
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria

from .types import TOP_TOKENS, TokenChoice, TokenProb

_ACTIVE = threading.local()  # .recorder: the TokenRecorder of this thread's running generate, if any
_HOOKED = "_playground_token_hook"


def _on_forward(_module: torch.nn.Module, _args: Any, output: Any) -> None:
    recorder = getattr(_ACTIVE, "recorder", None)
    if recorder is None:
        return
    logits = output["logits"] if isinstance(output, dict) else getattr(output, "logits", None)
    if logits is None and isinstance(output, tuple) and output:
        logits = output[0]
    if logits is not None:
        recorder.see(logits[:, -1])


class TokenRecorder(StoppingCriteria):
    """Records one ``generate``'s tokens: use it as a context manager around the call (in the thread that calls
    it) and put it in the call's stopping criteria (it never stops anything).

    Args:
        model: the model that generates (its forward gets the hook once).
        top (int, default :data:`~models.types.TOP_TOKENS`): alternatives kept per step.
    """

    def __init__(self, model: PreTrainedModel, top: int = TOP_TOKENS) -> None:
        self.model, self.top = model, top
        self._pending: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (log-probs, top ids, top log-probs)
        self.steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # chosen, p, top ids, top p
        self.failed: str | None = None

    def __enter__(self) -> "TokenRecorder":
        if not getattr(self.model, _HOOKED, False):
            with _LOCK:
                if not getattr(self.model, _HOOKED, False):
                    self.model.register_forward_hook(_on_forward)
                    setattr(self.model, _HOOKED, True)
        _ACTIVE.recorder = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _ACTIVE.recorder = None

    def see(self, logits: torch.Tensor) -> None:
        """The raw logits of one step (rows × vocabulary), from the hook."""
        try:
            logp = torch.log_softmax(logits.detach().float(), dim=-1)
            values, ids = logp.topk(min(self.top, logp.shape[-1]), dim=-1)
            self._pending = (logp, ids, values)
        except Exception as exc:  # noqa: BLE001 - recording never breaks a generation
            self.failed = f"{type(exc).__name__}: {exc}"

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        pending, self._pending = self._pending, None
        if pending is not None:
            logp, ids, values = pending
            chosen = input_ids[:, -1]
            picked = logp.gather(1, chosen[:, None].to(logp.device)).squeeze(1)
            self.steps.append((chosen.cpu(), picked.exp().cpu(), ids.cpu(), values.exp().cpu()))
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def row(self, index: int, count: int) -> list[tuple[int, float, list[tuple[int, float]]]]:
        """Row ``index``'s first ``count`` steps: ``(chosen id, its probability, [(id, probability), ...])``."""
        out = []
        for chosen, picked, ids, probs in self.steps[:count]:
            out.append((int(chosen[index]), float(picked[index]),
                        list(zip(ids[index].tolist(), probs[index].tolist()))))
        return out

    def tokens(self, tokenizer: PreTrainedTokenizerBase, index: int, ids: Sequence[int]) -> list[TokenProb] | None:
        """Row ``index``'s tokens for the generated ``ids`` (``None`` when the steps do not match them)."""
        steps = self.row(index, len(ids))
        if self.failed or len(steps) != len(ids) or any(step[0] != int(i) for step, i in zip(steps, ids)):
            return None
        return build_tokens(tokenizer, steps)


_LOCK = threading.Lock()
NO_TOKENS_NOTE = "no token probabilities for this run (the recorded steps did not match the answer)"


def token_pieces(tokenizer: PreTrainedTokenizerBase, ids: Sequence[int]) -> list[str]:
    """Each token's share of the decoded answer, so that the pieces add up to
    ``tokenizer.decode(ids, skip_special_tokens=True)``. A token that ends inside a character (byte-level BPE
    splits some characters) gets ``""`` and the character goes to the token that completes it."""
    pieces: list[str] = []
    shown, start = "", 0  # decoded from ``start`` (after the last newline, as TextIteratorStreamer flushes)
    for end in range(1, len(ids) + 1):
        text = tokenizer.decode(list(ids[start:end]), skip_special_tokens=True)
        if text.endswith("\ufffd") and end < len(ids):
            pieces.append("")
            continue
        if text.startswith(shown):
            pieces.append(text[len(shown):])
        else:  # a decoder that rewrites earlier text (clean-up of spaces): the piece is the token alone
            pieces.append(tokenizer.decode([ids[end - 1]], skip_special_tokens=True))
        shown = text
        if text.endswith("\n"):
            shown, start = "", end
    return pieces


def choice_text(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """An alternative token's text as a reader sees it (special tokens by their name: ``</s>``)."""
    return tokenizer.decode([token_id], skip_special_tokens=False)


def build_tokens(tokenizer: PreTrainedTokenizerBase,
                 steps: Sequence[tuple[int, float, Sequence[tuple[int, float]]]]) -> list[TokenProb]:
    """:class:`TokenProb` entries for recorded steps, with texts."""
    pieces = token_pieces(tokenizer, [step[0] for step in steps])
    texts: dict[int, str] = {}

    def text_of(token_id: int) -> str:
        if token_id not in texts:
            texts[token_id] = choice_text(tokenizer, token_id)
        return texts[token_id]

    return [TokenProb(chosen, piece, prob, tuple(TokenChoice(i, text_of(i), p) for i, p in top))
            for (chosen, prob, top), piece in zip(steps, pieces)]
