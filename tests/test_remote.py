"""Models served by an inference engine (issue 13), streamed from a real ``transformers serve``.

A module fixture starts ``transformers serve`` as a subprocess on a free loopback port, offline, on a
private Hugging Face cache holding two copies of the tiny Llama (with its chat template): it lists
two models, so ``model=`` is needed. ``transformers serve`` has no authentication of its own, so the
token tests go through a small auth-checking proxy written here; the same proxy can stall, corrupt
a chunk, drop the usage report, narrow the model list or refuse the logprobs fields, and it records
when its client hangs up.
Everything else talks to the engine directly.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import httpx2
import openai
import pytest
import uvicorn
from gradio_client import Client
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

import app as app_module
from components.export import build_comparison, to_json, to_markdown
from components.render import stats_markdown
from components.settings import SHARED_FIELDS
from models import GenerationSettings, Kind, ModelCache, ModelRegistry
from models.endpoint_spec import EndpointError, parse_endpoint_spec, parse_endpoint_specs
from models.remote import (GENERIC, TGI, TRANSFORMERS_SERVE, VLLM, Endpoint, _Counter, align_tokens, build_request,
                           connect, refuses_logprobs, token_probs)
from models.request import RunRequest
from models.run import Chunk, Finished, Ready, Runner
from models.sources import ModelSource
from models.types import TOP_TOKENS, FinishReason, TokenProb
from tests.apphelpers import built_page, merged, running_app, show_selection
from tests.modelhelpers import hub_cache
from web.config import AppConfig, parse_args
from web.serving import build_runner
from web.handlers import selection_handler
from web.policy import Policy

ENGINE_BIN = Path(sys.executable).parent / "transformers"
MODEL, OTHER = "playground-test/tiny-llama", "playground-test/tiny-llama-b"
PROMPT = "Write about the river"
LONG = 1000  # tokens: ~10 s of the tiny model on this engine, far longer than any test waits
SECRET = "s3cret-token-4f2a9b"  # the proxy's token
WRONG = "wrong-token-77c1d0"


# ----- the engine -----

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EngineProcess:
    """A ``transformers serve`` subprocess."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def start_engine(cache_dir: Path, log: Path, timeout: float = 180.0) -> EngineProcess:
    """Start ``transformers serve`` offline on a free port; return once ``/health`` answers and MODEL is loaded."""
    port = free_port()
    env = dict(os.environ, HF_HUB_CACHE=str(cache_dir), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with log.open("w") as out:
        process = subprocess.Popen([str(ENGINE_BIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    engine = EngineProcess(process, port, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            engine.kill()
            raise RuntimeError(f"transformers serve did not answer /health within {timeout:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    direct(engine.url).chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    return engine


def direct(url: str, token: str = "EMPTY") -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=60)


def direct_answer(url: str, prompt: str = PROMPT, **parameters: Any) -> tuple[str, Any]:
    """``(text, usage)`` of a non-streamed, direct call to the engine."""
    reply = direct(url).chat.completions.create(model=parameters.pop("model", MODEL),
                                                messages=[{"role": "user", "content": prompt}], **parameters)
    return reply.choices[0].message.content, reply.usage


@pytest.fixture(scope="module")
def served(tiny_dir, tmp_path_factory) -> Path:
    """The cache the engines read: the tiny Llama under two hub ids."""
    return hub_cache(tmp_path_factory.mktemp("engine-hub-cache"), tiny_dir / "tiny-llama", (MODEL, OTHER))


@pytest.fixture(scope="module")
def engine(served, tmp_path_factory) -> Iterator[EngineProcess]:
    running = start_engine(served, tmp_path_factory.mktemp("engine") / "serve.log")
    yield running
    running.kill()


# ----- a proxy in front of it: a token check, and faults on demand -----

@dataclass
class Faults:
    """What the proxy does to the next requests."""

    stall_after: int | None = None  # hold the stream after this many data lines (0: before any)
    corrupt_at: int | None = None  # replace this data line (1-based) with broken JSON
    strip_usage: bool = False  # drop the usage report from every chunk
    only_model: str | None = None  # list only this model in /v1/models
    refuse_logprobs: bool = False  # answer HTTP 400 naming the field to a request asking for logprobs


@dataclass
class Proxy:
    """A loopback proxy to ``target`` that requires ``Bearer token`` and applies :class:`Faults`."""

    target: str
    token: str
    faults: Faults = field(default_factory=Faults)
    hung_up: threading.Event = field(default_factory=threading.Event)  # a streaming client went away
    bodies: list[dict] = field(default_factory=list)  # the JSON of every POST it forwarded
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def handle(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"error": {"message": "invalid token", "type": "authentication_error"}}, status_code=401)
        body = await request.body()
        sent = json.loads(body) if body else {}
        if body:
            self.bodies.append(sent)
        if self.faults.refuse_logprobs and {"logprobs", "top_logprobs"} & set(sent):
            return JSONResponse({"error": {"message": "logprobs is not supported by this server",
                                           "type": "invalid_request_error"}}, status_code=400)
        client = httpx.AsyncClient(timeout=None)
        upstream = await client.send(client.build_request(request.method, self.target + request.url.path,
                                                          content=body,
                                                          headers={"content-type": "application/json"}), stream=True)
        if request.url.path.endswith("/models") and self.faults.only_model:
            data = json.loads(await upstream.aread())
            data["data"] = [m for m in data["data"] if m["id"] == self.faults.only_model]
            await client.aclose()
            return JSONResponse(data, status_code=upstream.status_code)
        faults = self.faults

        async def lines() -> Any:
            sent = 0
            try:
                async for line in upstream.aiter_lines():
                    if line.startswith("data: {"):
                        if faults.stall_after is not None and sent >= faults.stall_after:
                            await asyncio.sleep(3600)
                        sent += 1
                        if faults.corrupt_at == sent:
                            line = 'data: {"choices": [{"delta": {"content": "broken'
                        elif faults.strip_usage:
                            chunk = json.loads(line[6:])
                            chunk.pop("usage", None)
                            line = "data: " + json.dumps(chunk)
                    yield line + "\n"
            finally:
                self.hung_up.set()
                await upstream.aclose()
                await client.aclose()

        return StreamingResponse(lines(), status_code=upstream.status_code,
                                 media_type=upstream.headers.get("content-type", "application/json"))


@pytest.fixture(scope="module")
def proxy_server(engine) -> Iterator[Proxy]:
    proxy = Proxy(f"http://127.0.0.1:{engine.port}", SECRET, port=free_port())
    app = Starlette(routes=[Route("/{path:path}", proxy.handle, methods=["GET", "POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=proxy.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield proxy
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def proxy(proxy_server, monkeypatch) -> Proxy:
    """The proxy with no faults, and ``PROXY_TOKEN`` / ``WRONG_TOKEN`` in the environment."""
    proxy_server.faults = Faults()
    proxy_server.hung_up.clear()
    proxy_server.bodies.clear()
    monkeypatch.setenv("PROXY_TOKEN", SECRET)
    monkeypatch.setenv("WRONG_TOKEN", WRONG)
    return proxy_server


# ----- the app around it -----

def registry_with(tiny_dir: Path) -> ModelRegistry:
    registry = ModelRegistry(online=False)
    registry.register(ModelSource("tiny-t5", str(tiny_dir / "tiny-t5"), "local folder", local=True, kind=Kind.SEQ2SEQ))
    return registry


def runner_with(tiny_dir: Path, *endpoints: Endpoint) -> Runner:
    """The run layer the app builds, over tiny T5 and ``endpoints``."""
    return build_runner(AppConfig(online=False, preload=False), registry=registry_with(tiny_dir), cache=ModelCache(2),
                        endpoints=list(endpoints))


def side_data(page, kind: Kind, model: str, prompt: str = PROMPT, **settings: Any) -> dict:
    """The component values one side's page handler reads (greedy, 12 tokens unless given)."""
    values = {**dict(max_new_tokens=12, temperature=0.0, top_p=1.0, top_k=0, repetition_penalty=1.0, no_repeat_ngram_size=0,
                     seed=0), **settings}
    left, panel, controls = page.panels[Kind.SEQ2SEQ], page.panels[kind], page.controls
    ordered = [values[name] for name in SHARED_FIELDS]
    # the precision control replaces the 8-bit checkbox; either way: full precision, the default
    precision = {panel.precision: "auto"}
    data = {controls.prompt: prompt, controls.link: True, panel.model: model, panel.custom: "", **precision,
            **dict(zip(left.settings.components(), ordered)), **dict(zip(panel.settings.components(), ordered))}
    if panel.task_prefix is not None:
        data[panel.task_prefix] = ""
    if panel.chat_template is not None:
        data[panel.chat_template] = True
    return data


def handler(page, kind: Kind, data: dict, session: str = "test") -> Iterator[dict]:
    return page.handlers.run[kind](data, types.SimpleNamespace(session_hash=session))


def finished(run) -> Any:
    """The :class:`~models.run.RunResult` a run ends with."""
    return next(event for event in run.events() if isinstance(event, Finished)).result


# ----- the command line: refused at start -----

@pytest.mark.parametrize("value, says", [
    ("http://127.0.0.1:8000/v1", "expected NAME=URL"),
    ("=http://127.0.0.1:8000/v1", "expected NAME=URL"),
    ("big=ftp://127.0.0.1/v1", "is not an http:// or https:// URL"),
    ("big=127.0.0.1:8000/v1", "is not an http:// or https:// URL"),
    ("big=http://127.0.0.1:8000/v1,temperature=0", "unknown option 'temperature'"),
    ("big=http://127.0.0.1:8000/v1,model", "option model needs a value"),
    ("big=http://127.0.0.1:8000/v1,model=a,model=b", "option model is given twice"),
    ("big=http://127.0.0.1:8000/v1,kind=encoder", "kind must be causal or seq2seq"),
    ("big=http://127.0.0.1:8000/v1,chat=maybe", "chat must be true or false"),
    ("big=http://user:pw@127.0.0.1:8000/v1", "put no credentials in the URL"),
    ("big=http://127.0.0.1:8000/v1,token_env=PLAYGROUND_TEST_UNSET_TOKEN", "that environment variable is not set"),
    ("big model=http://127.0.0.1:8000/v1", "must start with a letter or digit"),
])
def test_bad_endpoint_values_are_refused_at_start(value, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--endpoint", value])
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_a_name_given_twice_is_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--endpoint", "big=http://127.0.0.1:8000/v1", "--endpoint", "big=http://127.0.0.1:9000/v1"])
    assert "--endpoint big: the name is used by another --endpoint" in capsys.readouterr().err


def test_good_values_parse_with_their_options(monkeypatch):
    monkeypatch.setenv("BIG_TOKEN", SECRET)
    config, _ = parse_args(["--endpoint", "big=https://example.org/v1/,model=meta-llama/Llama-3.1-70B-Instruct,"
                                          "token_env=BIG_TOKEN,kind=causal,chat=false",
                            "--endpoint", "t5=http://127.0.0.1:8080/v1,kind=seq2seq"])
    big, t5 = config.endpoints
    assert (big.name, big.url, big.model, big.token_env, big.kind, big.chat) == (
        "big", "https://example.org/v1", "meta-llama/Llama-3.1-70B-Instruct", "BIG_TOKEN", Kind.CAUSAL, False)
    assert (t5.kind, t5.chat, t5.model, t5.token()) == (Kind.SEQ2SEQ, None, None, None)
    assert big.token() == SECRET and SECRET not in repr(config)


def test_without_model_several_listed_models_are_refused_at_start_and_named(engine, capsys):
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(["--endpoint", f"tiny={engine.url}", "--offline", "--no-preload"])
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and ": error: argument --endpoint: " in message, message
    assert "the server lists 2 models; pick one with model=ID" in message
    assert MODEL in message and OTHER in message


def test_without_model_a_server_that_is_down_is_refused_at_start(capsys):
    port = free_port()
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(["--endpoint", f"down=http://127.0.0.1:{port}/v1", "--offline", "--no-preload"])
    message = capsys.readouterr().err
    assert exit_info.value.code == 2 and "model= is not given" in message and "connection refused" in message


def test_without_model_the_only_listed_model_is_used(proxy):
    proxy.faults.only_model = OTHER
    endpoint = connect(parse_endpoint_spec(f"one={proxy.url},token_env=PROXY_TOKEN"))
    assert endpoint.model_id == OTHER


def test_start_detects_the_engine_and_that_it_takes_chat(engine):
    endpoint = connect(parse_endpoint_spec(f"tiny={engine.url},model={MODEL}"))
    assert endpoint.engine is TRANSFORMERS_SERVE and endpoint.chat is True
    assert endpoint.description.served_by == f"served by tiny (transformers serve, {MODEL})"


# ----- streaming through the run layer, the page and the API -----

@pytest.fixture(scope="module")
def tiny(engine) -> Endpoint:
    return connect(parse_endpoint_spec(f"tiny={engine.url},model={MODEL}"))


def test_streamed_output_equals_a_direct_call_to_the_same_server(engine, tiny, tiny_dir):
    runner = runner_with(tiny_dir, tiny)
    events = list(runner.start(runner.resolve("tiny"), RunRequest(prompt=PROMPT, settings=GenerationSettings(max_new_tokens=40))).events())
    text, usage = direct_answer(engine.url, max_tokens=40, temperature=0.0, seed=0)
    result = events[-1].result
    assert isinstance(events[0], Ready) and events[0].description.served_by.startswith("served by tiny")
    chunks = [e.text for e in events if isinstance(e, Chunk)]
    assert len(chunks) >= 2 and chunks[-1] == result.text, "the answer streams in growing chunks"
    assert result.text == text and text.strip()
    stats = result.stats
    assert (stats.input_tokens, stats.output_tokens) == (usage.prompt_tokens, usage.completion_tokens) == (usage.prompt_tokens, 40)
    assert stats.count_unit == "tokens" and stats.finish_reason is FinishReason.LENGTH and stats.error is None
    assert stats.time_to_first_token > 0, result.stats
    # a loaded machine may read every chunk in one burst from the socket: then there is no rate to give
    # 40 chunks spread over the server's decoding: a rate, at least (tokens after the first) / (whole run)
    assert stats.tokens_per_second is not None and stats.tokens_per_second >= 39 / stats.total_seconds, result.stats


def test_sampling_settings_are_sent_as_the_engines_parameters(proxy):
    endpoint = connect(parse_endpoint_spec(f"p={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    proxy.bodies.clear()
    final = list(endpoint.stream(endpoint.request(PROMPT, GenerationSettings(max_new_tokens=10, temperature=0.9, top_p=0.8,
                                                                             seed=7))))[-1]
    assert final.stats.error is None and final.stats.notices == [TRANSFORMERS_SERVE.sampling_note], (
        "transformers serve ignores sampling for a model whose generation_config does not turn it on: said, not hidden")
    sent = proxy.bodies[-1]
    assert {k: sent[k] for k in ("max_tokens", "temperature", "top_p", "seed", "stream")} == {
        "max_tokens": 10, "temperature": 0.9, "top_p": 0.8, "seed": 7, "stream": True}
    assert sent["messages"] == [{"role": "user", "content": PROMPT}] and sent["model"] == MODEL


def test_repetition_penalty_reaches_the_engine_as_its_own_parameter(engine, tiny):
    request = tiny.request(PROMPT, GenerationSettings(max_new_tokens=10, repetition_penalty=1.5))
    streamed = list(tiny.stream(request))[-1]
    text, _ = direct_answer(engine.url, max_tokens=10, frequency_penalty=0.5, temperature=0.0, seed=0)
    assert streamed.text == text and streamed.stats.notices == []
    plain, _ = direct_answer(engine.url, max_tokens=10, temperature=0.0, seed=0)
    assert text != plain, "the penalty changes the answer, so equal texts show it was applied"


def test_settings_the_engine_lacks_are_named_not_dropped(tiny):
    request = tiny.request(PROMPT, GenerationSettings(max_new_tokens=4, temperature=0.7, top_k=20, no_repeat_ngram_size=3),
                           precision="8-bit")
    final = list(tiny.stream(request))[-1]
    assert final.stats.error is None, "an unsupported setting is not sent (transformers serve answers 422 to top_k)"
    notices = " | ".join(final.stats.notices)
    assert "top_k=20 not sent" in notices and "no_repeat_ngram_size=3 not sent" in notices
    assert "precision 8-bit not applied: the engine decides" in notices
    assert "samples only when the model's own generation_config" in notices
    assert "top_k=20 not sent" in stats_markdown(final.stats.to_dict())


@pytest.mark.parametrize("engine_kind, sent, named", [
    (VLLM, {"top_k": 20, "repetition_penalty": 1.3}, []),
    (TRANSFORMERS_SERVE, {"frequency_penalty": 0.3}, ["top_k=20"]),
    (TGI, {}, ["top_k=20", "repetition_penalty=1.3"]),
    (GENERIC, {}, ["top_k=20", "repetition_penalty=1.3"]),
])
def test_each_engine_gets_what_it_accepts(engine_kind, sent, named):
    request = build_request(engine_kind, True, Kind.CAUSAL, "Hi",
                            GenerationSettings(temperature=0.5, top_k=20, repetition_penalty=1.3, seed=3))
    given = {**request.extra, **{k: v for k, v in request.parameters.items() if k == "frequency_penalty"}}
    assert given == sent
    assert [n.split(" ")[0] for n in request.notices if n != engine_kind.sampling_note] == named
    assert {"max_tokens", "temperature", "top_p", "seed"} <= set(request.parameters)


def test_chat_template_off_sends_the_raw_prompt(engine, tiny):
    request = tiny.request(PROMPT, GenerationSettings(max_new_tokens=6, use_chat_template=False))
    assert not request.chat
    final = list(tiny.stream(request))[-1]
    raw = direct(engine.url).completions.create(model=MODEL, prompt=PROMPT, max_tokens=6, temperature=0.0, seed=0)
    assert final.text == raw.choices[0].text and final.stats.finish_reason is FinishReason.LENGTH


def test_page_shows_served_by_and_the_class_question_cannot_be_seen(tiny, tiny_dir):
    page, _runner = built_page(registry_with(tiny_dir), ModelCache(2), endpoints=[tiny])
    choices = page.panels[Kind.CAUSAL].model.choices
    assert any(value == "tiny" and label.endswith("served by transformers serve") for label, value in choices)
    shown = show_selection(page, Kind.CAUSAL, "tiny", None)
    assert f"served by tiny (transformers serve, {MODEL})" in shown["card"] and "AutoModelFor" not in shown["card"]
    assert "cannot be seen from here" in shown["class"]
    set_side = page.handlers.prompt_set.tab.right
    set_class = selection_handler(_runner, set_side, Policy())({set_side.model: "tiny", set_side.custom: "", set_side.precision: "auto"})
    assert set_class[set_side.class_info] == shown["class"], "the set tab gives the same answer (it used to raise)"
    out = merged(list(handler(page, Kind.CAUSAL, side_data(page, Kind.CAUSAL, "tiny"))))
    panel = page.panels[Kind.CAUSAL]
    assert "served by tiny" in out[panel.card] and out[panel.output].strip()
    assert "12 out" in out[panel.stats] and "finish: **length**" in out[panel.stats]
    assert f"the tokens are made on the server (transformers serve serving {MODEL}), not on this machine" in out[panel.tokens]
    assert "client.chat.completions.create" in out[panel.code] and "ENDPOINT_URL" in out[panel.code]


def test_the_class_question_is_answered_when_the_model_id_config_can_be_read(tiny, tiny_dir, monkeypatch):
    monkeypatch.setattr(Endpoint, "hub_source", lambda self: ModelSource(MODEL, str(tiny_dir / "tiny-llama"), "hub", local=True))
    page, _runner = built_page(registry_with(tiny_dir), ModelCache(2), endpoints=[tiny])
    shown = show_selection(page, Kind.CAUSAL, "tiny", None)
    assert "Its config, read from the Hugging Face hub under the same id" in shown["class"]
    assert "AutoModelForCausalLM" in shown["class"] and "LlamaForCausalLM" in shown["class"]


def test_generate_api_streams_an_endpoint_model_and_records_it(engine, tiny, tiny_dir):
    with running_app(registry_with(tiny_dir), endpoints=[tiny]) as served_app:
        client = Client(served_app.url, verbose=False)
        text, stats = client.predict(model="tiny", prompt=PROMPT, max_new_tokens=8, api_name="/generate")
        models = client.predict(api_name="/models")
    assert text == direct_answer(engine.url, max_tokens=8, temperature=0.0, seed=0)[0]
    assert stats["description"]["endpoint"] == "tiny" and stats["description"]["model_id"] == MODEL
    assert stats["output_tokens"] == 8 and stats["finish_reason"] == "length"
    assert stats["tokens"] is None and stats["tokens_note"] == "transformers serve returns no token probabilities"
    assert any(m["name"] == "tiny" for m in models["causal"])


def test_run_set_takes_an_endpoint_model_row_by_row(engine, tiny, tiny_dir):
    rows = [{"prompt": "What is the capital of France?", "reference": "Paris"}, {"prompt": "Name a red fruit."},
            {"prompt": "Once upon a time"}]
    with running_app(registry_with(tiny_dir), endpoints=[tiny]) as served_app:
        final = Client(served_app.url, verbose=False).predict(left="tiny-t5", right="tiny", rows=rows, max_new_tokens=7,
                                                              api_name="/run_set")
    expected = [direct_answer(engine.url, row["prompt"], max_tokens=7, temperature=0.0, seed=0)[0] for row in rows]
    assert [row["right"]["text"] for row in final["rows"]] == expected
    assert all(row["right"]["stats"]["output_tokens"] == 7 for row in final["rows"])
    assert all(row["right"]["tokens"] is None for row in final["rows"])
    assert {row["right"]["tokens_note"] for row in final["rows"]} == {"transformers serve returns no token probabilities"}
    assert final["summary"]["right"]["rows_done"] == 3 and final["summary"]["left"]["rows_done"] == 3


def test_stop_closes_the_stream_and_the_engine_stops(engine, tiny, tiny_dir):
    runner = runner_with(tiny_dir, tiny)
    run = runner.start(runner.resolve("tiny"), RunRequest(prompt=PROMPT, settings=GenerationSettings(max_new_tokens=LONG)), session="s")
    texts = []
    for event in run.events():
        if isinstance(event, Chunk):
            texts.append(event.text)
            if len(texts) == 3:
                assert runner.stop("s") == 1
        elif isinstance(event, Finished):
            result = event.result
    assert result.stats.finish_reason is FinishReason.STOPPED and result.text.startswith(texts[2]) and result.text.strip()
    assert result.stats.output_tokens < LONG, "the answer ended at the stop, not at its length"
    assert direct_answer(engine.url, max_tokens=4, temperature=0.0), "the engine serves the next request"


def test_stop_hangs_up_even_while_the_server_is_silent(proxy):
    endpoint = connect(parse_endpoint_spec(f"p={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    proxy.faults.stall_after = 3
    stop = threading.Event()
    updates = []
    threading.Timer(1.0, stop.set).start()
    for update in endpoint.stream(endpoint.request(PROMPT, GenerationSettings(max_new_tokens=50)), stop_event=stop):
        updates.append(update)
    final = updates[-1]
    assert final.stats.finish_reason is FinishReason.STOPPED and final.text.strip()
    assert proxy.hung_up.wait(2.0), "the connection was closed"


@pytest.mark.parametrize("stall_after, says", [(0, "no first token within 1 s"), (3, "no new chunk within 1 s")])
def test_a_silent_server_times_out_with_the_text_kept(proxy, stall_after, says):
    endpoint = connect(parse_endpoint_spec(f"p={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    proxy.faults.stall_after = stall_after
    final = list(endpoint.stream(endpoint.request(PROMPT, GenerationSettings(max_new_tokens=50)),
                                 first_token_timeout=1.0, token_timeout=1.0))[-1]
    assert final.stats.finish_reason is FinishReason.ERROR and says in final.stats.error
    assert bool(final.text.strip()) is (stall_after > 0), "what came before the silence is kept"
    assert proxy.hung_up.wait(2.0), "the abandoned request's connection was closed"


def test_a_malformed_chunk_ends_the_run_with_the_text_kept(proxy):
    endpoint = connect(parse_endpoint_spec(f"p={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    proxy.faults.corrupt_at = 4  # transformers serve sends the role first: three chunks of text, then garbage
    final = list(endpoint.stream(endpoint.request(PROMPT, GenerationSettings(max_new_tokens=12))))[-1]
    assert final.stats.finish_reason is FinishReason.ERROR and "sent a malformed chunk" in final.stats.error
    assert len(final.text.split()) == 2, final.text


def test_without_usage_counts_come_from_the_tokenizer_here_or_are_labelled_chunks(proxy, tiny_dir):
    proxy.faults.strip_usage = True
    folder = str(tiny_dir / "tiny-llama")  # the engine serves this folder by its path: its tokenizer is on this machine
    by_path = connect(parse_endpoint_spec(f"p={proxy.url},model={folder},token_env=PROXY_TOKEN"))
    final = list(by_path.stream(by_path.request(PROMPT, GenerationSettings(max_new_tokens=9))))[-1]
    assert final.stats.count_unit == "tokens" and final.stats.output_tokens == 9
    assert any("from the model's tokenizer on this machine" in n for n in final.stats.notices)
    by_id = connect(parse_endpoint_spec(f"p={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    final = list(by_id.stream(by_id.request(PROMPT, GenerationSettings(max_new_tokens=9))))[-1]
    assert final.stats.count_unit == "chunks" and final.stats.input_tokens is None and final.stats.output_tokens == 9
    line = stats_markdown(final.stats.to_dict())
    assert "chunks/s" in line and "? in → 9 out (stream chunks, not tokens)" in line


def test_a_wrong_token_shows_the_servers_refusal_and_no_token_anywhere(proxy, tiny_dir, capfd, caplog):
    wrong = connect(parse_endpoint_spec(f"locked={proxy.url},model={MODEL},token_env=WRONG_TOKEN"))
    right = connect(parse_endpoint_spec(f"open={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    page, _runner = built_page(registry_with(tiny_dir), ModelCache(2), endpoints=[wrong, right])
    panel = page.panels[Kind.CAUSAL]
    refused = list(handler(page, Kind.CAUSAL, side_data(page, Kind.CAUSAL, "locked")))
    answered = list(handler(page, Kind.CAUSAL, side_data(page, Kind.CAUSAL, "open")))
    out = merged(refused)
    assert "endpoint locked answered HTTP 401: invalid token" in out[panel.stats] and out[panel.output] == ""
    assert merged(answered)[panel.record]["stats"]["finish_reason"] == "length"
    records = [merged(refused)[panel.record], merged(answered)[panel.record]]
    exported = [to_json(build_comparison(None, r)) + to_markdown(build_comparison(None, r)) for r in records]
    assert "open" in exported[1] and MODEL in exported[1], "the export records the endpoint name and model id"
    logs = capfd.readouterr()
    everything = repr(refused) + repr(answered) + "".join(exported) + logs.out + logs.err + caplog.text + repr(right)
    assert SECRET not in everything and WRONG not in everything


def test_the_server_killed_mid_stream_then_not_running(served, tmp_path, tiny_dir):
    doomed = start_engine(served, tmp_path / "serve.log")
    try:
        endpoint = connect(parse_endpoint_spec(f"doomed={doomed.url},model={MODEL}"))
        page, _runner = built_page(registry_with(tiny_dir), ModelCache(2), endpoints=[endpoint])
        panel, left = page.panels[Kind.CAUSAL], page.panels[Kind.SEQ2SEQ]
        updates = []
        for update in handler(page, Kind.CAUSAL, side_data(page, Kind.CAUSAL, "doomed", max_new_tokens=LONG)):
            updates.append(update)
            if sum(1 for u in updates if u.get(panel.output)) == 3:
                doomed.kill()
        out = merged(updates)
        assert out[panel.output].strip(), "the partial text stays in the panel"
        assert "broke mid-stream" in out[panel.stats] and out[panel.record]["stats"]["finish_reason"] == "error"
        assert out[panel.record]["text"] == out[panel.output]
        # Now nothing listens on that port: the run says so, and the other side answers at the same time.
        with ThreadPoolExecutor(2) as pool:
            right = pool.submit(lambda: merged(list(handler(page, Kind.CAUSAL, side_data(page, Kind.CAUSAL, "doomed")))))
            other = pool.submit(lambda: merged(list(handler(page, Kind.SEQ2SEQ, side_data(page, Kind.SEQ2SEQ, "tiny-t5")))))
        assert "endpoint doomed cannot be reached (connection refused: is the server running?)" in right.result()[panel.stats]
        assert other.result()[left.record]["stats"]["finish_reason"] == "length"
    finally:
        doomed.kill()


def test_a_server_not_started_is_registered_with_a_warning_and_each_run_says_so(tiny_dir, capsys):
    endpoint = connect(parse_endpoint_spec(f"later=http://127.0.0.1:{free_port()}/v1,model={MODEL}"))
    assert "the server cannot be reached now" in capsys.readouterr().out
    runner = runner_with(tiny_dir, endpoint)
    result = finished(runner.start(runner.resolve("later"), RunRequest(prompt=PROMPT, settings=GenerationSettings(max_new_tokens=4))))
    assert result.stats.finish_reason is FinishReason.ERROR and "connection refused" in result.stats.error
    assert result.description.served_by == f"served by later (OpenAI-compatible server, {MODEL})"


def test_works_while_the_hub_client_is_offline(tiny):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, "the suite runs offline, as the app does when the hub cannot be reached"
    final = list(tiny.stream(tiny.request(PROMPT, GenerationSettings(max_new_tokens=3))))[-1]
    assert final.stats.error is None and final.stats.output_tokens == 3


# ----- token probabilities -----

NO_TOKENS_FROM_TRANSFORMERS_SERVE = "transformers serve returns no token probabilities"
LOGPROB_FIELDS = {"logprobs", "top_logprobs"}


def generic_endpoint(proxy: Proxy, name: str = "g") -> Endpoint:
    """The engine behind the proxy taken for a generic OpenAI-compatible server, which is asked for logprobs."""
    return Endpoint(parse_endpoint_spec(f"{name}={proxy.url},model={MODEL},token_env=PROXY_TOKEN"), MODEL, GENERIC, True)


def posts(proxy: Proxy) -> list[dict]:
    """The completion requests the proxy forwarded (start-up GETs have no body)."""
    return [body for body in proxy.bodies if "model" in body]


@pytest.mark.parametrize("chat_template", [True, False], ids=["chat", "completions"])
def test_transformers_serve_is_never_asked_for_token_probabilities(proxy, chat_template):
    endpoint = connect(parse_endpoint_spec(f"p={proxy.url},model={MODEL},token_env=PROXY_TOKEN"))
    assert endpoint.engine is TRANSFORMERS_SERVE
    proxy.bodies.clear()
    request = endpoint.request(PROMPT, GenerationSettings(max_new_tokens=6, use_chat_template=chat_template))
    final = list(endpoint.stream(request))[-1]
    assert final.stats.error is None and final.stats.output_tokens == 6 and final.text.strip()
    (sent,) = posts(proxy)
    assert ("messages" in sent) is chat_template and not LOGPROB_FIELDS & set(sent), sent
    assert final.stats.tokens is None and final.stats.tokens_note == NO_TOKENS_FROM_TRANSFORMERS_SERVE
    as_dict = final.stats.to_dict()  # what /generate returns
    assert as_dict["tokens"] is None and as_dict["tokens_note"] == NO_TOKENS_FROM_TRANSFORMERS_SERVE
    assert as_dict["confidence"] is None


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completions"])
def test_a_server_that_answers_without_logprobs_is_said_to_send_none(proxy, tiny, chat):
    """transformers serve 5.23 ignores the logprobs fields (with a warning): a server that answers and sends none."""
    endpoint = generic_endpoint(proxy)
    settings = GenerationSettings(max_new_tokens=8, use_chat_template=chat)
    proxy.bodies.clear()
    final = list(endpoint.stream(endpoint.request(PROMPT, settings)))[-1]
    (sent,) = posts(proxy)
    assert {k: sent[k] for k in LOGPROB_FIELDS & set(sent)} == (
        {"logprobs": True, "top_logprobs": TOP_TOKENS} if chat else {"logprobs": TOP_TOKENS})
    assert final.stats.error is None and final.stats.tokens is None
    assert final.stats.tokens_note == "OpenAI-compatible server sent no token probabilities (they were asked for)"
    plain = list(tiny.stream(tiny.request(PROMPT, settings)))[-1]
    assert final.text == plain.text and final.stats.output_tokens == plain.stats.output_tokens == 8, (
        "asking for logprobs changes nothing else")


def test_a_server_refusing_logprobs_is_asked_again_without_them_once_and_for_good(proxy, tiny):
    endpoint = generic_endpoint(proxy, "strict")
    proxy.faults.refuse_logprobs = True
    proxy.bodies.clear()
    settings = GenerationSettings(max_new_tokens=8)
    first = list(endpoint.stream(endpoint.request(PROMPT, settings)))[-1]
    refused, retried = posts(proxy)
    assert LOGPROB_FIELDS <= set(refused) and not LOGPROB_FIELDS & set(retried)
    assert first.stats.error is None and first.text == list(tiny.stream(tiny.request(PROMPT, settings)))[-1].text
    note = "endpoint strict (OpenAI-compatible server) returns no token probabilities: it refused the logprobs request fields"
    assert first.stats.tokens is None and first.stats.tokens_note == note
    proxy.bodies.clear()
    (row,) = list(endpoint.rows([PROMPT], settings))
    (sent,) = posts(proxy)
    assert not LOGPROB_FIELDS & set(sent), "remembered: the next request goes without them at once"
    assert row.error is None and row.text == first.text and (row.tokens, row.tokens_note) == (None, note)


def status_error(status: int, body: dict) -> openai.APIStatusError:
    """The error the ``openai`` client raises for an HTTP ``status`` answer with ``body``."""
    response = httpx2.Response(status, json=body, request=httpx2.Request("POST", "http://127.0.0.1:1/v1/chat/completions"))
    classes = {400: openai.BadRequestError, 401: openai.AuthenticationError, 422: openai.UnprocessableEntityError,
               500: openai.InternalServerError}
    return classes[status](f"Error code: {status}", response=response, body=body)


@pytest.mark.parametrize("error, retried", [
    (status_error(400, {"error": {"message": "logprobs is not supported by this server"}}), True),
    (status_error(400, {"object": "error", "message": "top_logprobs must be at most 0 (--max-logprobs)"}), True),
    (status_error(422, {"detail": [{"loc": ["body", "top_logprobs"], "msg": "Extra inputs are not permitted"}]}), True),
    (status_error(400, {"error": {"message": "max_tokens is too large"}}), False),
    (status_error(401, {"error": {"message": "invalid token for logprobs"}}), False),
    (status_error(500, {"error": {"message": "logprobs crashed"}}), False),
    (openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1:1/v1/completions")), False),
], ids=["400-logprobs", "400-top_logprobs", "422-top_logprobs", "400-other", "401", "500", "unreachable"])
def test_only_a_refusal_naming_logprobs_is_retried(error, retried):
    assert refuses_logprobs(error) is retried


def entry(token: str, logprob: float, alternatives: list[tuple[str, float]], **extra: Any) -> dict:
    """One ``logprobs.content`` entry as vLLM sends it (llama.cpp adds ``id``: ``extra``)."""
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), **extra,
            "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alternatives]}


def chat_chunk(content: str | None, entries: list[dict] | None, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": content},
                     "logprobs": None if entries is None else {"content": entries}, "finish_reason": finish}]})


# vLLM's chat stream with logprobs=True, top_logprobs=5: the role first, one or more tokens a chunk, the usage last
# (alternatives listed out of order here, and six of them, to see them sorted and cut to five)
VLLM_CHAT = [
    chat_chunk("", None),
    chat_chunk(" The", [entry(" The", -0.2, [(" A", -2.1), (" The", -0.2), (" It", -3.0), (" In", -3.5), (" Its", -4.0),
                                             (" This", -2.5)])]),
    chat_chunk(" capital is", [entry(" capital", -0.05, [(" capital", -0.05), (" city", -3.2)]),
                               entry(" is", -1.3, [(" of", -0.4), (" is", -1.3)])]),
    chat_chunk(" Paris", [entry(" Paris", -9999.0, [(" Lyon", -0.01)])]),  # vLLM writes -inf as -9999.0
    chat_chunk("", [], finish="stop"),
]
VLLM_USAGE = ChatCompletionChunk.model_validate({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                                                 "model": MODEL, "choices": [],
                                                 "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})


def test_chat_chunks_in_vllms_shape_become_token_probs():
    tokens = [t for chunk in VLLM_CHAT for t in token_probs(chunk.choices[0].logprobs)]
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in VLLM_CHAT)
    assert answer == " The capital is Paris" and "".join(t.text for t in tokens) == answer
    assert [(t.id, t.text) for t in tokens] == [(None, " The"), (None, " capital"), (None, " is"), (None, " Paris")]
    logprobs = [-0.2, -0.05, -1.3, -9999.0]
    assert all(math.isclose(t.prob, math.exp(lp)) for t, lp in zip(tokens, logprobs)) and tokens[3].prob == 0.0
    first = tokens[0].top
    assert [c.text for c in first] == [" The", " A", " This", " It", " In"], "most likely first, at most five"
    assert all(math.isclose(c.prob, math.exp(lp)) for c, lp in zip(first, [-0.2, -2.1, -2.5, -3.0, -3.5]))
    assert all(len(t.top) <= TOP_TOKENS and [c.prob for c in t.top] == sorted((c.prob for c in t.top), reverse=True)
               for t in tokens)
    assert tokens[2].top[0].text == " of" and tokens[2].prob < tokens[2].top[0].prob, "the chosen one need not be the top"


def test_a_vllm_stream_ends_with_its_tokens_in_the_stats():
    endpoint = Endpoint(parse_endpoint_spec(f"v=http://127.0.0.1:{free_port()}/v1,model={MODEL}"), MODEL, VLLM, True)
    request = endpoint.request(PROMPT, GenerationSettings(max_new_tokens=4))
    assert request.arguments(MODEL, True)["top_logprobs"] == TOP_TOKENS
    counter, text, finish = _Counter(started=time.perf_counter()), "", None
    for chunk in [*VLLM_CHAT, VLLM_USAGE]:
        delta, reason = counter.read(time.perf_counter(), chunk, chat=True)
        text, finish = text + delta, reason or finish
    stats = counter.stats(endpoint, request, text, finish, None, False)
    assert [t.text for t in stats.tokens] == [" The", " capital", " is", " Paris"] and stats.tokens_note is None
    assert stats.to_dict()["confidence"]["tokens"] == 4 and stats.output_tokens == 4


def completion_chunk(text: str, logprobs: dict, finish: str | None = None) -> Completion:
    """A ``/v1/completions`` stream chunk, built as the client builds one (``construct``: a chunk before the last
    has no finish reason, which validation would refuse)."""
    return Completion.construct(id="cmpl-1", object="text_completion", created=1, model=MODEL,
                                choices=[{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}])


def test_completion_chunks_become_token_probs_in_either_shape():
    # vLLM: parallel lists; its top dict holds the chosen token as well as the five most likely
    vllm = completion_chunk(" Paris.", {"tokens": [" Paris", "."], "token_logprobs": [-0.3, -0.9], "text_offset": [0, 6],
                                        "top_logprobs": [{" Paris": -0.3, " Lyon": -1.6},
                                                         {",": -0.8, "!": -2.0, ".": -0.9, ";": -3.0, " and": -3.1,
                                                          " or": -2.9}]})
    tokens = token_probs(vllm.choices[0].logprobs)
    assert "".join(t.text for t in tokens) == vllm.choices[0].text
    assert [round(t.prob, 6) for t in tokens] == [round(math.exp(-0.3), 6), round(math.exp(-0.9), 6)]
    assert [c.text for c in tokens[1].top] == [",", ".", "!", " or", ";"] and tokens[0].top[0].text == " Paris"
    # llama.cpp: the chat shape on /v1/completions too, with token ids (outside the client's schema: plain dicts)
    llama = completion_chunk(" Paris", {"content": [entry(" Paris", -0.3, [(" Paris", -0.3), (" Lyon", -1.6)], id=3681)]})
    (token,) = token_probs(llama.choices[0].logprobs)
    assert (token.id, token.text, round(token.prob, 6)) == (3681, " Paris", round(math.exp(-0.3), 6))
    assert [c.text for c in token.top] == [" Paris", " Lyon"]
    # and in a chat chunk, where the client keeps the extra id as an attribute
    (chat_token,) = token_probs(chat_chunk(" Paris", [entry(" Paris", -0.3, [], id=3681)]).choices[0].logprobs)
    assert chat_token.id == 3681 and chat_token.top == ()
    with pytest.raises(TypeError):
        token_probs(types.SimpleNamespace(content=[{"logprob": -0.1, "top_logprobs": []}]))  # no token text


def test_token_texts_must_add_up_to_the_answer():
    tokens = [TokenProb(None, " Paris", 0.9), TokenProb(None, ".", 0.8), TokenProb(2, "</s>", 0.7)]
    aligned = align_tokens(tokens, " Paris.")
    assert [t.text for t in aligned] == [" Paris", ".", ""] and aligned[2].prob == 0.7, "the end token: no text"
    assert align_tokens(tokens[:1], " Paris.") is None and align_tokens(tokens, " Lyon.") is None
    assert align_tokens([], "") == []


def test_specs_parse_without_network():
    specs = parse_endpoint_specs(["a=http://10.0.0.1:8000/v1,kind=seq2seq,chat=false", "b=https://x.example/v1"])
    assert [(s.name, s.kind, s.chat) for s in specs] == [("a", Kind.SEQ2SEQ, False), ("b", Kind.CAUSAL, None)]
    with pytest.raises(EndpointError, match="unknown option 'engine'"):
        parse_endpoint_spec("a=http://10.0.0.1/v1,engine=vllm")
