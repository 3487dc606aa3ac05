"""The "Prompt set" tab: many prompts, both models, a table filling row by row, scores, charts, ratings, exports.

Gradio only; the set's rows, runs and scores come from the handlers as plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import gradio as gr

from .panel import dropdown_choices
from .render import esc, percent
from .settings import SettingsControls, SliderRange, build_settings

TABLE_HEADERS = ["#", "prompt", "reference", "left output", "right output", "left s", "right s", "left tok",
                 "right tok", "left conf", "right conf", "left score", "right score", "identical / differs", "rating"]
#: the columns that hold figures: their cells and headers never wrap (see :func:`page_headers`)
FIGURE_COLUMNS = frozenset(range(5, 13))
#: the two outputs side by side in view; each figure column as wide as its header (a wider table scrolls sideways)
COLUMN_WIDTHS = ["44px", "160px", "100px", "260px", "260px", "76px", "84px", "88px", "96px", "96px", "104px", "100px",
                 "108px", "130px", "72px"]
#: the table's filter: every row, rows whose two answers are the same text, rows where both answered otherwise
ROW_FILTERS = (("All rows", "all"), ("Identical", "identical"), ("Differs", "differs"))
UPLOAD_TYPES = [".jsonl", ".csv", ".txt"]


@dataclass
class SideSelector:
    """One side's model choice in the set tab (the same choices as the single-prompt panels)."""

    side: str
    model: gr.Dropdown
    custom: gr.Textbox
    precision: gr.Dropdown  # auto, float32, bfloat16, float16 (GPU only), 8-bit
    class_info: gr.Markdown  # which class runs it: the same answer as the single page


@dataclass
class SetTab:
    """The components of the prompt-set tab, by name."""

    builtin: gr.Dropdown  # a built-in set, or none when a file is uploaded
    upload: gr.File
    about: gr.Markdown  # the set's size and which kind of model it should favour
    left: SideSelector
    right: SideSelector
    settings: SettingsControls
    task_prefix: gr.Textbox  # seq2seq side: applied where a row has none
    batch_size: gr.Number
    first_rows: gr.Number  # run only the set's first N rows (0: every row), for a quick look
    run: gr.Button
    stop: gr.Button
    progress: gr.Markdown
    summary: gr.Markdown
    show: gr.Radio  # the table's filter (:data:`ROW_FILTERS`)
    table: gr.Dataframe
    score_box: gr.Column  # holds the score chart; hidden when the set has no scores
    score_plot: gr.BarPlot
    score_note: gr.Markdown  # "no references: no scores" in the chart's place
    latency_plot: gr.BarPlot
    length_plot: gr.ScatterPlot
    rating_row: gr.Number  # the table row being rated (1-based); set by clicking a row
    rating: gr.Radio
    download_csv: gr.DownloadButton
    download_json: gr.DownloadButton
    download_md: gr.DownloadButton
    result: gr.State  # the finished (or stopped) set as a JSON-ready dict


def _side(side: str, title: str, choices: Sequence[tuple[str, str, str | None]], value: str | None,
          allow_custom: bool, precision: tuple[Sequence[tuple[str, str]], str]) -> SideSelector:
    with gr.Column():
        gr.Markdown(f"**{esc(title)}**")
        model = gr.Dropdown(dropdown_choices(choices), value=value, label="Model", elem_id=f"set-{side}-model",
                            filterable=True)
        custom = gr.Textbox(label="…or a Hugging Face hub id", visible=allow_custom, max_lines=1, max_length=96,
                            elem_id=f"set-{side}-custom")
        precision_choices, precision_info = precision
        precision_box = gr.Dropdown(list(precision_choices), value="auto", label="Precision", info=precision_info,
                                    filterable=False, elem_id=f"set-{side}-precision")
        with gr.Accordion("What is this architecture?", open=False):
            class_info = gr.Markdown("", elem_id=f"set-{side}-class")
    return SideSelector(side, model, custom, precision_box, class_info)


