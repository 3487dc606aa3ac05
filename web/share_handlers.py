"""The rate-and-share handlers: pair the two sides' results into a comparison, rate it, download it, reopen it.

Comparisons are plain dicts (:mod:`components.export`) because they live in ``gr.State`` and in files.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterable, Mapping

import gradio as gr

from components.export import add_to_history, build_comparison, find_comparison, hidden, history_choices, with_rating
from components.panel import Panel
from components.render import (CONFIDENCE_HIDDEN, error_markdown, parting_html, prompt_view_html, record_confidence,
                               stats_markdown)
from components.settings import SHARED_FIELDS
from components.share import ShareControls

from models.divergence import compare_answers
from models.types import TokenProb

from .blind import NO_CODE, BlindView
from .evidence import EvidenceHandlers
from .exports import ExportFolder

Updates = dict[Any, Any]
HIDDEN_CODE = "# Hidden until you rate: the code names the model.\n"
HIDDEN_TOKENS = "<p>Hidden until you rate: the tokens tell the model apart.</p>"


def _tokens(record: Mapping[str, Any] | None) -> list[TokenProb] | None:
    tokens = ((record or {}).get("stats") or {}).get("tokens")
    return None if tokens is None else [TokenProb.from_dict(t) for t in tokens]


def parting(left: Mapping[str, Any] | None, right: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Where the two sides' answers part (:func:`models.divergence.compare_answers`), when both answered; the
    first differing token too when both models number their tokens alike."""
    if not (left and right and left.get("stats") and right.get("stats")):
        return None
    vocab = [(record.get("description") or {}).get("vocabulary") for record in (left, right)]
    same = vocab[0] is not None and vocab[0] == vocab[1]
    return compare_answers(str(left.get("text", "")), str(right.get("text", "")), _tokens(left), _tokens(right),
                           same_vocabulary=same).to_dict()


def same_run(records: Iterable[Mapping[str, Any] | None], current: Mapping[str, Any] | None) -> bool:
    """Whether both sides' records are there and belong to the run that set ``current`` (``blind_run``'s value,
    with the run's id): the record of a run that Run both replaced, written after the new run began, is never
    paired with the new run's."""
    records = list(records)
    run = (current or {}).get("run")
    return len(records) == 2 and all(r is not None and r.get("run") == run for r in records)


def _without_run(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "run"}  # the id is the page's, not the export's


def side_labels(comparison: Mapping[str, Any]) -> dict[str, str]:
    """What names each side in the token sentence: its precision when both run one model, else model and precision."""
    sides = {side: record or {} for side, record in (comparison.get("sides") or {}).items()}
    precision = {side: (r.get("stats") or {}).get("precision") or (r.get("description") or {}).get("precision") or ""
                 for side, r in sides.items()}
    same_model = len({r.get("model") for r in sides.values()}) == 1
    return {side: (f"{side} ({precision[side]})" if same_model and precision[side]
                   else f"{side} ({r.get('model', '?')}{', ' + precision[side] if precision[side] else ''})")
            for side, r in sides.items()}


def parting_view(comparison: Mapping[str, Any]) -> str:
    """The line under the panels for ``comparison``; the token sentence (it names precisions) only once revealed."""
    return parting_html(comparison.get("parting"), None if hidden(comparison) else side_labels(comparison))


