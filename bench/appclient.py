"""The app launched in-process on loopback, and the clients the benchmark talks to it with.

Two clients: ``gradio_client`` (what the brief and the README show users), and a raw
SSE reader on Gradio's ``/gradio_api/call/<api>`` route. ``gradio_client`` 2.x takes
streamed messages off its queue with a 50 ms sleep when the queue is empty
(``gradio_client.utils.stream_sse_v1plus``), so every update it reports lands
0-50 ms after the server sent it; the raw reader shows what the app itself costs.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import httpx

from app import AppConfig, Playground, serving
from models import ModelCache, ModelRegistry


@dataclass
class LaunchedApp:
    url: str
    playground: Playground


@contextlib.contextmanager
def launched_app(registry: ModelRegistry, cache: ModelCache, **config: Any) -> Iterator[LaunchedApp]:
    """``app.serving`` with the benchmark's registry and cache."""
    cfg = AppConfig(online=registry.online, preload=False, **config)
    with serving(cfg, registry=registry, cache=cache) as (demo, url):
        yield LaunchedApp(url, demo.playground)


def api_args(model: str, prompt: str, max_new_tokens: int) -> list[Any]:
    """Positional inputs of ``/generate``: greedy, no penalty, full precision."""
    return [model, prompt, max_new_tokens, 0.0, 1.0, 0, 1.0, 0, False]


@dataclass
class ClientRun:
    """One ``/generate`` request as a client saw it (times in seconds from the request)."""

    first_text: float | None = None
    done: float | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def generate_via_client(client: Any, model: str, prompt: str, max_new_tokens: int) -> ClientRun:
    """``client.submit(..., api_name="/generate")``, iterated to the end."""
    run = ClientRun()
    started = time.perf_counter()
    job = client.submit(*api_args(model, prompt, max_new_tokens), api_name="/generate")
    for text, stats in job:
        if text and run.first_text is None:
            run.first_text = time.perf_counter() - started
        run.text = text
        if stats:
            run.stats = stats
    result = job.result()
    run.done = time.perf_counter() - started
    if not run.stats and isinstance(result, (list, tuple)) and len(result) == 2:
        run.text, run.stats = result
    return run


def generate_via_sse(base_url: str, model: str, prompt: str, max_new_tokens: int, timeout: float = 300.0, *,
                     session_hash: str | None = None, on_text: Callable[[], None] | None = None) -> ClientRun:
    """POST ``/gradio_api/call/generate`` then read its SSE stream with httpx, no polling.

    ``session_hash`` ties the request to a session (so that session's ``/stop`` stops it);
    ``on_text`` is called once, when the first text arrives.
    """
    run = ClientRun()
    api = base_url.rstrip("/") + "/gradio_api/call/generate"
    body: dict[str, Any] = {"data": api_args(model, prompt, max_new_tokens)}
    if session_hash:
        body["session_hash"] = session_hash
    with httpx.Client(timeout=timeout) as http:
        started = time.perf_counter()
        answer = http.post(api, json=body)
        answer.raise_for_status()
        event_id = answer.json()["event_id"]
        event = None
        with http.stream("GET", f"{api}/{event_id}") as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"/generate did not complete within {timeout:g} s")
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event in ("generating", "complete", "error"):
                    data = json.loads(line.split(":", 1)[1])
                    if event == "error":
                        raise RuntimeError(f"/generate failed: {data}")
                    if not data:  # another event of the same session (a /stop call) completing
                        continue
                    if len(data) == 1:  # gr.api's (text, stats) tuple is one output holding both
                        data = data[0]
                    text, stats = data
                    if text and run.first_text is None:
                        run.first_text = time.perf_counter() - started
                        if on_text:
                            on_text()
                    run.text = text
                    if stats:
                        run.stats = stats
                    if event == "complete":
                        break
        run.done = time.perf_counter() - started
    return run


def stop_via_http(base_url: str, session_hash: str, timeout: float = 30.0) -> None:
    """POST ``/gradio_api/run/stop`` for ``session_hash``: the direct, unqueued call the page's
    Stop button makes (the endpoint has ``queue=False``); it answers when the handler has run."""
    answer = httpx.post(base_url.rstrip("/") + "/gradio_api/run/stop", json={"data": [], "session_hash": session_hash},
                        timeout=timeout)
    answer.raise_for_status()


def generation_threads() -> list[threading.Thread]:
    """Live worker threads started by models.stream (named ``generate[<model name>]``)."""
    return [t for t in threading.enumerate() if t.name.startswith("generate[") and t.is_alive()]


class ThreadWatch:
    """Records when each ``generate[...]`` thread is first seen and when it ends (polled every ``interval`` s)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.started: dict[threading.Thread, float] = {}
        self.ended: dict[threading.Thread, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-thread-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter()
            live = set(generation_threads())
            for t in live:
                self.started.setdefault(t, now)
            for t in list(self.started):
                if t not in live and t not in self.ended:
                    self.ended[t] = now
            time.sleep(self.interval)

    def __enter__(self) -> "ThreadWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def end_of(self, model_name: str) -> float | None:
        """When the (last seen) thread of ``model_name`` ended."""
        ends = [end for t, end in self.ended.items() if t.name == f"generate[{model_name}]"]
        return max(ends) if ends else None
