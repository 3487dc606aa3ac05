"""Public deployments (issue 24, items 4 and 6): page events that do real work cannot starve generation, sessions are
bounded, and crafted input (deeply nested JSON, values a slider cannot take) is refused in one log line.

The app runs in-process (``tests.apphelpers.running_app``) with the tiny models of ``conftest.py``; visitors are told
apart by ``X-Forwarded-For`` from loopback, as in ``tests/test_public.py``. Figures go to
``artifacts/reliability.json`` under ``public: …`` sections.
"""

from __future__ import annotations

import inspect
import json
import statistics
import threading
import time
from typing import Any

import httpx
import pytest

from models.settings import PublicLimits
from models.sets.rows import PromptSetError, parse_prompt_file
from tests.apphelpers import case, running_app, set_figures
from web.api import generate_payload
from web.sessions import MAX_SESSIONS, BoundedSessions
from web.set_handlers import UPLOADS, about_set

XFF = "X-Forwarded-For"
PER_CLIENT_HZ = 5  # events a second from each flooding client
NESTED = b'{"prompt": "fine"}\n' + b"[" * 100_000 + b"\n"  # line 2: deeper than the JSON reader goes


def big_set() -> bytes:
    """A valid .jsonl set of just under 1 MB (200 rows of about 4,900 characters)."""
    rows = [json.dumps({"prompt": f"row {n}: " + "word " * 980, "reference": "x"}) for n in range(200)]
    return ("\n".join(rows) + "\n").encode()


def upload(http: httpx.Client, url: str, name: str, data: bytes) -> dict[str, Any]:
    """POST one file to Gradio's upload route; the ``FileData`` the page then sends."""
    answer = http.post(f"{url}gradio_api/upload", files={"files": (name, data)})
    assert answer.status_code == 200, answer.text
    return {"path": answer.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def join(http: httpx.Client, url: str, fn_index: int, data: list[Any], session: str, visitor: str) -> str:
    """Join the queue with one event as the page's JavaScript does; its completion message (the raw line)."""
    joined = http.post(f"{url}gradio_api/queue/join", headers={XFF: visitor},
                       json={"data": data, "fn_index": fn_index, "session_hash": session})
    assert joined.status_code == 200, joined.text
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session},
                     headers={XFF: visitor}) as stream:
        for line in stream.iter_lines():
            if '"process_completed"' in line:
                return line
    pytest.fail("the event's stream ended without completing")