def _outputs() -> dict[str, Any]:
    """The progress line, the summary, the three charts, the table and its filter, by :class:`SetTab` field."""
    progress = gr.Markdown("", elem_id="set-progress")
    summary = gr.Markdown("", elem_id="set-summary")
    with gr.Row():
        with gr.Column(elem_id="set-score-box") as score_box:
            score_plot = gr.BarPlot(x="bar", y="score", color="side", title="Score per side (0–100)",
                                    x_title="metric · side", x_label_angle=-30, elem_id="set-score-plot", y_lim=[0, 100])
        score_note = gr.Markdown("", visible=False, elem_id="set-score-note")
        # bars start from zero on their own (a cut axis would make 0.31 s look 10× 0.27 s); an open upper limit
        # (``y_lim=[0, None]``) cut the tallest bar off at the top
        latency_plot = gr.BarPlot(x="side", y="seconds per row", color="side", title="Time per row (s)",
                                  elem_id="set-latency-plot")
        length_plot = gr.ScatterPlot(x="row", y="output tokens", color="side", title="Output length per row",
                                     elem_id="set-length-plot")
    show = gr.Radio(list(ROW_FILTERS), value="all", label="Show", elem_id="set-filter",
                    info="identical: both models gave the same text; differs: both answered, otherwise")
    table = gr.Dataframe(headers=page_headers(TABLE_HEADERS), interactive=False, wrap=True, elem_id="set-table",
                         max_height=600, column_widths=COLUMN_WIDTHS, show_search="search")
    return {"progress": progress, "summary": summary, "show": show, "table": table, "score_box": score_box,
            "score_plot": score_plot, "score_note": score_note, "latency_plot": latency_plot, "length_plot": length_plot}


def build_set_tab(*, sets: Sequence[tuple[str, str]], choices: Mapping[str, Sequence[tuple[str, str, str | None]]],
                  values: Mapping[str, str | None], allow_custom: bool,
                  precision: tuple[Sequence[tuple[str, str]], str],
                  limits: Mapping[str, SliderRange], max_upload_mb: float, note: str = "") -> SetTab:
    """Build the tab's components (inside a ``gr.Tab``).

    Args:
        sets: ``(label, name)`` of the built-in sets.
        choices: per side (``"left"``, ``"right"``), the registry's ``(name, label, unavailable_reason)`` rows.
        values: the model each side starts with.
        allow_custom: show the hub-id boxes.
        precision: ``(choices, info)`` for the precision selectors (``models.precision_options()``).
        limits: the settings schema's slider ranges.
        max_upload_mb: the largest file accepted.
        note: a line under the controls (a public server's caps per set), none when empty.
    """
    gr.Markdown("Run many prompts through both models at once. Pick a built-in set or upload a file "
                f"(`.jsonl` with `prompt` and optional `reference`, `task_prefix`; `.csv` with a `prompt` column; "
                f"`.txt`, one prompt a line; at most 200 rows and {max_upload_mb:g} MB).")
    with gr.Row():
        builtin = gr.Dropdown(sets, value=sets[0][1] if sets else None, label="Built-in set", elem_id="set-builtin")
        upload = gr.File(label="…or upload a set", file_types=UPLOAD_TYPES, type="filepath", elem_id="set-upload")
    about = gr.Markdown("", elem_id="set-about")
    with gr.Row():
        left = _side("left", "Left model", choices["left"], values["left"], allow_custom, precision)
        right = _side("right", "Right model", choices["right"], values["right"], allow_custom, precision)
    settings = build_settings({}, limits, label="Generation settings (both sides)", elem_prefix="set")
    with gr.Row():
        task_prefix = gr.Textbox("", label="Task prefix, read by seq2seq models (rows may set their own)", max_lines=1,
                                 max_length=200, elem_id="set-prefix")
        batch_size = gr.Number(0, precision=0, minimum=0, maximum=64, label="Batch size (0 = chosen for the model)",
                               info="1 = one row at a time, no padding (greedy: the single-prompt answers). Batches "
                                    "are several times faster; in bfloat16 padding can flip a near-tied token in some "
                                    "rows, in float32 rarely.",
                               elem_id="set-batch-size")
        first_rows = gr.Number(0, precision=0, minimum=0, label="Try the first N rows (0 = every row)",
                               info="A quick look before the whole set: only rows 1 to N run.", elem_id="set-first-rows")
    gr.Markdown(note, visible=bool(note), elem_id="set-caps")
    with gr.Row():
        run = gr.Button("Run set", variant="primary", elem_id="set-run")
        stop = gr.Button("Stop", variant="stop", elem_id="set-stop")
    outputs = _outputs()
    with gr.Row():
        rating_row = gr.Number(None, precision=0, label="Row to rate (click a row)", elem_id="set-rating-row")
        rating = gr.Radio([("Left better", "left"), ("Right better", "right"), ("Tie", "tie")], label="Rating",
                          elem_id="set-rating")
    with gr.Row():
        download_csv = gr.DownloadButton("Download CSV", interactive=False, size="sm", elem_id="set-export-csv")
        download_json = gr.DownloadButton("Download JSON", interactive=False, size="sm", elem_id="set-export-json")
        download_md = gr.DownloadButton("Download Markdown", interactive=False, size="sm", elem_id="set-export-md")
    return SetTab(builtin=builtin, upload=upload, about=about, left=left, right=right, settings=settings,
                  task_prefix=task_prefix, batch_size=batch_size, first_rows=first_rows, run=run, stop=stop, **outputs, rating_row=rating_row,
                  rating=rating, download_csv=download_csv, download_json=download_json, download_md=download_md,
                  result=gr.State(None))


