"""The vocabulary the store and the ratings share. Imports nothing of the project."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

Choice = Literal["left", "right", "tie", "both_bad"]
CHOICES: tuple[str, ...] = ("left", "right", "tie", "both_bad")
TASKS: tuple[str, ...] = ("summarize", "translate", "answer a question", "follow an instruction",
                          "continue a text", "other")
KINDS: tuple[str, ...] = ("seq2seq", "causal")
SOURCES: tuple[str, ...] = ("page", "api", "set")  # where a vote came from: the page, the API, a prompt-set row


@dataclass(frozen=True)
class Contestant:
    """One side of a vote, as the leaderboard ranks it: a model in one precision."""

    model: str  # the name the registry shows (hub id, local name or endpoint model)
    precision: str  # "float32", "bfloat16", "8-bit", ... (what ran, not what was asked)
    kind: str  # "seq2seq" or "causal"


@dataclass(frozen=True)
class PairVote:
    """One vote between two answers to one prompt: what the ratings are fitted on."""

    left: Contestant
    right: Contestant
    choice: str  # one of CHOICES; "both_bad" is kept and shown, never counted as a tie
    task: str  # one of TASKS
    blind: bool  # the names were hidden until this vote
    left_chars: int = 0  # answer lengths (kept even when the answers are not), for length-controlled ratings
    right_chars: int = 0
    source: str = "page"  # "page", "api" or "set" (a prompt-set row)


#: a prompt set's task (``models.sets.rows.Task`` values) -> the vote task it counts under
SET_TASKS: dict[str, str] = {"summary": "summarize", "translation": "translate", "qa": "answer a question",
                             "instruction": "follow an instruction", "continuation": "continue a text", "other": "other"}


@dataclass(frozen=True)
class ScoreRow:
    """One side of one prompt-set row with its automatic scores: what the board of automatic scores is built from."""

    contestant: Contestant
    task: str  # one of TASKS (a set's task through SET_TASKS)
    scores: Mapping[str, float]  # as models.sets.scores.score_row gives them, e.g. {"chrf": 41.2, "exact": 1.0}
