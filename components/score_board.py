"""The board of automatic scores on the Leaderboard tab: prompt-set scores (chrF, ROUGE-L, exact, contains) per
model, precision and task, a separate table, never mixed with the vote ratings. Gradio and plain Python only.

The numbers come from :func:`evidence.ratings.score_board` (a list of :class:`~evidence.ratings.ScoreCell`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import gradio as gr

from evidence.ratings import ScoreCell

TITLE = "### Automatic scores (prompt sets)"
NOTE = ("Scores against each prompt set's reference answers, averaged over the rows scored (95 % bootstrap "
        "interval); not votes, and never part of the ratings above.")
NO_SCORES = "No prompt-set scores yet: run a set with references on the Prompt set tab and its scores count here."
SCORE_HEADERS = ["task", "model", "precision", "kind", "score", "mean", "95 % interval", "rows"]
SCORE_NAMES = {"chrf": "chrF (0–100)", "rouge_l": "ROUGE-L (0–1)", "exact": "exact match (0–1)",
               "contains": "contains the reference (0–1)"}


@dataclass
class ScoreBoardControls:
    """The board of automatic scores, by name."""

    note: gr.Markdown  # what the scores are, or that there are none yet
    table: gr.Dataframe


def build_score_board() -> ScoreBoardControls:
    """The components (inside the Leaderboard tab, under the vote board)."""
    gr.Markdown(TITLE, elem_id="scores-title")
    note = gr.Markdown(NO_SCORES, elem_id="scores-note")
    table = gr.Dataframe(headers=SCORE_HEADERS, value=None, interactive=False, wrap=True, elem_id="scores-table")
    return ScoreBoardControls(note, table)


def _value(value: float | None, score: str) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if score == "chrf" else f"{value:.2f}"


def score_table(cells: Iterable[ScoreCell]) -> list[list[Any]]:
    """One table row per model, precision, task and score: the mean, its interval and the rows scored."""
    return [[c.task, c.model, c.precision, c.kind, SCORE_NAMES.get(c.score, c.score), _value(c.mean, c.score),
             "" if c.ci_low is None else f"{_value(c.ci_low, c.score)}–{_value(c.ci_high, c.score)}", c.n]
            for c in cells]


def score_note(cells: list[ScoreCell]) -> str:
    """The line above the table."""
    return NOTE if cells else NO_SCORES
