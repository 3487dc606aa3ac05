"""Start the playground in-process on a loopback port, for API, browser and load tests; slow models down;
and count the figures the README reports from the cases that really ran."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import types
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from models import Kind, ModelCache, ModelRegistry
from models.loader import LoadedModel
from models.remote import Endpoint
from models.run import Runner
from models.stream import generation_threads
from web.config import AppConfig
from web.page import Page, build_page
from web.serving import Served, build_runner, serving

__all__ = ["Served", "running_app", "built_page", "run_side", "merged", "show_selection", "generation_threads", "slowed",
           "case", "set_figures"]

ARTIFACT = Path(__file__).resolve().parent.parent / "artifacts" / "reliability.json"


@contextlib.contextmanager
def running_app(registry: ModelRegistry, cache: ModelCache | None = None, *, endpoints: Sequence[Endpoint] = (),
                **config: Any) -> Iterator[Served]:
    """Serve the app with ``registry`` (and a fresh cache unless given) on a loopback port, with ``endpoints``
    (inference servers already connected) registered as models.

    Extra keyword arguments go to :class:`web.config.AppConfig` (e.g. ``seq2seq="tiny-t5"``).
    """
    cfg = AppConfig(online=False, preload=False, **config)
    with serving(cfg, registry=registry, cache=cache if cache is not None else ModelCache(4),
                 endpoints=list(endpoints)) as served:
        yield served


def built_page(registry: ModelRegistry, cache: ModelCache, *, endpoints: Sequence[Endpoint] = (),
               **config: Any) -> tuple[Page, Runner]:
    """The page (not served) and its runner over ``registry``, ``cache`` and ``endpoints``, for calling handlers directly."""
    cfg = AppConfig(online=False, preload=False, **config)
    runner = build_runner(cfg, registry=registry, cache=cache, endpoints=list(endpoints))
    return build_page(runner, cfg), runner


@contextlib.contextmanager
def slowed(models: LoadedModel | Iterable[LoadedModel], seconds: float) -> Iterator[None]:
    """Make every forward pass of each model take at least ``seconds`` longer (restored afterwards)."""
    models = [models] if isinstance(models, LoadedModel) else list(models)
    for loaded in models:
        original = loaded.model.forward

        def slow_forward(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            time.sleep(seconds)
            return _original(*args, **kwargs)

        loaded.model.forward = slow_forward  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        for loaded in models:
            vars(loaded.model).pop("forward", None)


# ----- figures for the README's Reliability section (artifacts/reliability.json) -----

_FIGURES: dict[str, dict[str, Any]] = {}
_FIGURES_LOCK = threading.Lock()


def _write_figures() -> None:
    """Merge this process's sections into the file. The read-merge-replace holds an exclusive lock on a
    lock file beside it, so test runs writing at once keep each other's sections."""
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACT.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(ARTIFACT.read_text())
        except (OSError, ValueError):
            data = {}
        data.update(_FIGURES)
        tmp = ARTIFACT.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        tmp.replace(ARTIFACT)


def _count(section: str, key: str) -> None:
    with _FIGURES_LOCK:
        figures = _FIGURES.setdefault(section, {})
        figures[key] = figures.get(key, 0) + 1
        figures["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write_figures()


@contextlib.contextmanager
def case(section: str) -> Iterator[None]:
    """One case of a README figure: counted as ``tried`` when it starts and as ``behaved`` only when
    the block (its checks included) finishes without an exception. A figure can only grow by running a case."""
    _count(section, "tried")
    yield
    _count(section, "behaved")


def set_figures(section: str, **values: Any) -> None:
    """Set measured values in this session's ``section`` and rewrite the JSON file (other sections kept)."""
    with _FIGURES_LOCK:
        _FIGURES.setdefault(section, {}).update(values, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
        _write_figures()


# ----- the page's handlers, called directly (no server) -----

SETTINGS_VALUES = (6, 0.0, 1.0, 0, 1.0, 0, 0)  # max_new_tokens=6, greedy, everything else off


def run_side(page: Page, kind: Kind, prompt: str, model: str, *, session: str = "test",
             precision: str = "auto") -> list[dict]:
    """Run one side's real handler to the end with the page's components; return every update it yielded."""
    left, panel, controls = page.panels[Kind.SEQ2SEQ], page.panels[kind], page.controls
    data = {controls.prompt: prompt, controls.link: True, panel.model: model, panel.custom: "", panel.precision: precision,
            **dict(zip(left.settings.components(), SETTINGS_VALUES)),
            **dict(zip(panel.settings.components(), SETTINGS_VALUES))}
    if panel.task_prefix is not None:
        data[panel.task_prefix] = ""
    if panel.chat_template is not None:
        data[panel.chat_template] = True
    return list(page.handlers.run[kind](data, types.SimpleNamespace(session_hash=session)))


def merged(updates: list[dict]) -> dict:
    """The last value each component received."""
    out: dict = {}
    for update in updates:
        out.update(update)
    return out


def show_selection(page: Page, kind: Kind, model: str | None, custom: str | None,
                   precision: str | bool = "auto") -> dict[str, str]:
    """Run the page's selection handler for one panel: ``{"card": ..., "class": ...}`` Markdown."""
    panel = page.panels[kind]
    out = page.handlers.selection[kind]({panel.model: model, panel.custom: custom, panel.precision: precision})
    return {"card": out[panel.card], "class": out[panel.class_info]}
