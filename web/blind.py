"""Blind mode: a fair coin may swap the two panels' choices, and what names each model stays hidden until the
visitor's first rating reveals it.

:class:`BlindView` owns every update that hides or reveals the models; :class:`web.share_handlers.ShareHandlers`
asks it at the start of a run, when a comparison is rated and when one is reopened.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Mapping

import gradio as gr

from components.export import SIDE_TITLES as TITLES
from components.export import rating_note
from components.panel import Panel
from components.render import card_markdown, esc, md_text, prompt_view_html, record_confidence, stats_markdown
from components.share import ShareControls

Updates = dict[Any, Any]
NO_CODE = "# No code: this side produced no answer.\n"


class BlindView:
    """Hide and reveal what names the two panels' models.

    Args:
        left / right: the two panels.
        share: the rate-and-share section (its ``reveal`` line).
        checkbox: the "Blind" checkbox (``None``: no blind mode on this page).
        choose: whether a blind run swaps the sides (a fair coin; tests pass their own).
    """

    def __init__(self, left: Panel, right: Panel, share: ShareControls, checkbox: gr.Checkbox | None = None,
                 choose: Callable[[], bool] = lambda: random.random() < 0.5) -> None:
        self.left, self.right, self.share, self.checkbox, self.choose = left, right, share, checkbox, choose

    def assignment(self, data: Mapping[Any, Any] | None) -> dict[str, bool]:
        """A run's blind assignment, read from the checkbox's value in ``data``: blind or not, sides swapped or not."""
        blind = bool((data or {}).get(self.checkbox)) if self.checkbox is not None else False
        return {"blind": blind, "swapped": bool(self.choose()) if blind else False}

    def visibility(self, hide: bool, models: Mapping[str, str] | None = None) -> Updates:
        """Show or hide what names each panel's model (selectors, card, class answer, tokens, code); the headings
        say the model is hidden, or which model ran (``models``: side -> model, after a reveal)."""
        updates: Updates = {}
        for panel in (self.left, self.right):
            title = TITLES.get(panel.side, panel.side)
            if hide:
                heading = f"### {title} · model hidden until you rate"
            elif models and models.get(panel.side):
                heading = f"### {title} · {md_text(models[panel.side])}"
            else:
                heading = f"### {title}"
            updates.update({panel.identity: gr.Column(visible=not hide), panel.details: gr.Column(visible=not hide),
                            panel.heading: heading})
        return updates

    def toggled(self, blind: bool) -> Updates:
        """The checkbox itself: hide what names the models (the next run is shuffled), or show it all again."""
        return {**self.visibility(bool(blind)), self.share.reveal: ""}

    def toggled_outputs(self) -> set[Any]:
        """Every component :meth:`toggled` updates."""
        return {self.share.reveal, *self.visibility(True)}

    def reveal(self, comparison: Mapping[str, Any]) -> Updates:
        """After a blind comparison's first rating: each panel's card, tokens, code and full stats (what ran
        there), the panels shown again, and a line saying which model ran where."""
        sides = comparison.get("sides") or {}
        models = {side: str((record or {}).get("model", "")) for side, record in sides.items()}
        updates = self.visibility(False, models)
        parts = []
        for panel in (self.left, self.right):
            record = sides.get(panel.side) or {}
            description = record.get("description")
            stats = record.get("stats") or {}
            precision = stats.get("precision") or (description or {}).get("precision")
            parts.append(f"{TITLES.get(panel.side, panel.side).lower()}: **{md_text(record.get('model', '–'))}**"
                         + (f" in {esc(precision)}" if precision else ""))
            if description:
                updates[panel.card] = card_markdown(description)
            updates[panel.tokens] = prompt_view_html(record.get("prompt_view"))
            updates[panel.confidence] = record_confidence(record)
            updates[panel.code] = record.get("code") or NO_CODE
            if stats:
                updates[panel.stats] = stats_markdown(stats)
        swapped = (" The sides had been shuffled: the model you picked on the left ran on the right, and the other way "
                   "round; each panel's selectors now show what ran there." if comparison.get("swapped")
                   else " The sides were not shuffled this time.")
        updates[self.share.reveal] = (f"🔓 **Revealed** ({esc(rating_note(comparison))}): " + " · ".join(parts) + "."
                                      + swapped)
        return updates