def generate_rate(http: httpx.Client, url: str, visitor: str, tokens: int) -> float:
    """One ``/generate`` call of ``tokens`` new tokens read to its end: the tokens per second it reports."""
    started = http.post(f"{url}gradio_api/call/generate", headers={XFF: visitor},
                        json={"data": generate_payload("tiny-gpt2", "Once upon a time", max_new_tokens=tokens)})
    assert started.status_code == 200, started.text
    event, data = None, None
    with http.stream("GET", f"{url}gradio_api/call/generate/{started.json()['event_id']}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("complete", "error"):
                data = json.loads(line[6:])
                break
    assert event == "complete", data
    _text, stats = data[0]
    assert stats["output_tokens"] >= 8, stats
    return float(stats["tokens_per_second"])


def stop_round_trip(http: httpx.Client, url: str, session: str) -> float:
    """Seconds for one press of the page's Stop (``/stop``, outside the queue)."""
    start = time.perf_counter()
    answer = http.post(f"{url}gradio_api/run/stop", json={"data": [], "session_hash": session},
                       headers={XFF: "10.9.0.9"})
    assert answer.status_code == 200, answer.text
    return time.perf_counter() - start


def measure(http: httpx.Client, url: str) -> tuple[float, float]:
    """The visitor's median tokens/s over three answers and its median Stop round trip over ten presses."""
    rates = [generate_rate(http, url, "10.9.0.9", 48) for _ in range(3)]
    stops = [stop_round_trip(http, url, "visitor") for _ in range(10)]
    return statistics.median(rates), statistics.median(stops)


def fn_index(app: Any, fn: Any) -> int:
    return next(i for i, block_fn in app.demo.fns.items() if block_fn.fn == fn)


# ----- item 4: no event outside the queue starves generation -----

def test_a_flood_of_set_tab_events_leaves_another_visitor_its_speed_and_stop(registry, cache, load_tiny):
    """Six clients re-sending the set tab's ``about_set`` event for one uploaded 1 MB file, five times a second each,
    while another visitor generates with the tiny model and presses Stop: the file is parsed once, the event runs
    in the queue, and the visitor keeps most of its speed and a fast Stop."""
    load_tiny("tiny-gpt2")
    with case("public: out-of-queue flood"):
        with running_app(registry, cache, limits=PublicLimits()) as app, httpx.Client(timeout=60) as http:
            about = next(fn for fn in app.demo.fns.values() if fn.fn is about_set)
            assert about.queue and about.concurrency_limit == 2, "about_set runs in the queue, a few at a time"
            outside = [fn.name for fn in app.demo.fns.values() if not fn.queue and fn.fn is not None]
            assert not {"about_set", "filter_table", "rate", "ended", "share_clicked", "load"} & set(outside), outside
            file = upload(http, app.url, "big.jsonl", big_set())
            index = fn_index(app, about_set)
            first = join(http, app.url, index, [None, file], "flood-0", "10.9.1.0")
            assert "200 rows" in first, first[:300]
            generate_rate(http, app.url, "10.9.0.9", 8)  # loaded and warm
            alone_rate, alone_stop = measure(http, app.url)

            parses, calls, running = UPLOADS.parses, [0] * 6, threading.Event()
            running.set()

            def flood(n: int) -> None:
                with httpx.Client(timeout=60) as own:
                    while running.is_set():
                        sent = time.monotonic()
                        line = join(own, app.url, index, [None, file], f"flood-{n}", f"10.9.1.{n + 1}")  # its tab
                        assert "200 rows" in line
                        calls[n] += 1
                        # at most PER_CLIENT_HZ events a second each: the page's file line, re-sent as fast as a
                        # client would (before the fix, 30 parses a second of 1 MB took every core)
                        time.sleep(max(0.0, 1 / PER_CLIENT_HZ - (time.monotonic() - sent)))
            clients = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(6)]
            for client in clients:
                client.start()
            try:
                time.sleep(1.0)
                flood_rate, flood_stop = measure(http, app.url)
            finally:
                running.clear()
                for client in clients:
                    client.join(30)
            reparsed = UPLOADS.parses - parses
            assert sum(calls) >= 12, calls
            assert reparsed == 0, f"{sum(calls)} events for one upload parsed it {reparsed} more times"
            # The speed and Stop figures are measurements for the reliability table, not assertions (timings on a
            # shared 2-core machine vary run to run); what must hold is asserted above: the work runs in the queue
            # and the upload is not parsed again. Before the fix the flood left 4 % (5.7 of 142 tok/s) and Stop 274 ms.
    set_figures("public: out-of-queue flood", clients=6, events=sum(calls), file_bytes=len(big_set()),
                parses_during_flood=reparsed, alone_tok_s=round(alone_rate, 1), flood_tok_s=round(flood_rate, 1),
                alone_stop_ms=round(alone_stop * 1000), flood_stop_ms=round(flood_stop * 1000))


def test_an_upload_is_parsed_once_and_again_only_when_it_changes(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "b"}\n')
    before = UPLOADS.parses
    answers = {about_set(None, str(path)) for _ in range(20)}
    assert answers == {"**set.jsonl**: 2 rows · task other · 0 with a reference"}
    assert UPLOADS.parses - before == 1
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": "c"}\n')  # a new size: read again
    assert "3 rows" in about_set(None, str(path)) and UPLOADS.parses - before == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(NESTED)
    refusals = {about_set(None, str(bad)) for _ in range(5)}  # a refusal is kept too
    assert refusals == {"⚠️ line 2: JSON nested too deeply to read (a row is one object whose values are text)"}
    assert UPLOADS.parses - before == 3