def agreement(row: Mapping[str, Any]) -> str | None:
    """``"identical"``, ``"differs"`` (both sides answered, otherwise), or ``None`` while a side has not finished
    (or for a row from before rows said so)."""
    if row.get("identical"):
        return "identical"
    return "differs" if "identical" in row and row.get("left") and row.get("right") else None


def _agreement_cell(row: Mapping[str, Any]) -> str:
    """``"identical"``, ``"differs at word 4"``, ``"differs"`` (only the spacing, or a side failed), or ``""``."""
    state, word = agreement(row), row.get("differs_at")
    return f"differs at word {word}" if state == "differs" and word else state or ""


def score_column(summary: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(name, label)`` of the score the table's score columns hold (the set's first score), or ``None``."""
    labels = (summary or {}).get("score_labels") or {}
    name = next(iter(labels), None)
    return None if name is None else (name, labels[name][0])


def table_headers(score_label: str | None = None) -> list[str]:
    """:data:`TABLE_HEADERS` with the score columns naming their score (``"left chrF"``) when it is known."""
    if not score_label:
        return list(TABLE_HEADERS)
    return [f"{header.split()[0]} {score_label}" if header.endswith(" score") else header for header in TABLE_HEADERS]


def page_headers(headers: Sequence[str]) -> list[str]:
    """The headers as the page shows them: a figure column's header is one unbreakable line (``left s``, not
    ``left`` over ``s``)."""
    return [header.replace(" ", "\u00a0") if i in FIGURE_COLUMNS else header for i, header in enumerate(headers)]


def _side_cells(row: Mapping[str, Any], name: str, score: str | None) -> tuple[str, Any, Any, str, Any]:
    """One side's output, seconds, tokens, mean probability and its ``score`` (else its first score)."""
    result = row.get(name) or {}
    stats = result.get("stats") or {}
    text = result.get("text", "") if not stats.get("error") else f"⚠️ {stats['error']}"
    scores = (row.get("scores") or {}).get(name, {})
    value = scores.get(score) if score else next(iter(scores.values()), None)
    seconds, prob = stats.get("seconds"), result.get("mean_prob")
    return (text, None if seconds is None else round(seconds, 2), stats.get("output_tokens"),
            "" if prob is None else percent(prob), None if value is None else round(value, 1))


def table_rows(rows: Sequence[Mapping[str, Any]], show: str = "all", score: str | None = None) -> list[list[Any]]:
    """The table's rows from the set's row dicts (``None`` where a side has not finished that row yet), only those
    that ``show`` keeps (``"all"``, ``"identical"`` or ``"differs"``, see :func:`agreement`); each keeps its
    number in the set. The score columns hold ``score`` (a score's name), else each row's first score."""
    out = []
    for number, row in enumerate(rows, 1):
        if show != "all" and agreement(row) != show:
            continue
        left, right = _side_cells(row, "left", score), _side_cells(row, "right", score)
        out.append([number, row.get("prompt", ""), row.get("reference") or "",
                    *[cell for pair in zip(left, right) for cell in pair], _agreement_cell(row), row.get("rating") or ""])
    return out


def table_value(result: Mapping[str, Any], show: str = "all") -> dict[str, list]:
    """The table as the page shows it: the rows ``show`` keeps, under headers that name the score they hold."""
    column = score_column(result.get("summary"))
    return {"headers": page_headers(table_headers(column[1] if column else None)),
            "data": table_rows(result.get("rows", []), show, column[0] if column else None)}
