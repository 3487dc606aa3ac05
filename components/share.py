"""Rate and share: the rating, this session's history of comparisons, and the downloads."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .export import RATING_CHOICES
from .render import PARTING_CSS


@dataclass
class ShareControls:
    """The components of the rate-and-share section, by name."""

    rating: gr.Radio  # "left" / "right" / "tie", stored with the comparison
    history: gr.Dropdown  # this session's comparisons, newest first; picking one reopens it
    download_json: gr.DownloadButton
    download_md: gr.DownloadButton
    comparisons: gr.State  # list of comparison dicts (components.export), per session
    reveal: gr.Markdown  # blind mode: which model ran on which side, once rated
    blind_run: gr.State  # the current run's blind assignment: {"blind": bool, "swapped": bool}, or None
    parting: gr.HTML  # identical, or where the two answers part (and the word diff), once both sides finish


def build_share() -> ShareControls:
    """Build the section under the two panels."""
    parting = gr.HTML("", css_template=PARTING_CSS, elem_id="parting")
    with gr.Column(elem_id="share"):
        gr.Markdown("### Rate and share\nEach finished run is kept below for this browser session; download it to share.")
        with gr.Row():
            rating = gr.Radio(RATING_CHOICES, value=None, label="Which answer is better?", elem_id="rating")
            history = gr.Dropdown([], value=None, label="This session's comparisons (pick one to reopen it)",
                                  interactive=True, filterable=False, elem_id="history")
        reveal = gr.Markdown("", elem_id="reveal")  # right under the rating that revealed the models
        with gr.Row():
            download_json = gr.DownloadButton("Download JSON", value=None, interactive=False, size="sm", elem_id="export-json")
            download_md = gr.DownloadButton("Download Markdown", value=None, interactive=False, size="sm", elem_id="export-md")
        comparisons = gr.State([])
    return ShareControls(rating, history, download_json, download_md, comparisons, reveal, gr.State(None), parting)
