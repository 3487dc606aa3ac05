"""Holds under load and faults: a bounded load test on loopback, and faults injected through the app.

Everything runs against an app launched in-process on 127.0.0.1 (``tests.apphelpers.running_app``)
with private registries and caches: the models slowed down or broken here are private copies,
loaded from the session's tiny model folders, so the shared session cache is never touched.
Every loop and wait is bounded; no assertion depends on a tight timing (the machine is shared).

Figures for the README (``artifacts/reliability.json``, git-ignored): the load test's measured
numbers (requests sent / completed / cancelled / busy / lost, threads, memory) in the "load"
section; each injected fault is one case of the "faults" section (:func:`tests.apphelpers.case`:
``tried`` when it runs, ``behaved`` only when its checks, the next request included, pass).

Models are slowed down with :func:`tests.apphelpers.slowed`; forward passes are counted, and a
fault is raised at a chosen one, with a torch forward pre-hook (:func:`forward_calls`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import gc
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
import torch
from gradio_client import Client

from models import GenerationSettings, Kind, LoadedModel, ModelCache, ModelRegistry
from models import loader as loader_module
from models.request import RunRequest
from models.types import FinishReason
from tests.apphelpers import Served, case, generation_threads, running_app, set_figures, slowed
from web.api import generate_payload
from web.handlers import render_event

PROMPT = "The cat walks to the river"

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


def rss_mb() -> float:
    """This process's resident memory in MiB (VmRSS from /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def new_client(url: str) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def close_client(client: Client) -> None:
    """Stop a gradio_client Client's heartbeat and its thread pools (it has no full close of its own)."""
    client.close()  # waits up to 1 s for the heartbeat thread
    for pool in ("executor", "helper_executor", "stream_executor"):
        executor = getattr(client, pool, None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def close_clients(clients: list[Client]) -> None:
    """Close many clients at once (each close may wait a second for its heartbeat thread)."""
    closers = [threading.Thread(target=close_client, args=(c,), daemon=True) for c in clients]
    for thread in closers:
        thread.start()
    for thread in closers:
        thread.join(timeout=10)


def thread_census() -> tuple[int, int]:
    """``(threads of the app and the test, AnyIO pool workers)`` alive in this process.

    Gradio runs sync handlers on AnyIO's worker pool, which keeps idle workers around
    (bounded by its limiter, 40 threads by default) instead of ending them: those are
    counted apart. Closed gradio_client clients' heartbeat threads are not counted: they
    are client-side and end at the server's next heartbeat (every 15 s).
    """
    names = [t.name for t in threading.enumerate() if not t.name.endswith("(_stream_heartbeat)")]
    pooled = sum(1 for name in names if name.startswith("AnyIO worker thread"))
    return len(names) - pooled, pooled


@contextlib.contextmanager
def forward_calls(loaded: LoadedModel, fail_at: int | None = None) -> Iterator[dict[str, int]]:
    """Count the forward passes of ``loaded.model`` (``calls["n"]``, one per generated token) with a torch
    forward pre-hook, removed afterwards; with ``fail_at``, that pass raises ``RuntimeError("injected fault")``."""
    calls = {"n": 0}

    def count(_module: Any, _args: Any) -> None:
        calls["n"] += 1  # GIL-atomic enough for a bound
        if calls["n"] == fail_at:
            raise RuntimeError("injected fault")

    handle = loaded.model.register_forward_pre_hook(count)
    try:
        yield calls
    finally:
        handle.remove()


def assert_no_generation_left(app: Served, timeout: float = 15.0) -> None:
    assert wait_until(lambda: not generation_threads() and app.runner.running() == 0, timeout), \
        f"generation still running: threads={generation_threads()} running={app.runner.running()}"


# ---------------------------------------------------------------------------------------------
# 1. load
# ---------------------------------------------------------------------------------------------

N_REQUESTS = 20  # concurrent clients, one request each
N_CANCEL = 4  # gradio_client jobs cancelled half-way (job.cancel())
N_DISCONNECT = 4  # raw HTTP streams closed half-way (the connection dropped, as a closed tab does)
QUEUE_SIZE, CONCURRENCY = 10, 2
MAX_NEW_TOKENS = 16  # requests that run to the end
LONG_NEW_TOKENS = 200  # requests that are cancelled or dropped: only a stopped worker spares the rest
ANSWER_BOUND = 90.0  # seconds within which every request must get an answer of some kind
THREAD_SLACK = 2  # threads beyond the baseline allowed to remain (besides AnyIO's bounded pool)
ANYIO_POOL_MAX = 40  # AnyIO's default thread limiter, which gradio's launch keeps
RSS_GROWTH_LIMIT_MB = 200.0


def _classify_exception(exc: BaseException, cancelled_by_us: bool) -> tuple[str, str]:
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, TimeoutError):  # concurrent.futures.TimeoutError is TimeoutError since 3.11
        return "lost", text
    if "Queue is full" in str(exc):
        return "busy", text
    if cancelled_by_us and (isinstance(exc, concurrent.futures.CancelledError)
                            or (isinstance(exc, KeyError) and "'data'" in str(exc))):
        # gradio_client answers a job cancelled while streaming with a CancelledError, or with a
        # KeyError on the empty completion the server sends for it: both mean "cancelled".
        return "cancelled", text
    return "error", text


