"""Prompt sets on a public server (issue 24.1): a cap on a set's new tokens (refused before it starts, naming the
cap and what would fit), a wall-clock cap (the set stops, keeping its finished rows, saying why), one set at a time
per visitor, and single prompts that never queue behind sets (sets hold at most ``concurrency - 1`` slots of their
own).

The app runs in-process with the tiny models of ``conftest.py``; sets run on tiny T5 and tiny BART, slowed, while
``/generate`` runs on tiny GPT-2 at full speed. Visitors are told apart by ``X-Forwarded-For`` (uvicorn trusts it from
loopback). Figures go to ``artifacts/reliability.json`` under ``public: set caps`` and ``public: a single prompt
while sets run``.
"""

from __future__ import annotations

import html
import re
import time
import types
from typing import Any

import httpx
import pytest
from gradio_client import Client

from models.settings import PublicLimits
from tests.apphelpers import built_page, case, running_app, set_figures, slowed
from tests.test_public import XFF, post_generate, read_answer, wait_until
from tests.test_set_app import tab_data
from web.visitors import set_slots

SET_MODELS = ("tiny-t5", "tiny-bart")  # the sets' two sides, slowed; /generate runs tiny-gpt2


def big_upload(tmp_path, rows: int = 200) -> str:
    path = tmp_path / "big.txt"
    path.write_text("".join(f"Question number {i}?\n" for i in range(rows)))
    return str(path)


def run_set_values(rows: list[dict], max_new_tokens: int, batch_size: int = 1) -> list[Any]:
    """``/run_set``'s inputs in order (left, right, rows, the settings, 8-bit, batch size, precisions)."""
    return [*SET_MODELS, rows, max_new_tokens, 0.0, 1.0, 0, 1.0, 0, None, None, batch_size, "auto", "auto"]


def join_set(http: httpx.Client, app: Any, visitor: str, session: str, rows: int = 12,
             max_new_tokens: int = 64) -> httpx.Response:
    """Start a set on ``/run_set`` through the queue, as ``gradio_client`` does, from ``visitor``'s ``session``."""
    fn = next(i for i, block in app.demo.fns.items() if block.api_name == "run_set")
    data = run_set_values([{"prompt": f"Row {i}"} for i in range(rows)], max_new_tokens)
    return http.post(f"{app.url}gradio_api/queue/join", headers={XFF: visitor},
                     json={"data": data, "fn_index": fn, "session_hash": session})


def stop_sets(http: httpx.Client, app: Any, sessions: dict[str, str]) -> None:
    """Press Stop in each session (``{session: its visitor}``) until none of the visitors holds a set (a waiting
    set starts once a slot frees, and is stopped then)."""
    def stopped() -> bool:
        for session, visitor in sessions.items():
            http.post(f"{app.url}gradio_api/run/stop", json={"data": [], "session_hash": session},
                      headers={XFF: visitor})
        return not any(sum(app.page.fair_share.held(visitor, sets=True)) for visitor in sessions.values())
    wait_until(stopped, 30, "the sets to stop", interval=0.2)


@pytest.fixture
def set_models(load_tiny):
    return [load_tiny(name) for name in SET_MODELS]


# ----- the token cap -----

def test_a_set_over_the_token_cap_is_refused_naming_the_cap_on_the_page_and_on_run_set(registry, cache, tmp_path):
    limits = PublicLimits()
    expected = ("rows: 200 rows × 512 new tokens = 102400 tokens per side, over this public server's cap of "
                f"{limits.max_set_tokens} new tokens per set (and a set stops after {limits.max_set_seconds:g} s); "
                "try the first 16 rows, or at most 40 new tokens per answer")
    with case("public: set caps"):
        page, runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", limits=limits)
        handlers = page.handlers.prompt_set
        note = next(block.value for block in page.demo.blocks.values() if getattr(block, "elem_id", None) == "set-caps")
        assert f"{limits.max_set_tokens} new tokens" in note and f"{limits.max_set_seconds:g} s" in note, note
        data = tab_data(handlers.tab, upload=big_upload(tmp_path), left=SET_MODELS[0], right=SET_MODELS[1],
                        max_new_tokens=limits.max_new_tokens)
        updates = list(handlers.run(data, types.SimpleNamespace(session_hash="over")))
        assert len(updates) == 1 and html.unescape(updates[0][handlers.tab.progress]) == f"⚠️ {expected}", updates
        assert runner.running() == 0, "nothing started"
        fits = handlers._request({**data, handlers.tab.first_rows: 16})  # what the refusal suggests does fit
        assert len(fits.rows) == 16 and fits.max_seconds == limits.max_set_seconds
        page.share_handlers.exports.remove()

        with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", limits=limits) as app:
            client = Client(app.url, verbose=False)
            started = time.monotonic()
            with pytest.raises(Exception, match=re.escape(expected)):
                client.predict(*run_set_values([{"prompt": f"Row {i}"} for i in range(200)], 512), api_name="/run_set")
            refused_s = time.monotonic() - started
            assert app.runner.running() == 0
    set_figures("public: set caps", max_set_tokens=limits.max_set_tokens, max_set_seconds=limits.max_set_seconds,
                sets_per_visitor=limits.sets_per_visitor, refused_rows=200, refused_max_new_tokens=512,
                refusal=expected, refusal_s=round(refused_s, 3))


# ----- the wall-clock cap -----