def test_sessions_are_bounded_per_visitor_and_in_total(registry, cache):
    """A public server keeps at most ``MAX_SESSIONS`` sessions, and one address that mints session hashes evicts only
    its own oldest ones beyond its bound; a local server keeps Gradio's default."""
    with case("public: sessions"):
        with running_app(registry, cache, limits=PublicLimits()) as app, httpx.Client(timeout=60) as http:
            holder = app.demo.server_app.state_holder
            assert isinstance(holder, BoundedSessions) and app.demo.state_holder is holder
            assert holder.capacity == app.demo.state_session_capacity == MAX_SESSIONS
            http.post(f"{app.url}gradio_api/run/stop", json={"data": [], "session_hash": "other-visitor"},
                      headers={XFF: "10.9.2.1"})
            rate, holder.per_minute = holder.per_minute, None  # the count bound first, without the rate
            minted = holder.per_visitor + 40
            started = time.perf_counter()
            for n in range(minted):
                answer = http.post(f"{app.url}gradio_api/run/stop", json={"data": [], "session_hash": f"minted-{n}"},
                                   headers={XFF: "10.9.2.2"})
                assert answer.status_code == 200
            per_session_ms = (time.perf_counter() - started) * 1000 / minted
            kept = holder.sessions_of("10.9.2.2")
            assert kept == holder.per_visitor and holder.evicted == minted - holder.per_visitor
            assert "other-visitor" in holder.session_data, "another visitor's session is kept"
            assert f"minted-{minted - 1}" in holder.session_data and "minted-0" not in holder.session_data
            evicted = holder.evicted
            holder.per_minute = rate  # the rate: a burst of per_visitor new sessions, then per_minute a minute
            started, codes = time.monotonic(), []
            for n in range(holder.per_visitor + 20):
                answer = http.post(f"{app.url}gradio_api/run/stop", json={"data": [], "session_hash": f"fast-{n}"},
                                   headers={XFF: "10.9.2.3"})
                codes.append(answer.status_code)
            refill = (time.monotonic() - started) * rate / 60
            assert codes[:holder.per_visitor] == [200] * holder.per_visitor
            assert 1 <= codes.count(429) and codes.count(200) <= holder.per_visitor + refill + 1, codes
            assert "Refused: your address opened" in answer.json()["detail"]
            assert "other-visitor" in holder.session_data and holder.sessions_of("10.9.2.2") == holder.per_visitor
        with running_app(registry, cache) as local:
            assert not isinstance(local.demo.server_app.state_holder, BoundedSessions)
    set_figures("public: sessions", total=MAX_SESSIONS, per_visitor=holder.per_visitor, minted=minted, kept=kept,
                evicted=evicted, ms_per_new_session=round(per_session_ms, 1), per_minute=rate,
                fast_sent=len(codes), fast_accepted=codes.count(200), fast_refused=codes.count(429))


# ----- item 6: crafted input reaches no traceback -----

def test_nested_json_is_refused_by_its_line():
    with pytest.raises(PromptSetError) as refused:
        parse_prompt_file("set.jsonl", NESTED)
    assert refused.value.line == 2 and str(refused.value).startswith("line 2: JSON nested too deeply")
    with pytest.raises(PromptSetError, match=r"^line 1: .*must be text"):  # nested, but readable: the usual rule
        parse_prompt_file("set.jsonl", b'{"prompt": ' + b"[" * 50 + b"]" * 50 + b"}\n")


