"""Public deployments (issue 16): a fair share per visitor, bounded work and disk, quiet logs, security headers.

The app runs in-process (``tests.apphelpers.running_app``) with the tiny models of ``conftest.py``,
slowed where a request must stay in progress. Visitors are told apart by address: uvicorn trusts
``X-Forwarded-For`` from loopback, so each test client names its own. The shutdown tests start
``app.py`` in a subprocess and send it SIGTERM or SIGINT. Figures for the README's Reliability
section go to ``artifacts/reliability.json`` (``case``, ``set_figures``), under ``public: …`` sections.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import gradio as gr
import httpx
import pytest
from gradio.route_utils import delete_files_created_by_app

from models.settings import PublicLimits
from tests.apphelpers import case, running_app, set_figures, slowed
from web.api import generate_payload
from web.config import AppConfig, parse_args
from web.disk import MAX_UPLOAD_BYTES, delete_cache, folder_bytes
from web.headers import FRAME_ANCESTORS
from web.serving import launch_kwargs
from web.visitors import visitor_address

ROOT = Path(__file__).resolve().parent.parent
XFF = "X-Forwarded-For"
GRACE = 2.0  # seconds an answer may sit unread in these tests (10 s by default)
CHROMIUM = "/usr/bin/chromium"


# ----- helpers -----

def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> float:
    """Seconds until ``predicate()`` is truthy; fails after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def post_generate(http: httpx.Client, url: str, visitor: str, prompt: str = "Hello", **values: Any) -> httpx.Response:
    """``POST /gradio_api/call/generate`` from ``visitor`` (the answer is not read)."""
    return http.post(f"{url}gradio_api/call/generate", json={"data": generate_payload("tiny-gpt2", prompt, **values)},
                     headers={XFF: visitor})