def test_a_set_past_its_wall_clock_cap_stops_keeping_its_finished_rows(registry, cache, set_models):
    cap = 2.0
    with case("public: set caps"):
        page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2",
                                   limits=PublicLimits(max_set_seconds=cap))
        handlers = page.handlers.prompt_set
        data = tab_data(handlers.tab, builtin="short_answers", left=SET_MODELS[0], right=SET_MODELS[1], batch_size=1,
                        max_new_tokens=8)
        with slowed(set_models, 0.05):  # a row: 8 forward passes, over 0.4 s; 14 rows: over 5 s a side
            started = time.monotonic()
            updates = list(handlers.run(data, types.SimpleNamespace(session_hash="capped")))
            took = time.monotonic() - started
        last = updates[-1]
        assert html.unescape(last[handlers.tab.progress]).startswith(
            f"⏹ stopped: it reached this server's cap of {cap:g} s per set; the rows done are kept"), last
        result = last[handlers.tab.result]
        assert result["stopped"] and result["stop_reason"] == f"it reached this server's cap of {cap:g} s per set"
        done = {side: result["summary"][side]["rows_done"] for side in ("left", "right")}
        kept = {side: sum(1 for row in result["rows"] if (row[side] or {}).get("text")) for side in ("left", "right")}
        assert all(0 < kept[side] < len(result["rows"]) for side in kept), (done, kept)
        assert cap <= took < cap + 3, f"stopped {took:.2f} s after it started (cap {cap:g} s)"
        page.share_handlers.exports.remove()
    set_figures("public: set caps", time_cap_test_s=cap, time_capped_after_s=round(took, 2),
                time_capped_rows_kept=kept, time_capped_rows=len(result["rows"]))


# ----- the fair share -----

def test_a_second_set_from_the_same_visitor_is_refused(registry, cache, set_models):
    with case("public: set caps"):
        with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", limits=PublicLimits(), per_visitor=2,
                         unread_grace=60) as app, slowed(set_models, 0.1), httpx.Client(timeout=60) as http:
            fair = app.page.fair_share
            try:
                assert join_set(http, app, "10.0.5.1", "set-1").status_code == 200
                wait_until(lambda: fair.held("10.0.5.1", sets=True) == (1, 0), 10, "the first set to run")
                second = join_set(http, app, "10.0.5.1", "set-2")
                assert second.status_code == 429, second.text
                refusal = second.json()["detail"]
                assert refusal == ("Refused: your address already has a prompt set running, and each visitor may have "
                                   "1 at a time on this public server so that others get a turn. Wait for it to finish "
                                   "(or press Stop), then try again."), refusal
                assert join_set(http, app, "10.0.5.2", "set-3").status_code == 200, "another visitor's set is taken"
                assert post_generate(http, app.url, "10.0.5.1", max_new_tokens=2).status_code == 200, \
                    "a single prompt from the visitor whose set runs is still taken (2 per visitor)"
            finally:
                stop_sets(http, app, {"set-1": "10.0.5.1", "set-3": "10.0.5.2"})
            assert join_set(http, app, "10.0.5.1", "set-4", rows=1, max_new_tokens=1).status_code == 200, \
                "its place is free again"
    set_figures("public: set caps", second_set_refusal=refusal)


def test_a_single_prompt_gets_tokens_promptly_while_sets_from_several_visitors_run(registry, cache, set_models):
    concurrency = 3  # two set slots: three visitors' sets fill them and one waits
    with case("public: a single prompt while sets run"):
        with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", limits=PublicLimits(),
                         concurrency=concurrency, per_visitor=2, unread_grace=60) as app, \
                slowed(set_models, 0.1), httpx.Client(timeout=60) as http:
            fair = app.page.fair_share
            generate_alone = post_generate(http, app.url, "10.0.6.9", max_new_tokens=8)  # loaded and warm
            alone = read_answer(http, app.url, generate_alone.json()["event_id"])
            visitors = [f"10.0.6.{i}" for i in range(1, 4)]
            try:
                for number, visitor in enumerate(visitors):
                    assert join_set(http, app, visitor, f"sets-{number}").status_code == 200
                wait_until(lambda: sum(fair.held(v, sets=True)[0] for v in visitors) == set_slots(concurrency), 15,
                           "the set slots to fill")
                running = sum(fair.held(v, sets=True)[0] for v in visitors)
                waiting = sum(fair.held(v, sets=True)[1] for v in visitors)
                started = time.monotonic()
                response = post_generate(http, app.url, "10.0.6.9", max_new_tokens=8)
                assert response.status_code == 200, response.text
                during = read_answer(http, app.url, response.json()["event_id"])
                during_first_s = time.monotonic() - started
                still = sum(fair.held(v, sets=True)[0] for v in visitors)
            finally:
                stop_sets(http, app, {f"sets-{number}": visitor for number, visitor in enumerate(visitors)})
            assert during["event"] == "complete" and during["first_text_s"] is not None, during
            assert still == set_slots(concurrency), "the sets were still running while the single prompt was answered"
            assert during_first_s < 5, f"the single prompt's first token came {during_first_s:.2f} s after its POST"
            wait_until(lambda: app.runner.running() == 0, 20, "the stopped sets to end")
    set_figures("public: a single prompt while sets run", concurrency=concurrency, set_slots=set_slots(concurrency),
                sets_running=running, sets_waiting=waiting, first_token_alone_s=round(alone["first_text_s"], 3),
                first_token_during_sets_s=round(during_first_s, 3))