def _gradio_client_request(client: Client, index: int, cancel: bool) -> tuple[str, str]:
    job = client.submit(model="tiny-gpt2", prompt=f"{PROMPT} {index}", max_new_tokens=LONG_NEW_TOKENS if cancel else MAX_NEW_TOKENS,
                        api_name="/generate")
    cancelled = False
    if cancel:  # half-way: once some text has streamed (or it already ended)
        wait_until(lambda: len(job.outputs()) >= 2 or job.done(), ANSWER_BOUND, interval=0.02)
        if not job.done():
            cancelled = job.cancel()
    try:
        text, stats = job.result(timeout=ANSWER_BOUND)
    except BaseException as exc:  # noqa: BLE001 - classified, never swallowed silently
        return _classify_exception(exc, cancelled)
    if stats.get("finish_reason") in {"length", "eos"} and text:
        return "completed", stats["finish_reason"]
    if cancelled and stats.get("finish_reason") == "stopped":
        return "cancelled", "stopped"
    return "error", f"unexpected answer {stats.get('finish_reason')!r}"


def _disconnecting_request(url: str, index: int) -> tuple[str, str]:
    """Gradio's plain HTTP API: join the queue, read the event stream, drop the connection half-way."""
    data = generate_payload("tiny-gpt2", f"{PROMPT} {index}", max_new_tokens=LONG_NEW_TOKENS)
    with httpx.Client(timeout=httpx.Timeout(ANSWER_BOUND)) as http:
        response = http.post(f"{url}gradio_api/call/generate", json={"data": data})
        if response.status_code == 503:
            return "busy", response.text[:200]
        if response.status_code != 200:
            return "error", f"HTTP {response.status_code}: {response.text[:200]}"
        event_id = response.json()["event_id"]
        generating = 0
        try:
            with http.stream("GET", f"{url}gradio_api/call/generate/{event_id}") as stream:
                for line in stream.iter_lines():
                    if line.startswith("event: generating"):
                        generating += 1
                        if generating >= 2:
                            return "cancelled", "disconnected half-way"  # leaving the block closes the connection
                    elif line.startswith("event: complete"):
                        return "completed", "before the disconnect"
                    elif line.startswith("event: error"):
                        return "error", next(stream.iter_lines(), "")[:300]
        except httpx.TimeoutException as exc:
            return "lost", f"no answer within {ANSWER_BOUND:g} s ({type(exc).__name__})"
    return "lost", "stream ended without an answer"


@pytest.fixture(scope="module")
def load_models(tiny_dir: Path):
    """Private registry and cache over the session's tiny model folders (models loaded here are private copies)."""
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    return registry, ModelCache(4)