def read_answer(http: httpx.Client, url: str, event_id: str, *, stop_after_first: bool = False) -> dict[str, Any]:
    """Read ``/generate``'s event stream: ``{"first_text_s", "total_s", "event", "data"}`` (the last event)."""
    start, first, event, data = time.monotonic(), None, None, None
    with http.stream("GET", f"{url}gradio_api/call/generate/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "generating" and first is None:
                    first = time.monotonic() - start
                    if stop_after_first:
                        break
                if event in ("complete", "error"):
                    break
    return {"first_text_s": first, "total_s": time.monotonic() - start, "event": event, "data": data}


def generate(http: httpx.Client, url: str, visitor: str, prompt: str = "Hello", **values: Any) -> dict[str, Any]:
    """One ``/generate`` call read to its end, timed from the POST."""
    start = time.monotonic()
    response = post_generate(http, url, visitor, prompt, **values)
    assert response.status_code == 200, response.text
    answer = read_answer(http, url, response.json()["event_id"])
    answer["wait_s"] = time.monotonic() - start
    return answer


def _page_config(http: httpx.Client, url: str) -> tuple[dict, Callable[[int], str | None]]:
    config = http.get(f"{url}config").json()
    components = {c["id"]: c for c in config["components"]}
    return {"config": config, "components": components}, lambda i: components[i]["props"].get("elem_id")


def page_run(http: httpx.Client, url: str, prompt: str, session: str, side: str,
             values: dict[str, Any] | None = None) -> tuple[dict, str]:
    """Run one panel's Run event as the page's JavaScript does, found from ``/config``: joined with the
    components' current values (``values`` by elem id replace them), its stream read to the end.
    Returns the run's dependency and the completion message (the raw line)."""
    page, elem = _page_config(http, url)
    run = next(d for d in page["config"]["dependencies"]
               if f"{side}-output" in map(elem, d["outputs"]) and d["trigger_after"] is not None and d["queue"])
    given = {"prompt": prompt, **(values or {})}
    data = [given.get(elem(i), page["components"][i]["props"].get("value")) for i in run["inputs"]]
    joined = http.post(f"{url}gradio_api/queue/join", json={"data": data, "fn_index": run["id"], "session_hash": session})
    assert joined.status_code == 200, joined.text
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if '"process_completed"' in line:
                return run, line
    pytest.fail("the run's stream ended without completing")


def page_comparison(http: httpx.Client, url: str, prompt: str, session: str) -> Any:
    """One comparison as the page runs it: each panel's Run event through the queue, then the step
    that pairs the two answers, writes the exports and points the download buttons at them (its answer)."""
    page, _elem = _page_config(http, url)
    answer = None
    for side in ("left", "right"):
        run, _line = page_run(http, url, prompt, session, side)
        # the step after a side ends writes files, so it runs in the queue (issue 24: no real work outside it)
        done = next(d for d in page["config"]["dependencies"] if d["trigger_after"] == run["id"])
        joined = http.post(f"{url}gradio_api/queue/join",
                           json={"data": [None] * len(done["inputs"]), "fn_index": done["id"], "session_hash": session})
        assert joined.status_code == 200, joined.text
        with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as stream:
            line = next(line for line in stream.iter_lines() if '"process_completed"' in line)
        message = json.loads(line.split("data: ", 1)[1])
        assert message["success"], line[:500]
        answer = message["output"]
    return answer


def page_run_fn_index(served) -> int:
    """The fn index of the page's left Run event (what a tab's Run button joins)."""
    target = served.page.handlers.run["left"]
    return next(i for i, fn in served.demo.fns.items() if fn.fn == target)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gpt2(load_tiny):
    return load_tiny("tiny-gpt2")


# ----- who is a visitor -----

def test_a_visitor_is_the_address_the_outermost_proxy_saw():
    assert visitor_address("127.0.0.1", None) == "127.0.0.1"
    assert visitor_address("127.0.0.1", "203.0.113.9") == "127.0.0.1", "no proxy hops configured: the header is ignored"
    forged = "1.1.1.1, 2.2.2.2, 203.0.113.9"  # the client wrote the first two itself
    assert visitor_address("10.16.3.80", forged, proxy_hops=1) == "203.0.113.9"
    assert visitor_address("10.16.3.80", f"{forged}, 10.0.0.5", proxy_hops=2) == "203.0.113.9"
    assert visitor_address(None, None) == "unknown"


def test_command_line_defaults_for_a_public_server(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    local, _ = parse_args([])
    assert local.limits is None and local.per_visitor == 2 and local.proxy_hops == 0
    assert parse_args(["--per-visitor", "0"])[0].per_visitor is None
    public, _ = parse_args(["--public", "--max-new-tokens-public", "100", "--max-input-tokens-public", "300"])
    assert public.limits == PublicLimits(max_new_tokens=100, max_input_tokens=300)
    monkeypatch.setenv("SPACE_ID", "someone/playground")
    space, _ = parse_args([])
    assert space.limits == PublicLimits() and space.limits.max_new_tokens == 512 and space.proxy_hops == 1
    with pytest.raises(SystemExit):
        parse_args(["--public", "--max-new-tokens-public", "0"])


# ----- a fair share per visitor -----

def test_a_flood_from_one_visitor_is_refused_at_once_while_another_is_served(registry, cache, gpt2):
    """22 unread 2048-token requests from one address: 2 accepted, 20 refused at once; another visitor
    is served as fast as alone, and the two unread ones are cancelled after the grace period."""
    with case("public: flood from one visitor"):
        with running_app(registry, cache, per_visitor=2, unread_grace=GRACE) as app, slowed(gpt2, 0.1), \
                httpx.Client(timeout=60) as http:
            generate(http, app.url, "10.0.0.2", max_new_tokens=8)  # the model loaded, the path warm
            alone = generate(http, app.url, "10.0.0.2", max_new_tokens=8)
            started = time.monotonic()
            flood = [post_generate(http, app.url, "10.0.0.1", max_new_tokens=2048, temperature=1.0) for _ in range(22)]
            flood_s = time.monotonic() - started
            during = generate(http, app.url, "10.0.0.2", max_new_tokens=8)
            codes = Counter(r.status_code for r in flood)
            assert codes == {200: 2, 429: 20}, codes
            assert during["event"] == "complete", during
            fair = app.page.fair_share
            # served while the flood's two 2048-token requests still hold their places: not queued behind them
            assert fair.held("10.0.0.1") == (2, 0) and fair.held("10.0.0.2") == (0, 0)
            freed_s = (time.monotonic() - started) + wait_until(
                lambda: fair.held("10.0.0.1") == (0, 0) and app.runner.running() == 0, 20, "the unread requests to end")
            assert freed_s >= GRACE, f"the unread requests were dropped before their grace period ({freed_s:.2f} s)"
            assert post_generate(http, app.url, "10.0.0.1", max_new_tokens=4).status_code == 200, "its place is free again"
    set_figures("public: flood from one visitor", sent=22, accepted=codes[200], refused=codes[429],
                refusal_seconds_for_all=round(flood_s, 3), other_wait_alone_s=round(alone["wait_s"], 3),
                other_wait_during_flood_s=round(during["wait_s"], 3), unread_freed_after_s=round(freed_s, 2),
                grace_s=GRACE, per_visitor=2)


def test_the_refusal_says_why_and_every_session_of_an_address_counts(registry, cache, gpt2):
    with running_app(registry, cache, per_visitor=2, unread_grace=60) as app, slowed(gpt2, 0.1), \
            httpx.Client(timeout=60) as http:
        fair = app.page.fair_share
        api = next(i for i, fn in app.demo.fns.items() if fn.api_name == "generate")
        for session in ("tab-1", "tab-2"):  # two sessions of one address, through the queue as gradio_client does
            joined = http.post(f"{app.url}gradio_api/queue/join", headers={XFF: "10.0.1.1"},
                               json={"data": generate_payload("tiny-gpt2", "Hi", max_new_tokens=100), "fn_index": api,
                                     "session_hash": session})
            assert joined.status_code == 200, joined.text
        wait_until(lambda: fair.held("10.0.1.1") == (2, 0), 10, "both to run")
        # a third session of the same address, on the page's own Run event: refused before anything runs
        third = http.post(f"{app.url}gradio_api/queue/join", headers={XFF: "10.0.1.1"},
                          json={"data": [], "fn_index": page_run_fn_index(app), "session_hash": "tab-3"})
        assert third.status_code == 429
        assert third.json()["detail"] == ("Refused: your address already has 2 requests running and 0 waiting, and each "
                                          "visitor may have 2 at a time so that others get a turn. Wait for one to "
                                          "finish (or press Stop), then try again.")
        assert post_generate(http, app.url, "10.0.1.1").status_code == 429, "the REST route too"
        assert post_generate(http, app.url, "10.0.1.2", max_new_tokens=4).status_code == 200, "another address is served"
        http.post(f"{app.url}gradio_api/run/stop", json={"data": [], "session_hash": "tab-1"},
                  headers={XFF: "10.0.1.1"})  # the page's Stop, from the session's own address
        wait_until(lambda: fair.held("10.0.1.1")[0] == 1, 10, "the stopped request to end")
        assert post_generate(http, app.url, "10.0.1.1", max_new_tokens=4).status_code == 200, "a place is free again"
        assert http.post(f"{app.url}gradio_api/run/generate", json={"data": generate_payload("tiny-gpt2", "x")}
                         ).status_code == 404, "no route around the queue"


def test_a_request_whose_client_went_away_frees_its_place(registry, cache, gpt2):
    """A stream closed after the first text (a closed tab), and a stream never opened (an unread REST call)."""
    with case("public: a request whose client went away"):
        with running_app(registry, cache, per_visitor=2, unread_grace=GRACE) as app, slowed(gpt2, 0.1), \
                httpx.Client(timeout=60) as http:
            fair = app.page.fair_share
            generate(http, app.url, "10.0.2.1", max_new_tokens=2)  # loaded and warm
            gone = post_generate(http, app.url, "10.0.2.1", max_new_tokens=2048)
            read_answer(http, app.url, gone.json()["event_id"], stop_after_first=True)  # the tab closes mid-answer
            closed_s = wait_until(lambda: fair.held("10.0.2.1") == (0, 0) and app.runner.running() == 0, 15,
                                  "the closed stream's request to end")
            assert fair.cancelled == 0, "a closed stream ends with its connection, not by the unread-answer timer"
            started = time.monotonic()
            assert post_generate(http, app.url, "10.0.2.1", max_new_tokens=2048).status_code == 200  # never read
            wait_until(lambda: app.runner.running() == 1, 10, "the unread request to start")
            unread_s = (time.monotonic() - started) + wait_until(
                lambda: fair.held("10.0.2.1") == (0, 0) and app.runner.running() == 0, 20, "the unread request to end")
            assert unread_s >= GRACE and fair.cancelled == 1, (unread_s, fair.cancelled)
    set_figures("public: a request whose client went away", closed_stream_freed_after_s=round(closed_s, 2),
                unread_freed_after_s=round(unread_s, 2), grace_s=GRACE)


# ----- bounded work -----

def test_public_limits_are_refused_by_the_api_and_shown_on_the_page(registry, cache):
    limits = PublicLimits(max_new_tokens=64, max_input_tokens=24)
    with running_app(registry, cache, limits=limits, seq2seq="tiny-t5", causal="tiny-gpt2") as app, \
            httpx.Client(timeout=60) as http:
        over = generate(http, app.url, "10.0.3.1", max_new_tokens=65)
        assert over["event"] == "error"
        assert over["data"]["error"] == ("max_new_tokens: must be a whole number between 1 and 64 on this public "
                                           "server, got 65")
        at_limit = generate(http, app.url, "10.0.3.1", "word " * 200, max_new_tokens=64)
        _text, stats = at_limit["data"][0]
        assert stats["output_tokens"] == 64 and stats["input_tokens"] == 24
        assert any("this server reads at most 24" in notice for notice in stats["notices"])

        config = http.get(f"{app.url}config").json()
        props = {c["props"].get("elem_id"): c["props"] for c in config["components"]}
        for side in ("left", "right"):
            assert props[f"{side}-max-new-tokens"]["maximum"] == 64
            assert "at most 64 new tokens" in props[f"{side}-limits"]["value"]
            assert "at most 24 input tokens" in props[f"{side}-limits"]["value"]
        # the page's own Run event refuses a crafted value beyond the slider (Gradio's slider check comes first)
        _run, completed = page_run(http, app.url, "Hi", "crafted", "left", {"left-max-new-tokens": 65})
        assert '"success":false' in completed and "Value 65 is greater than maximum value 64" in completed


# ----- bounded disk -----

def test_bytes_on_disk_after_comparisons_and_after_a_prune(registry, cache, tmp_path, monkeypatch):
    """Comparisons through the page's own HTTP calls: the exports are the only files in Gradio's cache
    (served where they are written, never copied), each holds the 20,000-character prompt once, and
    the prune Gradio runs on schedule (``delete_cache``) removes them."""
    comparisons, prompt = 4, ("A long prompt. " * 1400)[:20_000]
    cache_dir = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache_dir))  # read when the page's components are made
    with case("public: bytes on disk"):
        with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as app, \
                httpx.Client(timeout=120) as http:
            exports = app.page.share_handlers.exports
            for n in range(comparisons):
                answer = page_comparison(http, app.url, prompt, f"disk-{n}")
            served = next(v["value"]["path"] for v in answer["data"] if isinstance(v, dict)
                          and isinstance(v.get("value"), dict) and str(v["value"].get("path", "")).endswith(".json"))
            assert Path(served).parent.parent == exports.path, "served where it was written: no copy in Gradio's cache"
            files = [p for p in cache_dir.rglob("*") if p.is_file()]
            on_disk = folder_bytes(cache_dir)
            assert on_disk == exports.bytes() and len(files) == 2 * comparisons, [p.name for p in files]
            folders = {path.parent.name for path in files}
            assert len(folders) == comparisons and all(len(name) == 32 for name in folders), \
                "each comparison in its own folder, named by a keyed hash: one download address leads to no other"
            # The JSON file holds the prompt once (its code reads it from there); the Markdown file once on top and
            # once in each side's code, which runs copied out of the Markdown alone.
            copies = {".json": 1, ".md": 3}
            for path in files:
                assert path.read_text(encoding="utf-8").count(prompt) == copies[path.suffix], path.name
            prompts = comparisons * sum(copies.values()) * len(prompt)
            tokens = sum(len((side or {}).get("stats", {}).get("tokens") or ())
                         for path in files if path.suffix == ".json"
                         for side in json.loads(path.read_text(encoding="utf-8"))["sides"].values())
            assert tokens > 0, "the exports keep each answer's tokens"
            per_token = (on_disk - prompts) / tokens
            # A token with its top 5: one compact JSON line and one Markdown table row, about 500 bytes in all;
            # JSON indented token by token (25 lines each) took about 1,100.
            assert on_disk < prompts + comparisons * 2 * 12_000 + 600 * tokens, per_token
            assert app.demo.delete_cache == delete_cache(AppConfig().keep_files_s) == (300, 3600)
            delete_files_created_by_app(app.demo, age=0)  # what the schedule runs, for files older than 0 s
            after_prune = folder_bytes(cache_dir)
            assert after_prune == 0
    set_figures("public: bytes on disk", comparisons=comparisons, prompt_chars=len(prompt), files=len(files),
                bytes_after=on_disk, bytes_per_comparison=on_disk // comparisons, bytes_after_prune=after_prune,
                tokens=tokens, bytes_per_token=round(per_token),
                keep_s=AppConfig().keep_files_s)


