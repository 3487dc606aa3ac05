"""Scores of model outputs against reference texts, per row and for a whole set.

Which scores a row gets depends on its set's :class:`~models.sets.rows.Task`:

============== ============================================ =========
task           scores                                       scale
============== ============================================ =========
summary        ``chrf``, ``rouge_l``                        0–100, 0–1
translation    ``chrf``                                     0–100
qa             ``chrf``, ``exact``, ``contains``            0–100, 0/1
instruction    ``chrf`` (when a loose reference is given)   0–100
continuation   none (no reference)
other          ``chrf`` (uploaded sets with references)     0–100
============== ============================================ =========

- ``chrf``: character n-gram F-score (sacrebleu's chrF, default parameters: character
  6-grams, beta 2). Sentence-level per row; for a set, corpus-level over the scored
  rows (statistics summed over rows, not a mean of row scores), as sacrebleu reports it.
- ``rouge_l``: ROUGE-L F-measure from ``rouge-score`` (longest common subsequence of
  words, Porter stemming). Its tokenizer keeps only ``a-z0-9``: use it on English.
- ``exact`` / ``contains``: 1 when the normalized prediction equals / contains (as whole
  words) the normalized reference, else 0. Normalized as in SQuAD's evaluation: Unicode
  NFKC, lower case, punctuation removed, English articles (a, an, the) removed, runs of
  whitespace collapsed. ``"The Nile."`` is an exact match for ``"Nile"``.

Rows without a reference, or whose prediction is missing (the row failed or was not
run), get no scores and are left out of the set's summary. Every function is
deterministic. Pure Python: no torch.

Example:
    >>> {k: round(v, 2) for k, v in score_row(Task.QA, "The Nile.", "Nile").items()}  # doctest: +SKIP
    {'chrf': ..., 'exact': 1.0, 'contains': 1.0}
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Sequence

import sacrebleu
from rouge_score import rouge_scorer

from .rows import Task

#: score names per task, in display order
TASK_SCORES: dict[Task, tuple[str, ...]] = {
    Task.SUMMARY: ("chrf", "rouge_l"),
    Task.TRANSLATION: ("chrf",),
    Task.QA: ("chrf", "exact", "contains"),
    Task.INSTRUCTION: ("chrf",),
    Task.CONTINUATION: (),
    Task.OTHER: ("chrf",),
}
#: name -> (label, highest value), for tables and charts
SCORE_INFO: dict[str, tuple[str, float]] = {
    "chrf": ("chrF", 100.0),
    "rouge_l": ("ROUGE-L F", 1.0),
    "exact": ("exact match", 1.0),
    "contains": ("contains match", 1.0),
}
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation) | {"¿", "¡", "«", "»", "“", "”", "„", "‘", "’", "–", "—", "…"}


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def normalize_answer(text: str) -> str:
    """Lower case, no punctuation, no English articles, single spaces (SQuAD's normalization, plus NFKC).

    Args:
        text: a short answer.

    Example:
        >>> normalize_answer("  The  Pacific Ocean! ")
        'pacific ocean'
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if ch in _PUNCTUATION or unicodedata.category(ch).startswith("P") else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized texts are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def contains_match(prediction: str, reference: str) -> float:
    """1.0 when the normalized reference appears in the normalized prediction as whole words, else 0.0.

    ``"It ended in 1945."`` contains ``"1945"``; ``"19456"`` does not. An empty reference never matches.
    """
    ref = normalize_answer(reference)
    return float(bool(ref) and f" {ref} " in f" {normalize_answer(prediction)} ")


def chrf(prediction: str, reference: str) -> float:
    """Sentence-level chrF (0–100) of ``prediction`` against one ``reference``."""
    return float(sacrebleu.sentence_chrf(prediction, [reference]).score)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (0–1) of ``prediction`` against ``reference`` (English, stemmed)."""
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


_ROW_SCORERS = {"chrf": chrf, "rouge_l": rouge_l, "exact": exact_match, "contains": contains_match}


@lru_cache(maxsize=2048)
def _row_score(name: str, prediction: str, reference: str) -> float:
    """One row's score, remembered: a running set redraws its table and summary every half second, and a finished
    row's scores never change (ROUGE-L costs about 2 ms a row)."""
    return _ROW_SCORERS[name](prediction, reference)


def score_row(task: Task | str, prediction: str | None, reference: str | None) -> dict[str, float]:
    """The scores of one output, by task (see the module table).

    Args:
        task: the set's task (a :class:`~models.sets.rows.Task` or its value, e.g. ``"qa"``).
        prediction: the model's output text; ``None`` when the row failed or did not run.
        reference: the expected text; ``None`` when the row has none.

    Returns:
        ``{score name: value}``; empty when there is nothing to score.
    """
    if prediction is None or reference is None:
        return {}
    return {name: _row_score(name, prediction, reference) for name in TASK_SCORES[Task(task)]}


@dataclass(frozen=True)
class ScoreSummary:
    """A set's scores for one side.

    Args:
        scores: ``chrf`` is corpus-level chrF over the scored rows; the others are means
            of the row scores (``exact`` and ``contains`` are then the share of rows matched).
        rows_scored: rows that had both a reference and an output.
        rows_total: rows given.
    """

    scores: dict[str, float] = field(default_factory=dict)
    rows_scored: int = 0
    rows_total: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, scores rounded to 4 decimals."""
        return {"scores": {k: round(v, 4) for k, v in self.scores.items()},
                "rows_scored": self.rows_scored, "rows_total": self.rows_total}


def summarize_scores(task: Task | str, predictions: Sequence[str | None],
                     references: Sequence[str | None]) -> ScoreSummary:
    """Scores for a whole set on one side.

    Args:
        task: the set's task.
        predictions: one output per row, ``None`` where the row failed or did not run.
        references: one reference per row, ``None`` where the row has none.

    Returns:
        A :class:`ScoreSummary`; its ``scores`` are empty when no row could be scored.

    Raises:
        ValueError: when the two sequences differ in length.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    pairs = [(p, r) for p, r in zip(predictions, references) if p is not None and r is not None]
    names = TASK_SCORES[Task(task)]
    if not pairs or not names:
        return ScoreSummary({}, 0 if not names else len(pairs), len(predictions))
    scores: dict[str, float] = {}
    for name in names:
        if name == "chrf":
            scores[name] = float(sacrebleu.corpus_chrf([p for p, _ in pairs], [[r for _, r in pairs]]).score)
        else:
            scores[name] = sum(_row_score(name, p, r) for p, r in pairs) / len(pairs)
    return ScoreSummary(scores, len(pairs), len(predictions))