@pytest.mark.timeout(300)
def test_bounded_load_with_cancels_and_disconnects(load_models):
    registry, cache = load_models
    loaded = cache.get(registry.resolve("tiny-gpt2"))
    with slowed(loaded, 0.02), forward_calls(loaded) as forwards:
        with running_app(registry, cache, queue_size=QUEUE_SIZE, concurrency=CONCURRENCY) as app:
            warm_up_client = new_client(app.url)
            answer = warm_up_client.predict(model="tiny-gpt2", prompt=PROMPT, max_new_tokens=4, api_name="/generate")
            assert answer[1]["output_tokens"] == 4
            close_client(warm_up_client)
            gc.collect()
            forwards["n"] = 0
            (threads_before, pooled_before), rss_before = thread_census(), rss_mb()

            kinds = ["cancel"] * N_CANCEL + ["disconnect"] * N_DISCONNECT
            kinds += ["plain"] * (N_REQUESTS - len(kinds))
            clients: list[Client] = []
            clients_lock = threading.Lock()
            outcomes: list[tuple[str, str] | None] = [None] * N_REQUESTS
            ready = threading.Barrier(N_REQUESTS + 1)

            def worker(index: int, kind: str) -> None:
                try:
                    client = None
                    if kind != "disconnect":
                        client = new_client(app.url)  # one client = one session, like one browser tab
                        with clients_lock:
                            clients.append(client)
                    ready.wait(timeout=120)
                    if kind == "plain":
                        time.sleep(0.2)  # the cancelling ones get in first, so cancels really happen mid-run
                    if kind == "disconnect":
                        outcomes[index] = _disconnecting_request(app.url, index)
                    else:
                        outcomes[index] = _gradio_client_request(client, index, cancel=kind == "cancel")
                except BaseException as exc:  # noqa: BLE001
                    outcomes[index] = ("error", f"{type(exc).__name__}: {exc}"[:300])

            workers = [threading.Thread(target=worker, args=(index, kind), name=f"load-client-{index}", daemon=True)
                       for index, kind in enumerate(kinds)]
            for thread in workers:
                thread.start()
            ready.wait(timeout=120)
            started = time.perf_counter()
            for thread in workers:
                thread.join(timeout=max(1.0, ANSWER_BOUND + 30 - (time.perf_counter() - started)))
            seconds = time.perf_counter() - started
            for index, thread in enumerate(workers):
                if thread.is_alive() or outcomes[index] is None:
                    outcomes[index] = ("lost", "no answer of any kind within the bound")

            # afterwards: nothing left running, the app still answers, threads and memory back
            assert_no_generation_left(app)
            forward_passes = forwards["n"]
            check_client = new_client(app.url)
            text, stats = check_client.predict(model="tiny-gpt2", prompt="still there?", max_new_tokens=6,
                                               api_name="/generate")
            assert stats["finish_reason"] == "length" and stats["output_tokens"] == 6 and text
            close_clients([check_client, *clients])
            del clients[:]
            gc.collect()
            wait_until(lambda: thread_census()[0] <= threads_before + THREAD_SLACK, 20)
            threads_after, pooled_after = thread_census()
            rss_growth = rss_mb() - rss_before

    tally = {kind: sum(1 for outcome in outcomes if outcome[0] == kind) for kind in
             ("completed", "cancelled", "busy", "error", "lost")}
    disconnected = sum(1 for outcome in outcomes if outcome == ("cancelled", "disconnected half-way"))
    by_client = {kind: dict(collections.Counter(outcome[0] for client_kind, outcome in zip(kinds, outcomes)
                                                if client_kind == kind))
                 for kind in ("plain", "cancel", "disconnect")}
    figures = dict(requests_sent=N_REQUESTS, **tally, disconnected=disconnected, queue_size=QUEUE_SIZE,
                   concurrency=CONCURRENCY, seconds=round(seconds, 1), threads_before=threads_before,
                   threads_after=threads_after, anyio_pool_before=pooled_before, anyio_pool_after=pooled_after,
                   rss_growth_mb=round(rss_growth, 1), forward_passes=forward_passes,
                   by_client=by_client)
    print(f"load: {N_REQUESTS} requests sent, {tally['completed']} completed, {tally['cancelled']} cancelled "
          f"({disconnected} by disconnect), {tally['busy']} busy, {tally['error']} errors, {tally['lost']} lost "
          f"in {seconds:.1f} s; threads {threads_before} -> {threads_after} (+ AnyIO pool {pooled_before} -> {pooled_after}); "
          f"RSS {rss_growth:+.0f} MB")
    set_figures("load", **figures)

    detail = "\n".join(f"  #{index} {kinds[index]}: {outcome}" for index, outcome in enumerate(outcomes))
    assert sum(tally.values()) == N_REQUESTS, detail
    assert tally["lost"] == 0, detail
    assert tally["error"] == 0, "only busy refusals and cancellations are expected under load:\n" + detail
    assert tally["completed"] >= 1 and tally["busy"] >= 1 and tally["cancelled"] >= 1, detail
    # a cancelled or dropped request must stop its worker: left running, each would make ~LONG_NEW_TOKENS passes
    budget = sum({"completed": MAX_NEW_TOKENS + 1 if kind == "plain" else LONG_NEW_TOKENS + 1,
                  "cancelled": LONG_NEW_TOKENS // 2}.get(outcome[0], 0) for kind, outcome in zip(kinds, outcomes))
    assert forward_passes <= budget, f"{forward_passes} forward passes: cancelled generations kept running\n{detail}"
    assert threads_after <= threads_before + THREAD_SLACK, (threads_before, threads_after,
                                                            sorted(t.name for t in threading.enumerate()))
    assert pooled_after <= ANYIO_POOL_MAX, f"{pooled_after} AnyIO workers: more than its limiter allows"
    assert rss_growth < RSS_GROWTH_LIMIT_MB, f"RSS grew by {rss_growth:.0f} MB"


# ---------------------------------------------------------------------------------------------
# 2. faults through the app
# ---------------------------------------------------------------------------------------------

CORRUPT = ("bad-config", "garbage-weights", "truncated-weights", "missing-weights")


@pytest.fixture(scope="module")
def fault_models(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Private registry and cache: the tiny models (private copies once loaded) and four corrupt folders."""
    root = tmp_path_factory.mktemp("fault-models")
    source = tiny_dir / "tiny-gpt2"
    (root / "bad-config").mkdir()
    (root / "bad-config" / "config.json").write_text("{ this is not json")
    for name in CORRUPT[1:]:
        shutil.copytree(source, root / name)
    (root / "garbage-weights" / "model.safetensors").write_bytes(os.urandom(4096))
    weights = (source / "model.safetensors").read_bytes()
    (root / "truncated-weights" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (root / "missing-weights" / "model.safetensors").unlink()
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    registry.register_dir(root)
    return registry, ModelCache(8)


@pytest.fixture(scope="module")
def fault_app(fault_models) -> Iterator[Served]:
    registry, cache = fault_models
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as app:
        yield app


@pytest.fixture(scope="module")
def client(fault_app: Served) -> Iterator[Client]:
    api_client = new_client(fault_app.url)
    yield api_client
    close_client(api_client)


def _next_request_works(client: Client, model: str = "tiny-t5", tokens: int = 5) -> None:
    text, stats = client.predict(model=model, prompt=PROMPT, max_new_tokens=tokens, api_name="/generate")
    assert stats["finish_reason"] == "length" and stats["output_tokens"] == tokens and text


FAULT_AT_CALL = 8  # the forward pass that raises: 7 tokens are generated (and streamed) before it


def test_exception_at_a_chosen_token_through_the_api(fault_app, fault_models, client):
    registry, cache = fault_models
    loaded = cache.get(registry.resolve("tiny-gpt2"))  # a private copy: the session cache is not involved
    with case("faults"):
        # slowed, so that the steps before the fault stream separately
        with slowed(loaded, 0.02), forward_calls(loaded, fail_at=FAULT_AT_CALL):
            job = client.submit(model="tiny-gpt2", prompt=PROMPT, max_new_tokens=40, api_name="/generate")
            with pytest.raises(Exception) as info:
                job.result(timeout=60)
        streamed = [text for text, _stats in job.outputs()]
        message = str(info.value)
        assert "injected fault" in message and "RuntimeError" in message, message
        assert "Traceback" not in message and 'File "' not in message, message
        assert streamed and all(streamed) and len(set(streamed)) >= 2, f"text must stream before the fault: {streamed}"
        assert all(later.startswith(earlier) for earlier, later in zip(streamed, streamed[1:]))
        assert repr(streamed[-1][-200:]) in message, "the error quotes the partial text streamed before it"
        assert_no_generation_left(fault_app)
        _next_request_works(client, "tiny-gpt2", 8)


def test_exception_at_a_chosen_token_on_the_page(fault_app, fault_models, client):
    registry, cache = fault_models
    loaded = cache.get(registry.resolve("tiny-gpt2"))
    panel = fault_app.page.panels[Kind.CAUSAL]
    with case("faults"):
        with slowed(loaded, 0.02), forward_calls(loaded, fail_at=FAULT_AT_CALL):
            run = fault_app.runner.start(registry.resolve("tiny-gpt2"),
                                         RunRequest(prompt=PROMPT, settings=GenerationSettings(max_new_tokens=40)), "fault-test")
            *_, finished = run.events()
        result = finished.result
        assert result.stats.finish_reason is FinishReason.ERROR and "injected fault" in result.stats.error, result
        assert result.text, "the partial text generated before the fault is kept"
        shown = render_event(finished, panel, None)  # what the page's panel shows
        assert shown[panel.output] == result.text, "the page keeps the partial text next to the error"
        assert "injected fault" in shown[panel.stats] and "finish: **error**" in shown[panel.stats], shown[panel.stats]
        assert_no_generation_left(fault_app)
        _next_request_works(client, "tiny-gpt2", 8)


def test_model_that_never_produces_a_first_token(load_models):
    registry, _shared = load_models
    cache = ModelCache(2)
    loaded = cache.get(registry.resolve("tiny-llama"))  # private copy in a private cache
    with running_app(registry, cache, first_token_timeout=1.0) as app:
        api_client = new_client(app.url)
        try:
            with case("faults"):
                # each pass takes longer than the app's first-token timeout; bounded, so the worker ends by itself
                with slowed(loaded, 2.5):
                    with pytest.raises(Exception) as info:
                        api_client.predict(model="tiny-llama", prompt=PROMPT, max_new_tokens=50, api_name="/generate")
                message = str(info.value)
                assert "no first token within 1 s" in message, message
                assert "Traceback" not in message
                assert_no_generation_left(app, timeout=20)  # the abandoned worker ends at its next token
                _next_request_works(api_client, "tiny-llama", 5)
        finally:
            close_client(api_client)


@pytest.mark.parametrize("name", CORRUPT)
def test_corrupt_model_folder_gives_a_clear_error_and_next_request_works(fault_app, client, name):
    with case("faults"):
        with pytest.raises(Exception) as info:
            client.predict(model=name, prompt=PROMPT, max_new_tokens=4, api_name="/generate")
        message = str(info.value)
        assert message.startswith(f"{name}: the model files are missing or corrupt"), message
        assert "Traceback" not in message
        assert fault_app.runner.engines["transformers"].cache.peek(name) is None, "a failed load is not cached"
        _next_request_works(client)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    MemoryError(),
], ids=["torch-oom", "memory-error"])
def test_out_of_memory_while_loading(fault_app, client, monkeypatch, error):
    name = "tiny-bart"  # never loaded by this module's app before: every attempt really loads
    fault_app.runner.engines["transformers"].cache.clear()

    class NoRoom:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            raise error

    with case("faults"):
        with monkeypatch.context() as patch:
            patch.setitem(loader_module.AUTO_CLASSES, Kind.SEQ2SEQ, NoRoom)
            with pytest.raises(Exception) as info:
                client.predict(model=name, prompt=PROMPT, max_new_tokens=4, api_name="/generate")
        message = str(info.value)
        assert message.startswith(f"not enough memory to load {name}"), message
        assert "Traceback" not in message
        _next_request_works(client, name)  # the same model loads once memory is there
