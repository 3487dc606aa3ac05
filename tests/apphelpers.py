"""Start the playground in-process on a free loopback port, for API, browser and load tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Iterator

import gradio as gr

from app import AppConfig, Playground, build_app, launch_kwargs
from models import ModelCache, ModelRegistry


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    """A launched app: its URL, the Blocks, and the Playground behind the handlers."""

    url: str
    demo: gr.Blocks
    playground: Playground


@contextlib.contextmanager
def running_app(registry: ModelRegistry, cache: ModelCache | None = None, **config: object) -> Iterator[RunningApp]:
    """Launch ``build_app`` with ``registry`` (and a fresh cache unless given); close it afterwards.

    Extra keyword arguments go to :class:`app.AppConfig` (e.g. ``seq2seq="tiny-t5"``).
    """
    cfg = AppConfig(online=False, preload=False, **config)  # type: ignore[arg-type]
    demo = build_app(cfg, registry=registry, cache=cache if cache is not None else ModelCache(4))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", demo, demo.playground)
    finally:
        demo.close()


def generation_threads() -> list[threading.Thread]:
    """Live worker threads started by models.stream (named ``generate[...]``)."""
    return [t for t in threading.enumerate() if t.name.startswith("generate[") and t.is_alive()]


@contextlib.contextmanager
def slowed(loaded, seconds: float) -> Iterator[None]:
    """Make every forward pass of ``loaded.model`` take at least ``seconds`` longer (restored afterwards)."""
    import time

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
