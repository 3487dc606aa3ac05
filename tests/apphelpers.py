"""Start the playground in-process on a free loopback port, for API, browser and load tests,
and record the figures the README reports."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import gradio as gr

from app import AppConfig, Playground, free_port, serving
from models import Kind, ModelCache, ModelRegistry

__all__ = ["RunningApp", "running_app", "free_port", "generation_threads", "slowed", "describe", "count_figures",
           "set_figures"]

ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "reliability.json"


@dataclass
class RunningApp:
    """A launched app: its URL, the Blocks, and the Playground behind the handlers."""

    url: str
    demo: gr.Blocks
    playground: Playground


@contextlib.contextmanager
def running_app(registry: ModelRegistry, cache: ModelCache | None = None, **config: object) -> Iterator[RunningApp]:
    """Serve the app with ``registry`` (and a fresh cache unless given) on a free loopback port.

    Extra keyword arguments go to :class:`app.AppConfig` (e.g. ``seq2seq="tiny-t5"``).
    """
    cfg = AppConfig(online=False, preload=False, **config)  # type: ignore[arg-type]
    with serving(cfg, registry=registry, cache=cache if cache is not None else ModelCache(4)) as (demo, url):
        yield RunningApp(url, demo, demo.playground)


def generation_threads() -> list[threading.Thread]:
    """Live worker threads started by models.stream (named ``generate[...]``)."""
    return [t for t in threading.enumerate() if t.name.startswith("generate[") and t.is_alive()]


@contextlib.contextmanager
def slowed(loaded, seconds: float) -> Iterator[None]:
    """Make every forward pass of ``loaded.model`` take at least ``seconds`` longer (restored afterwards)."""
    model = loaded.model
    original = model.forward

    def slow_forward(*args, **kwargs):
        time.sleep(seconds)
        return original(*args, **kwargs)

    model.forward = slow_forward
    try:
        yield
    finally:
        del model.forward  # back to the class's forward


def describe(demo: gr.Blocks, side: str, model: str | None, custom: str | None, eight_bit: bool = False) -> dict[str, str]:
    """Run the page's selection handler for one panel: ``{"card": ..., "class": ...}`` Markdown."""
    panel = demo.panels[Kind(side)]
    out = demo.playground.describe(panel)({panel.model: model, panel.custom: custom, panel.eight_bit: eight_bit})
    return {"card": out[panel.card], "class": out[panel.class_info]}


# ----- figures for the README's Reliability section (artifacts/reliability.json) -----

_FIGURES: dict[str, dict[str, Any]] = {}
_FIGURES_LOCK = threading.Lock()


def _write_figures() -> None:
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(ARTIFACT.read_text())
    except (OSError, ValueError):
        data = {}
    data.update(_FIGURES)
    tmp = ARTIFACT.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(ARTIFACT)


def set_figures(section: str, **values: Any) -> None:
    """Set values in this session's ``section`` and rewrite the JSON file (other sections kept)."""
    with _FIGURES_LOCK:
        _FIGURES.setdefault(section, {}).update(values, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
        _write_figures()


def count_figures(section: str, **increments: int) -> None:
    """Add to counters in this session's ``section`` and rewrite the JSON file (other sections kept)."""
    with _FIGURES_LOCK:
        figures = _FIGURES.setdefault(section, {})
        for key, n in increments.items():
            figures[key] = figures.get(key, 0) + n
        figures["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write_figures()
