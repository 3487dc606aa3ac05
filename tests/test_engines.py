"""One engine interface: an engine added by one module (``tests/fakeengine.py``) and one registration line
streams through the run layer, a page panel, ``/generate`` and ``/run_set`` exactly like the built-in ones."""

from __future__ import annotations

import contextlib
import types
from typing import Iterator

import pytest
from gradio_client import Client

from components.settings import SHARED_FIELDS
from models import Kind, ModelCache, ModelRegistry, ModelSource
from models.request import RunRequest
from models.run import Chunk, Finished, Ready, Runner
from web.config import AppConfig
from web.page import build_page
from web.serving import build_runner, launch_kwargs

from .apphelpers import merged
from .fakeengine import CannedEngines, canned_answer

PROMPT = "one two three four five six"


def canned_runner(tiny_dir, delay: float = 0.0) -> tuple[Runner, CannedEngines, AppConfig]:
    """The app's own runner (its local and remote engines) with the canned engine registered beside them."""
    config = AppConfig(online=False, preload=False)
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    runner = build_runner(config, registry=registry, cache=ModelCache(2), endpoints=[])
    canned = CannedEngines("canned", delay=delay)
    runner.engines.register(canned)  # the one registration line
    for source in canned.sources():
        registry.register_endpoint(source)
    return runner, canned, config


@contextlib.contextmanager
def served(tiny_dir) -> Iterator[str]:
    runner, _canned, config = canned_runner(tiny_dir)
    page = build_page(runner, config)
    _app, url, _ = page.demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    try:
        yield url
    finally:
        page.demo.close()
        page.share_handlers.exports.remove()


def test_the_run_layer_streams_a_registered_engine_and_never_asks_its_kind(tiny_dir):
    runner, canned, _ = canned_runner(tiny_dir)
    request = RunRequest.parse(prompt=PROMPT, settings={"max_new_tokens": 4}, precision="float32")
    events = list(runner.start(runner.resolve("canned"), request, "s").events())
    assert isinstance(events[0], Ready) and events[0].code == f"print({canned_answer(PROMPT)!r})\n"
    assert [e.text for e in events if isinstance(e, Chunk)] == ["six", "six five", "six five four", "six five four three"]
    result = events[-1].result
    assert isinstance(events[-1], Finished) and result.text == "six five four three"
    assert result.stats.finish_reason.value == "length" and result.stats.output_tokens == 4
    assert canned.engines["canned"].prepared[-1].notices == ["canned, precision float32"], "the parsed precision reaches it"
    assert result.to_dict()["description"]["served_by"] == "served by canned (canned words)"


def test_stop_reaches_a_registered_engine(tiny_dir):
    runner, _canned, _ = canned_runner(tiny_dir, delay=0.05)
    run = runner.start(runner.resolve("canned"), RunRequest.parse(prompt=PROMPT), "stopper")
    for event in run.events():
        if isinstance(event, Chunk) and event.text == "six five":
            assert runner.stop("stopper") == 1
        if isinstance(event, Finished):
            result = event.result
    assert result.stats.finish_reason.value == "stopped" and result.text.startswith("six five")
    assert len(result.text.split()) < 6 and runner.running() == 0


def test_a_page_panel_streams_a_registered_engine_and_shows_its_card(tiny_dir):
    runner, _canned, config = canned_runner(tiny_dir)
    page = build_page(runner, config)
    panel, left, controls = page.panels[Kind.CAUSAL], page.panels[Kind.SEQ2SEQ], page.controls
    values = dict(max_new_tokens=3, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, no_repeat_ngram_size=0,
                  seed=0)
    ordered = [values[name] for name in SHARED_FIELDS]
    data = {controls.prompt: PROMPT, controls.link: True, panel.model: "canned", panel.custom: "", panel.precision: "auto",
            page.share.blind_run: None, **dict(zip(left.settings.components(), ordered)),
            **dict(zip(panel.settings.components(), ordered))}
    if panel.task_prefix is not None:
        data[panel.task_prefix] = ""
    if panel.chat_template is not None:
        data[panel.chat_template] = True
    updates = list(page.handlers.run[Kind.CAUSAL](data, types.SimpleNamespace(session_hash="page")))
    out = merged(updates)
    assert out[panel.output] == "six five four"
    assert "served by canned (canned words)" in out[panel.card]
    assert "3 out" in out[panel.stats] and "length" in out[panel.stats]
    assert [u[panel.output] for u in updates if panel.output in u and u[panel.output]][:2] == ["six", "six five"]
    choices = page.panels[Kind.CAUSAL].model.choices
    assert any(value == "canned" and "served by canned words" in label for label, value in choices)


@pytest.mark.timeout(180)
def test_generate_and_run_set_stream_a_registered_engine(tiny_dir):
    rows = [{"prompt": "a b c"}, {"prompt": "red green", "reference": "green red"}]
    with served(tiny_dir) as url:
        client = Client(url, verbose=False)
        text, stats = client.predict(model="canned", prompt=PROMPT, max_new_tokens=5, api_name="/generate")
        final = client.predict(left="canned", right="tiny-gpt2", rows=rows, max_new_tokens=3, api_name="/run_set")
        client.close()
    assert text == "six five four three two" and stats["output_tokens"] == 5 and stats["finish_reason"] == "length"
    assert [row["left"]["text"] for row in final["rows"]] == ["c b a", "green red"]
    assert final["models"]["left"]["served_by"] == "served by canned (canned words)"
    assert final["summary"]["left"]["rows_done"] == 2 and final["summary"]["right"]["rows_done"] == 2


def test_a_model_whose_engine_is_not_running_says_so_in_its_panel(tiny_dir):
    runner, _canned, _ = canned_runner(tiny_dir)
    runner.registry.register_endpoint(ModelSource("ghost", "ghost", "nowhere", kind=Kind.CAUSAL, engine="not-here",
                                                  server="nothing"))
    result = next(e for e in runner.start(runner.resolve("ghost"), RunRequest.parse(prompt="hi")).events()
                  if isinstance(e, Finished)).result
    assert result.stats is None and "no engine 'not-here' is running here" in result.error
    assert "no engine 'not-here'" in runner.inspect("ghost").error
