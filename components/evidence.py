"""What the page shows of the evidence kept in the database: the task and vote lines by the rating, the share
link, a shared comparison opened read-only (``?c=<id>``), and the Leaderboard tab. Gradio and plain Python only.

The numbers come from :mod:`evidence.ratings` (a :class:`~evidence.ratings.Board`); this module only lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import gradio as gr
import pandas as pd

from evidence.ratings import Board, plain_sentence
from evidence.types import TASKS

from .export import RATINGS
from .render import esc, md_text, stats_line

ALL_TASKS = "all"
TASK_CHOICES = [("every task", ALL_TASKS), *[(task, task) for task in TASKS]]
NO_VOTES = "No votes yet: rate a comparison on the Single prompt tab and it counts here."
TABLE_HEADERS = ["#", "model", "precision", "kind", "rating", "95 % interval", "votes", "length-controlled",
                 "length-controlled 95 %", "both bad", "status"]
PLOT_EMPTY = pd.DataFrame({"contestant": [], "rating": [], "kind": []})
KINDS_COLUMNS = ["task", "win_rate", "ci_low", "ci_high", "votes"]  # percent; plain names, as the plot's fields
KINDS_EMPTY = pd.DataFrame({column: [] for column in KINDS_COLUMNS})


@dataclass
class VoteControls:
    """The evidence row under the rating, by name."""

    task: gr.Dropdown  # the comparison's task (an example sets it)
    kept: gr.Markdown  # one line: what this server keeps
    saved: gr.Markdown  # the last vote: saved, or "not saved: …"
    share: gr.Button  # make the comparison readable by anyone with its link
    link: gr.Markdown  # the ?c=<id> link once shared
    delete: gr.Button  # the visitor who shared it stops sharing it (shown once shared)


def build_vote_controls(kept_line: str) -> VoteControls:
    """The row under the rating: task, what is kept, the vote's fate, the share button and link."""
    with gr.Row(elem_id="evidence"):
        task = gr.Dropdown(list(TASKS), value="other", label="Task (an example sets it; pick it before you rate)",
                           interactive=True, filterable=False, elem_id="task", scale=1)
        with gr.Column(scale=3):
            kept = gr.Markdown(esc(kept_line), elem_id="kept-line")
            saved = gr.Markdown("", elem_id="vote-saved")
    with gr.Row():
        share = gr.Button("Share a link to this comparison", size="sm", interactive=False, elem_id="share-link-btn")
        link = gr.Markdown("", elem_id="share-link")
        delete = gr.Button("Delete shared link", size="sm", variant="stop", visible=False, elem_id="delete-link-btn")
    return VoteControls(task, kept, saved, share, link, delete)


@dataclass
class SharedView:
    """A shared comparison opened from its link, read-only, above the panels."""

    box: gr.Column
    view: gr.Markdown
    run_again: gr.Button  # puts its prompt, models, precisions and settings in the panels
    comparison: gr.State  # the shared comparison (``Store.shared``), or None


def build_shared_view() -> SharedView:
    """The block a ``?c=<id>`` link fills (hidden otherwise)."""
    with gr.Column(visible=False, elem_id="shared-view") as box:
        view = gr.Markdown("")
        run_again = gr.Button("Run again: put its prompt, models and settings in the panels", size="sm",
                              elem_id="run-again")
    return SharedView(box, view, run_again, gr.State(None))


def _fence(text: Any) -> str:
    shown = esc(text)
    return "<pre>" + shown + "</pre>"


def shared_markdown(shared: Mapping[str, Any]) -> str:
    """A shared comparison (``Store.shared``) as read-only Markdown: the prompt, both answers with their models
    and stats, and the vote. Every text is escaped."""
    vote = shared.get("vote") or {}
    choice = RATINGS.get(vote.get("choice") or "", vote.get("choice"))
    lines = [f"### Shared comparison `{md_text(shared.get('id', ''))}`",
             f"{esc(shared.get('created', ''))} · task: {esc(shared.get('task', ''))}"
             + (" · blind" if shared.get("blind") else "")
             + f" · vote: **{esc(choice) if choice else 'none'}**",
             "", "**Prompt**", _fence(shared.get("prompt") or "")]
    for side in ("left", "right"):
        record = shared.get(side) or {}
        name = f"{record.get('model', '?')} ({record.get('precision', '?')}, {record.get('kind', '?')})"
        lines += ["", f"**{side.title()}: {md_text(name)}**"
                  + (f" · {md_text(record['model_class'])}" if record.get("model_class") else ""),
                  _fence(record.get("output") or "")]
        if record.get("stats"):
            lines.append(stats_line(record["stats"]))  # escapes what it shows
    return "\n".join(lines)