def refused_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def test_crafted_input_is_one_log_line_each_no_traceback(registry, cache, capfd):
    """A nested-bracket ``.jsonl`` through the set tab's run event and ``/run_set``'s deeply nested rows, and values a
    slider cannot take sent to the page's run event: each refused, naming what was wrong, in one log line."""
    with case("public: crafted input"):
        with running_app(registry, cache, limits=PublicLimits(), seq2seq="tiny-t5", causal="tiny-gpt2") as app, \
                httpx.Client(timeout=60) as http:
            config = http.get(f"{app.url}config").json()
            elem = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
            values = {c["id"]: c["props"].get("value") for c in config["components"]}
            set_run = fn_index(app, next(fn.fn for fn in app.demo.fns.values() if fn.name == "run_set_tab"))
            page_run = fn_index(app, app.page.handlers.run["left"])
            nested = upload(http, app.url, "nested.jsonl", NESTED)
            capfd.readouterr()
            cases: list[tuple[str, str, str]] = []  # (what, completion or answer, log)

            inputs = app.demo.fns[set_run].inputs
            data = [nested if block is app.page.handlers.prompt_set.tab.upload else values.get(block._id)
                    for block in inputs]
            line = join(http, app.url, set_run, data, "nested-tab", "10.9.3.1")
            cases.append(("set tab: nested .jsonl", line, capfd.readouterr().err))
            assert "line 2: JSON nested too deeply" in line

            run_set_fn = next(fn.fn for fn in app.demo.fns.values() if fn.api_name == "run_set")
            defaults = [p.default for name, p in inspect.signature(run_set_fn).parameters.items()
                        if name not in ("left", "right", "rows", "request")]

            def run_set(rows_json: str) -> httpx.Response:
                body = '{"data": ["tiny-t5", "tiny-gpt2", ' + rows_json + ", " + json.dumps(defaults)[1:-1] + "]}"
                return http.post(f"{app.url}gradio_api/call/run_set", content=body,
                                 headers={XFF: "10.9.3.1", "content-type": "application/json"})
            started = run_set("[" + "[" * 500 + "]" * 500 + "]")  # nested rows the JSON reader can read
            assert started.status_code == 200, started.text
            answer = http.get(f"{app.url}gradio_api/call/run_set/{started.json()['event_id']}").text
            cases.append(("/run_set: nested rows", answer, capfd.readouterr().err))
            assert "row 1 (rows[0])" in answer, answer[:300]
            # deeper than the JSON reader goes: refused by the body parser before any handler, with no log at all
            unreadable = run_set("[" * 50_000 + "]" * 50_000)
            assert unreadable.status_code == 400 and "error parsing the body" in unreadable.text, unreadable.text
            assert capfd.readouterr().err == "", "no traceback for an unreadable body"

            run_inputs = app.demo.fns[page_run].inputs
            for what, elem_id, value, expected in [
                    ("page run: max new tokens over its slider", "left-max-new-tokens", 100_000,
                     "greater than maximum"),
                    ("page run: max new tokens as text", "left-max-new-tokens", "many", "must be a number, got 'many'"),
                    ("page run: temperature as a list", "left-temperature", [1, 2], "must be a number, got [1, 2]"),
                    ("page run: top_p below its slider", "left-top-p", -5, "less than minimum")]:
                data = [value if elem.get(block._id) == elem_id else values.get(block._id) for block in run_inputs]
                data = [("Hi" if elem.get(block._id) == "prompt" else v) for block, v in zip(run_inputs, data)]
                line = join(http, app.url, page_run, data, f"crafted-{elem_id}-{value!r}", "10.9.3.2")
                cases.append((what, line, capfd.readouterr().err))
                assert '"success":false' in line and expected in line, line[:400]
            lines = {what: refused_lines(err) for what, _answer, err in cases}
            for what, logged in lines.items():
                assert len(logged) == 1 and "refused" in logged[0], (what, logged[:5])
                assert "Traceback" not in logged[0], what
            assert "[10.9.3.2]" in lines["page run: max new tokens as text"][0]
            label = next(c["props"]["label"] for c in config["components"]
                         if c["props"].get("elem_id") == "left-max-new-tokens")
            for what in ("page run: max new tokens over its slider", "page run: max new tokens as text"):
                assert f": {label}: " in lines[what][0], (what, lines[what][0])  # the component is named
            assert app.runner.running() == 0
    per_refusal = sum(len(err.encode()) for _what, _answer, err in cases) / len(cases)
    set_figures("public: crafted input", refusals=len(cases), log_lines=sum(map(len, lines.values())),
                tracebacks=sum("Traceback" in err for _w, _a, err in cases), log_bytes_per_refusal=round(per_refusal),
                cases=[what for what, _a, _e in cases])
