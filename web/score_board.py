"""The Leaderboard tab's board of automatic scores: the prompt-set scores kept in the store
(:meth:`evidence.store.Store.score_rows`), per model, precision and task; a separate table, never mixed with votes."""

from __future__ import annotations

from typing import Any, Callable

from components.score_board import ScoreBoardControls, score_note, score_table
from evidence.ratings import ScoreCell, score_board
from evidence.store import StoreUnavailable

from .evidence import Evidence


def score_cells(evidence: Evidence, task: str | None = None) -> list[ScoreCell]:
    """The board of automatic scores from the kept prompt-set rows (``task=None``: every task).

    Raises:
        StoreUnavailable: no store, or the database is down.
    """
    return score_board(evidence.kept_store().score_rows(task))


def score_board_refresh(evidence: Evidence, controls: ScoreBoardControls) -> Callable[..., dict[Any, Any]]:
    """The refresh of the board of automatic scores (the task picked on the tab: ``"all"`` or one task)."""
    def refresh(task: str | None = None) -> dict[Any, Any]:
        try:
            cells = score_cells(evidence, None if not task or task == "all" else task)
        except StoreUnavailable as exc:
            return {controls.note: f"⚠️ {evidence.line if evidence.store is None else exc}", controls.table: None}
        return {controls.note: score_note(cells), controls.table: score_table(cells) or None}
    return refresh
