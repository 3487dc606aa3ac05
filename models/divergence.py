"""Where two answers part: identical or not, the first differing word, a word-level diff (``difflib`` does the
work), and, when both sides number their tokens alike, the first differing token with both sides' top
probabilities at that step.

Plain data in, plain data out (no torch): the page, the API, the exports and prompt sets all use it.

Example:
    >>> d = compare_answers("Paris is the capital.", "Paris is a city.")
    >>> d.identical, d.word, d.left_word, d.right_word
    (False, 3, 'the', 'a')
    >>> [op for op, _ in d.diff]
    ['equal', 'delete', 'insert']
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from .types import TokenProb

_WORD = re.compile(r"\S+")


def words(text: str) -> list[str]:
    """The answer's words (runs of non-space)."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class TokenFork:
    """The first step where two answers with one vocabulary took different tokens.

    Args:
        index: the step (0 = the first generated token).
        left / right: each side's token at that step.
    """

    index: int
    left: TokenProb
    right: TokenProb

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "left": self.left.to_dict(), "right": self.right.to_dict()}


@dataclass(frozen=True)
class Divergence:
    """How two answers compare.

    Args:
        identical: the texts are equal.
        word: the first differing word, counted from 1 as the page says it (``None`` when identical, or when
            only the spacing differs); one answer ending early differs at the word the other goes on with.
        left_word / right_word: the words at that position (``""`` where that answer has ended).
        diff: ``(op, words)`` runs: ``equal``, ``delete`` (left only), ``insert`` (right only).
        fork: the first differing token, when both sides number tokens alike and both gave tokens.
    """

    identical: bool
    word: int | None = None
    left_word: str = ""
    right_word: str = ""
    diff: list[tuple[str, list[str]]] = field(default_factory=list)
    fork: TokenFork | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"identical": self.identical, "word": self.word, "left_word": self.left_word,
                "right_word": self.right_word, "diff": [[op, list(ws)] for op, ws in self.diff],
                "fork": None if self.fork is None else self.fork.to_dict()}


def word_diff(left: Sequence[str], right: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Runs of equal, deleted (left only) and inserted (right only) words; a replacement is a deletion then
    an insertion."""
    runs: list[tuple[str, list[str]]] = []
    matcher = difflib.SequenceMatcher(a=list(left), b=list(right), autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op in ("equal", "delete", "replace") and i2 > i1:
            runs.append(("equal" if op == "equal" else "delete", list(left[i1:i2])))
        if op in ("insert", "replace") and j2 > j1:
            runs.append(("insert", list(right[j1:j2])))
    return runs


def token_fork(left: Sequence[TokenProb] | None, right: Sequence[TokenProb] | None) -> TokenFork | None:
    """The first step where the two token lists differ (``None`` when one is missing or they agree
    for as long as both go)."""
    if not left or not right:
        return None
    for index, (a, b) in enumerate(zip(left, right)):
        if a.id != b.id:
            return TokenFork(index, a, b)
    return None


def compare_answers(left: str, right: str, left_tokens: Sequence[TokenProb] | None = None,
                    right_tokens: Sequence[TokenProb] | None = None, *, same_vocabulary: bool = False) -> Divergence:
    """Compare two answers word by word (and token by token when ``same_vocabulary``)."""
    if left == right:
        return Divergence(True)
    a, b = words(left), words(right)
    fork = token_fork(left_tokens, right_tokens) if same_vocabulary else None
    if a == b:  # the same words, spaced or broken into lines otherwise
        return Divergence(False, None, diff=word_diff(a, b), fork=fork)
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return Divergence(False, first + 1, a[first] if first < len(a) else "", b[first] if first < len(b) else "",
                      word_diff(a, b), fork)