class ShareHandlers:
    """Handlers of the section under the panels.

    Args:
        exports: where the downloads are written.
        left / right: the two panels.
        prompt_box: the shared prompt (a reopened comparison puts its prompt back).
        share: the section's components.
        blind: blind mode (hides and reveals what names the models).
        link: the "Same settings for both sides" box (a reopened run whose sides had different settings unticks it).
        evidence: keeps each finished comparison and its vote in the database (``web/evidence.py``); ``None``: not.
    """

    def __init__(self, exports: ExportFolder, left: Panel, right: Panel, prompt_box: gr.Textbox, share: ShareControls,
                 blind: BlindView, link: gr.Checkbox | None = None, evidence: EvidenceHandlers | None = None) -> None:
        self.exports, self.left, self.right, self.prompt_box, self.share = exports, left, right, prompt_box, share
        self.blind, self.link, self.evidence = blind, link, evidence

    def downloads(self, comparison: Mapping[str, Any]) -> Updates:
        """Write ``comparison`` as JSON and Markdown and point the download buttons at the files (none while a
        blind comparison is unrated: the files name the models)."""
        if hidden(comparison):
            return {self.share.download_json: gr.DownloadButton(value=None, interactive=False),
                    self.share.download_md: gr.DownloadButton(value=None, interactive=False)}
        json_path, md_path = self.exports.write(comparison)
        return {self.share.download_json: gr.DownloadButton(value=str(json_path), interactive=True),
                self.share.download_md: gr.DownloadButton(value=str(md_path), interactive=True)}

    def _recorded(self, history: list[dict[str, Any]], comparison: dict[str, Any]) -> Updates:
        return {self.share.comparisons: history, **self.downloads(comparison),
                self.share.history: gr.Dropdown(choices=history_choices(history), value=comparison["id"])}

    def run_start(self, data: Mapping[Any, Any] | None = None) -> Updates:
        """Before the sides start: no records, no rating, nothing to download until this run ends.

        Clearing the records is what pairs the two answers of one run in the comparison. With the Blind
        box ticked, a fair coin decides whether the two panels' choices swap sides, and what names the
        models is hidden until the visitor rates.
        """
        share = self.share
        assignment = {**self.blind.assignment(data), "run": uuid.uuid4().hex[:12]}  # the id pairs this run's records
        updates: Updates = {self.left.record: None, self.right.record: None, share.rating: None,
                            share.history: gr.Dropdown(value=None), share.blind_run: assignment, share.reveal: "",
                            share.download_json: gr.DownloadButton(value=None, interactive=False),
                            share.download_md: gr.DownloadButton(value=None, interactive=False), share.parting: ""}
        if assignment["blind"]:
            updates.update(self.blind.visibility(True))
        return updates

    def run_start_outputs(self) -> set[Any]:
        """Every component :meth:`run_start` updates."""
        share = self.share
        return {self.left.record, self.right.record, share.rating, share.history, share.blind_run, share.reveal,
                share.download_json, share.download_md, share.parting,
                *[c for p in (self.left, self.right) for c in (p.identity, p.details, p.heading)]}

    def side_done(self, data: dict[Any, Any], request: gr.Request | None = None) -> Updates:
        """After either side finishes: once both have a record, the comparison joins the history
        (with the rating, if one was given while the run was going)."""
        records = data[self.left.record], data[self.right.record]
        assignment = data.get(self.share.blind_run) or {}
        if not same_run(records, assignment) or not any(r.get("stats") for r in records):
            return gr.skip()  # the other side is still running, a replaced run ended, or neither side answered
        records = tuple(_without_run(r) for r in records)
        # the run's id names the comparison: both sides' steps may see both records, and then make the same one
        comparison = build_comparison(*records, rating=data[self.share.rating], blind=bool(assignment.get("blind")),
                                      swapped=bool(assignment.get("swapped")), comparison_id=assignment.get("run"))
        comparison["parting"] = parting(*records)
        kept = self.evidence.on_comparison(comparison, data, request) if self.evidence is not None else {}
        updates = self._recorded(add_to_history(data[self.share.comparisons], comparison), comparison)
        updates.update(kept)
        updates[self.share.parting] = parting_view(comparison)
        if comparison.get("blind") and not hidden(comparison):  # rated while the run was going: reveal now
            updates.update(self._reveal(comparison))
        return updates

    def _reveal(self, comparison: Mapping[str, Any]) -> Updates:
        """The blind reveal (:meth:`BlindView.reveal`); when the sides had been shuffled, each panel's selectors
        and settings too are put to what ran on that panel, so that selectors, card and stats agree (and Run
        both repeats what was rated)."""
        updates = self.blind.reveal(comparison)
        if comparison.get("swapped"):
            for panel in (self.left, self.right):
                updates.update(choices_back(panel, (comparison.get("sides") or {}).get(panel.side) or {}))
        return updates

    def rate(self, data: dict[Any, Any], request: gr.Request | None = None) -> Updates:
        """The rating: stored with the comparison shown, and in its downloads. A blind comparison's first
        rating reveals the models (and is kept as its blind rating)."""
        current = find_comparison(data[self.share.comparisons], data[self.share.history])
        if current is None:
            # Rated in the moment between both answers ending and their comparison joining the history: make it
            # now, with this rating (``side_done`` makes the same one, by the run's id, when its turn comes).
            return self.side_done(data, request)
        rated = with_rating(current, data[self.share.rating])
        kept = (self.evidence.on_rating(rated, data, request, revealing=hidden(current))
                if self.evidence is not None else {})  # the vote, kept in the database
        updates = self._recorded(add_to_history(data[self.share.comparisons], rated), rated)
        updates.update(kept)
        if hidden(current) and not hidden(rated):
            updates.update(self._reveal(rated))
            updates[self.share.parting] = parting_view(rated)
        return updates

    def rate_outputs(self) -> set[Any]:
        """Every component :meth:`rate` and :meth:`side_done` update."""
        share = self.share
        per_panel = {c for p in (self.left, self.right)
                     for c in (p.identity, p.details, p.heading, p.card, p.tokens, p.code, p.stats, p.confidence,
                               *_choices(p))}
        return {share.comparisons, share.history, share.download_json, share.download_md, share.reveal, share.parting,
                *per_panel, *(self.evidence.outputs() if self.evidence is not None else ())}

    def reopen(self, data: dict[Any, Any]) -> Updates:
        """The history dropdown: puts a past comparison's prompt, outputs, stats and rating back, and (unless it is
        still blind) each panel's model, precision and settings, so that Run both repeats it."""
        comparison = find_comparison(data[self.share.comparisons], data[self.share.history])
        if comparison is None:
            return gr.skip()
        blind = hidden(comparison)  # an unrated blind comparison stays blind when reopened
        updates: Updates = {self.prompt_box: comparison["prompt"], self.share.rating: comparison["rating"],
                            self.share.reveal: "", self.share.parting: parting_view(comparison), **self.downloads(comparison)}
        if blind:
            updates.update(self.blind.visibility(True))
        for panel in (self.left, self.right):
            record = comparison["sides"].get(panel.side) or {}
            updates[panel.output] = record.get("text", "")
            updates[panel.stats] = (stats_markdown(record["stats"], blind=blind) if record.get("stats")
                                    else error_markdown(record["error"]) if record.get("error") and not blind else "")
            updates[panel.tokens] = HIDDEN_TOKENS if blind else prompt_view_html(record.get("prompt_view"))
            updates[panel.confidence] = CONFIDENCE_HIDDEN if blind else record_confidence(record)
            updates[panel.code] = HIDDEN_CODE if blind else record.get("code") or NO_CODE
            updates[panel.record] = comparison["sides"].get(panel.side)
            if not blind:  # the selectors would name the model
                updates.update(choices_back(panel, record))
        if not blind and self.link is not None and _settings_differ(comparison):
            updates[self.link] = False  # each side gets its own settings back
        return updates

    def reopen_outputs(self) -> set[Any]:
        """Every component :meth:`reopen` updates."""
        per_panel = {c for p in (self.left, self.right)
                     for c in (p.output, p.stats, p.tokens, p.code, p.record, p.confidence, p.identity, p.details, p.heading,
                               p.model, p.custom, p.precision, p.task_prefix, p.chat_template, *p.settings.components())}
        return {self.prompt_box, self.share.rating, self.share.reveal, self.share.download_json, self.share.download_md,
                self.share.parting,
                *per_panel, *([self.link] if self.link is not None else [])}