def test_the_scheduled_prune_removes_old_exports(registry, cache, tmp_path, monkeypatch):
    keep_s, cache_dir = 2, tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache_dir))
    with case("public: scheduled prune"):
        with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", keep_files_s=keep_s) as app, \
                httpx.Client(timeout=120) as http:
            page_comparison(http, app.url, "Translate to German: good morning", "prune")
            written = time.monotonic()
            assert folder_bytes(cache_dir) > 0
            wait_until(lambda: folder_bytes(cache_dir) == 0, 4 * keep_s + 10, "Gradio's scheduled prune")
            pruned_s = time.monotonic() - written
    set_figures("public: scheduled prune", keep_s=keep_s, pruned_after_s=round(pruned_s, 1))


def test_uploads_are_bounded_to_what_the_page_needs(registry, cache, tmp_path, monkeypatch):
    cache_dir = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache_dir))
    with case("public: uploads"):
        with running_app(registry, cache) as app, httpx.Client(timeout=60) as http:  # the prompt-set tab takes a file
            def upload(size: int) -> int:
                return http.post(f"{app.url}gradio_api/upload", files={"files": ("set.txt", b"x" * size)}).status_code
            at_limit, over, far_over = upload(MAX_UPLOAD_BYTES), upload(MAX_UPLOAD_BYTES + 1), upload(20 * MAX_UPLOAD_BYTES)
            kept = folder_bytes(cache_dir)
        assert (at_limit, over, far_over) == (200, 413, 413)
        assert kept == MAX_UPLOAD_BYTES, "only the accepted file is on disk"
        with gr.Blocks() as bare:  # a page with no file input takes no upload at all
            gr.Textbox()
        _app, url, _ = bare.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                                   **launch_kwargs(AppConfig()))
        try:
            no_input = httpx.post(f"{url}gradio_api/upload", files={"files": ("a.txt", b"x" * 10)}).status_code
        finally:
            bare.close()
        assert no_input == 403
    set_figures("public: uploads", limit_bytes=MAX_UPLOAD_BYTES, at_limit=at_limit, one_byte_over=over,
                twenty_times_over=far_over, bytes_kept=kept, page_without_file_input=no_input)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_server_leaves_nothing_on_disk(tiny_dir, tmp_path, signum):
    """``python app.py``, one comparison and an upload, then SIGTERM or SIGINT: the exports and the
    cache files are gone when the process has exited."""
    cache_dir, port = tmp_path / "gradio-cache", free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(cache_dir), HF_HUB_OFFLINE="1")
    process = subprocess.Popen([sys.executable, "app.py", "--offline", "--no-preload", "--model-dir", str(tiny_dir),
                                "--seq2seq", "tiny-t5", "--causal", "tiny-gpt2", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        with case("public: nothing left after a signal"), httpx.Client(timeout=60) as http:
            def up() -> bool:
                try:
                    return http.get(url).status_code == 200
                except httpx.TransportError:
                    return process.poll() is not None
            wait_until(up, 90, "app.py to answer", interval=0.3)
            page_comparison(http, url, "Summarize: the cat sat on the mat.", "signal")
            assert http.post(f"{url}gradio_api/upload", files={"files": ("set.txt", b"x" * 1000)}).status_code == 200
            before = folder_bytes(cache_dir)
            assert before > 1000 and any(cache_dir.glob("playground-exports-*"))
            process.send_signal(signum)
            returncode = process.wait(30)
            left = folder_bytes(cache_dir)
            assert returncode == 0 and left == 0 and not any(cache_dir.glob("playground-exports-*")), \
                (returncode, left, process.stdout.read()[-2000:])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    set_figures("public: nothing left after a signal", **{f"bytes_before_{signal.Signals(signum).name}": before,
                                                         f"bytes_after_{signal.Signals(signum).name}": left})


# ----- quiet logs -----

def test_a_refusal_is_one_log_line_and_a_fault_keeps_its_traceback(registry, cache, capfd, monkeypatch):
    refusals = 30
    with case("public: log bytes per refusal"):
        with running_app(registry, cache) as app, httpx.Client(timeout=60) as http:
            capfd.readouterr()
            for _ in range(refusals):
                answer = generate(http, app.url, "10.0.4.1", top_p=0)
                assert answer["event"] == "error" and answer["data"]["error"].startswith("top_p: must be greater than 0")
            err = capfd.readouterr().err
            lines = err.splitlines()
            assert len(lines) == refusals and "Traceback" not in err, err[:3000]
            assert all(line.endswith("refused /generate [10.0.4.1]: top_p: must be greater than 0 and at most 1, got 0.0")
                       for line in lines), lines[:2]
            per_refusal = len(err.encode()) / refusals

            forged = http.post(f"{app.url}gradio_api/call/generate", headers={XFF: "10.0.4.1"},
                               json={"data": generate_payload("bad\nmodel\r\nFAKE LOG LINE", "Hi")})
            read_answer(http, app.url, forged.json()["event_id"])
            forged_err = capfd.readouterr().err
            assert forged_err.count("\n") == 1 and "refused /generate" in forged_err, "a visitor cannot add log lines"

            def broken(*_args: Any, **_kwargs: Any):
                raise RuntimeError("a real fault")
            monkeypatch.setattr(app.runner, "start", broken)
            fault = generate(http, app.url, "10.0.4.1")
            fault_err = capfd.readouterr().err
            assert fault["event"] == "error" and "Traceback" in fault_err and "RuntimeError: a real fault" in fault_err
    set_figures("public: log bytes per refusal", refusals=refusals, log_lines=len(lines),
                log_bytes_per_refusal=round(per_refusal), tracebacks=err.count("Traceback"),
                fault_traceback_bytes=len(fault_err.encode()))


# ----- headers -----

def test_every_response_carries_the_security_headers(registry, cache):
    with running_app(registry, cache) as app, httpx.Client(timeout=60) as http:
        page = http.get(app.url)
        asset = page.text.split('src="', 1)[1].split('"', 1)[0] if 'src="' in page.text else "favicon.ico"
        responses = {"page": page, "config": http.get(f"{app.url}config"), "api info": http.get(f"{app.url}gradio_api/info"),
                     "asset": http.get(asset if asset.startswith("http") else f"{app.url}{asset.lstrip('/')}"),
                     "missing": http.get(f"{app.url}no-such-route"),
                     "refused upload": http.post(f"{app.url}gradio_api/upload",
                                                 files={"files": ("x.txt", b"x" * (MAX_UPLOAD_BYTES + 1))})}
        event_id = post_generate(http, app.url, "10.0.5.1", max_new_tokens=2).json()["event_id"]
        with http.stream("GET", f"{app.url}gradio_api/call/generate/{event_id}") as stream:
            responses["event stream"] = stream
            stream.read()
    for what, response in responses.items():
        policy = response.headers.get("content-security-policy", "")
        assert f"frame-ancestors {FRAME_ANCESTORS}" in policy, what
        assert "'self' https://huggingface.co" in policy and "default-src 'self'" in policy, what
        assert response.headers.get("x-content-type-options") == "nosniff", what


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Chromium at {CHROMIUM}")
def test_the_page_works_under_its_policy_and_says_why_a_second_tab_waits(registry, cache, load_tiny):
    """Chromium, two tabs of one visitor: the first runs both sides; the second is refused at once
    with the reason on screen; no Content-Security-Policy violation is reported."""
    from playwright.sync_api import sync_playwright

    violations: list[str] = []
    models = [load_tiny("tiny-t5"), load_tiny("tiny-gpt2")]
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", per_visitor=2) as app, \
            slowed(models, 0.1), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            tabs = [browser.new_page(), browser.new_page()]
            for tab in tabs:
                tab.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
                tab.goto(app.url)
                tab.locator("#prompt textarea").fill("What is the capital of France?")
            first, second = tabs
            first.locator("#run-btn").click()
            wait_until(lambda: app.page.fair_share.held("127.0.0.1")[0] == 2, 30, "the first tab's two sides to run")
            second.locator("#run-btn").click()
            second.get_by_text("Refused: your address already has 2 requests running").first.wait_for(timeout=10_000)
            for side in ("left", "right"):
                first.locator(f"#{side}-stats", has_text="finish:").wait_for(timeout=60_000)
            assert first.locator("#right-output textarea").input_value()
        finally:
            browser.close()
    assert violations == []