@dataclass
class LeaderboardControls:
    """The Leaderboard tab, by name."""

    summary: gr.Markdown  # kind against kind in plain words, or "no votes yet"
    task: gr.Dropdown
    sighted: gr.Checkbox  # count sighted votes too
    table: gr.Dataframe
    plot: gr.BarPlot
    kinds_plot: gr.BarPlot  # seq2seq's win rate against causal per task, its interval in the tooltip
    notes: gr.Markdown


def build_leaderboard() -> LeaderboardControls:
    """The Leaderboard tab's components (inside a ``gr.Tab``)."""
    summary = gr.Markdown(NO_VOTES, elem_id="board-summary")
    with gr.Row():
        task = gr.Dropdown(TASK_CHOICES, value=ALL_TASKS, label="Task", interactive=True, filterable=False,
                           elem_id="board-task")
        sighted = gr.Checkbox(False, label="Include sighted votes (given with the model names shown)",
                              elem_id="board-sighted")
    table = gr.Dataframe(headers=TABLE_HEADERS, value=None, interactive=False, wrap=True, elem_id="board-table")
    plot = gr.BarPlot(PLOT_EMPTY, x="contestant", y="rating", color="kind", title="Bradley-Terry rating (mean 1000)",
                      elem_id="board-plot")
    kinds_plot = gr.BarPlot(KINDS_EMPTY, x="task", y=KINDS_COLUMNS[1], y_lim=[0, 100], tooltip="all",
                            y_title="seq2seq win rate (%)",
                            title="Seq2seq's win rate against causal, per task (95 % interval in the tooltip)",
                            elem_id="board-kinds-plot")
    notes = gr.Markdown("", elem_id="board-notes")
    return LeaderboardControls(summary, task, sighted, table, plot, kinds_plot, notes)


def _interval(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return ""
    return f"{'open' if low is None else f'{low:.0f}'}–{'open' if high is None else f'{high:.0f}'}"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def board_table(board: Board) -> list[list[Any]]:
    """The board's rows for the table: rating, interval, votes, the length-controlled rating beside it."""
    return [[number, r.model, r.precision, r.kind, _number(r.rating), _interval(r.ci_low, r.ci_high), r.votes,
             _number(r.length_controlled_rating), _interval(r.lc_ci_low, r.lc_ci_high), r.both_bad,
             r.status if r.status != "rated" or board.groups <= 1 else f"rated (group {r.group})"]
            for number, r in enumerate(board.rows, 1)]


def board_plot(board: Board) -> pd.DataFrame:
    """The rated contestants' ratings, for Gradio's bar plot."""
    rated = [r for r in board.rows if r.rating is not None]
    return pd.DataFrame({"contestant": [f"{r.model} · {r.precision}" for r in rated],
                         "rating": [float(r.rating) for r in rated], "kind": [r.kind for r in rated]})


def _percent(share: float | None) -> float | None:
    return None if share is None else round(100.0 * share, 1)


def board_kinds_plot(board: Board) -> pd.DataFrame:
    """Kind against kind for Gradio's bar plot: seq2seq's win rate per task (votes between one seq2seq and one
    causal side, ties half) with its 95 % Wilson interval, in percent; tasks without such votes are left out."""
    rows = [k for k in board.kinds if k.win_rate is not None]
    return pd.DataFrame({KINDS_COLUMNS[0]: [k.task for k in rows],
                         KINDS_COLUMNS[1]: [_percent(k.win_rate) for k in rows],
                         KINDS_COLUMNS[2]: [_percent(k.ci_low) for k in rows],
                         KINDS_COLUMNS[3]: [_percent(k.ci_high) for k in rows],
                         KINDS_COLUMNS[4]: [k.votes for k in rows]}, columns=KINDS_COLUMNS)


def board_summary(board: Board) -> str:
    """Kind against kind in plain words (the board's task, and every task on an ``all`` board), or "no votes yet"."""
    if not board.votes:
        return NO_VOTES if board.blind_only else NO_VOTES.replace("No votes", "No votes, blind or sighted,")
    rows = [k for k in board.kinds if k.votes or k.both_bad or k.task == board.task]
    return "\n".join(f"- {esc(plain_sentence(k))}" for k in rows)


def board_notes(board: Board) -> str:
    """What the numbers alone do not say: the board's notes, and the length coefficient."""
    notes = [esc(n) for n in board.notes]
    if board.length_coefficient is not None:
        notes.append(f"Length-controlled ratings: a vote's log-odds move by {board.length_coefficient:.2f} per unit of "
                     "the answers' normalised length difference.")
    counted = f"{board.votes} {'blind ' if board.blind_only else ''}vote{'s' if board.votes != 1 else ''} counted."
    return "\n".join(f"- {n}" for n in [counted, *notes])