def _choices(panel: Panel) -> list[Any]:
    """What :func:`choices_back` may set on ``panel``."""
    return [c for c in (panel.model, panel.custom, panel.precision, panel.task_prefix, panel.chat_template,
                        *panel.settings.components()) if c is not None]


def _settings_differ(comparison: Mapping[str, Any]) -> bool:
    """Whether the two sides of ``comparison`` ran with different shared settings (temperature, length…)."""
    shared = [{name: ((record or {}).get("settings") or {}).get(name) for name in SHARED_FIELDS}
              for record in (comparison.get("sides") or {}).values()]
    return len(shared) == 2 and shared[0] != shared[1]


def _values(dropdown: gr.Dropdown) -> set[Any]:
    return {choice[1] if isinstance(choice, (list, tuple)) else choice for choice in dropdown.choices or []}


def choices_back(panel: Panel, record: Mapping[str, Any]) -> Updates:
    """What a past run chose on ``panel``, put back: the model (the list's entry, else the hub id box), the precision
    it ran in, and its settings, task prefix and chat-template choice; anything the page no longer offers is left."""
    updates: Updates = {}
    model = record.get("model")
    if model:
        listed = model in _values(panel.model)
        updates[panel.custom] = "" if listed else model  # a typed hub id goes back in its box (it wins there)
        if listed:
            updates[panel.model] = model
    stats, description = record.get("stats") or {}, record.get("description") or {}
    precision = stats.get("precision") or description.get("precision")
    if precision in _values(panel.precision):
        updates[panel.precision] = precision
    settings = record.get("settings") or {}
    for name, component in zip(SHARED_FIELDS, panel.settings.components()):
        if name in settings:
            updates[component] = settings[name]
    if panel.task_prefix is not None and "task_prefix" in settings:
        updates[panel.task_prefix] = settings["task_prefix"]
    if panel.chat_template is not None and "use_chat_template" in settings:
        updates[panel.chat_template] = bool(settings["use_chat_template"])
    return updates
