"""Lets no one in where they don't belong: bad input, model ids, remote code, pickles, Gradio's own routes.

The app runs in-process on 127.0.0.1 with a private registry and cache. Nothing here reaches
the network: the hub size lookup of typed ids is monkeypatched.

How the bad settings reach the app: gradio_client cannot send NaN or infinity (its JSON encoder
refuses them), so the property test posts raw JSON to Gradio's plain HTTP API
(``POST /gradio_api/call/generate``, then the event stream ``GET /gradio_api/call/generate/<id>``),
the same queue and handler as gradio_client. Python's JSON encoder writes ``NaN`` / ``Infinity``
and the server's decoder reads them, so a non-finite value arrives at the handler as a float.

Figures for the README (``artifacts/reliability.json``): each refusal checked here is one case of
the "bad_inputs" section, each request for a file outside the app one case of "file_routes"
(:func:`tests.apphelpers.case`: ``tried`` when it runs, ``behaved`` only when its checks pass).
"""

from __future__ import annotations

import ast
import json
import math
import pickle
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import gradio as gr
import gradio_client
import httpx
import pytest
from gradio_client import Client
from huggingface_hub.errors import RepositoryNotFoundError
from hypothesis import example, given, settings as hypothesis_settings
from hypothesis import strategies as st

from components.panel import Panel
from components.render import card_markdown, error_markdown, stats_markdown
from models import GenerationSettings, Kind, ModelCache, ModelIdError, ModelLoadError, ModelRegistry, load_model
from models import local as local_engine
from models import sources as sources_module
from models.request import RunRequest
from models.run import Runner, SideRun
from models.settings import setting_ranges
from models.types import FinishReason, Stats, StreamUpdate
from tests.apphelpers import Served, case, generation_threads, running_app
from web.api import GENERATE_PARAMETERS, generate_endpoint, generate_payload
from web.config import AppConfig, parse_args
from web.handlers import render_event, selection_handler
from web.page import build_page
from web.policy import Policy
from web.serving import build_runner

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The cat walks to the river"
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>'
REQUEST = {"model": "tiny-gpt2", "prompt": PROMPT, "max_new_tokens": 4}  # a small valid /generate call


# ---------------------------------------------------------------------------------------------
# the app under test
# ---------------------------------------------------------------------------------------------

class Evil:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def hostile_models(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model folders that must be refused: custom code, pickle-only weights, a malicious pickle."""
    from safetensors.torch import load_file
    import torch

    root = tmp_path_factory.mktemp("security-models")
    marker = root / "REMOTE_CODE_RAN"
    custom = root / "custom-code"
    custom.mkdir()
    (custom / "config.json").write_text(json.dumps({
        "model_type": "playground-remote-code", "architectures": ["RemoteForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_remote.RemoteConfig",
                     "AutoModelForCausalLM": "modeling_remote.RemoteForCausalLM"}}))
    for module in ("configuration_remote.py", "modeling_remote.py"):
        (custom / module).write_text(f"open({str(marker)!r}, 'w').write('remote code ran')\n")
    source = tiny_dir / "tiny-gpt2"
    for name in ("pickle-only", "evil-pickle"):
        shutil.copytree(source, root / name)
        (root / name / "model.safetensors").unlink()
    torch.save(load_file(source / "model.safetensors"), root / "pickle-only" / "pytorch_model.bin")
    (root / "evil-pickle" / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": Evil(root / "PICKLE_RAN")}))
    return root


@pytest.fixture(scope="module")
def security_registry(tiny_dir: Path, hostile_models: Path) -> ModelRegistry:
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    registry.register_dir(hostile_models)
    return registry


@pytest.fixture(scope="module")
def load_requests() -> list[str]:
    """Names the app's cache was asked to load, in order."""
    return []


@pytest.fixture(scope="module")
def served(security_registry: ModelRegistry, load_requests: list[str]) -> Iterator[Served]:
    def counting_loader(source, **kwargs):
        load_requests.append(source.name)
        return load_model(source, **kwargs)

    cache = ModelCache(8, loader=counting_loader)
    with running_app(security_registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as app:
        yield app


@pytest.fixture(scope="module")
def client(served: Served) -> Iterator[Client]:
    api_client = Client(served.url, verbose=False, analytics_enabled=False, download_files=False)
    yield api_client
    api_client.close()


@pytest.fixture
def started_runs(served: Served, monkeypatch: pytest.MonkeyPatch) -> list[SideRun]:
    """Every run the app starts while the test runs (``Runner.start`` of the served app, wrapped)."""
    runs: list[SideRun] = []
    start = served.runner.start

    def counting_start(*args: Any, **kwargs: Any) -> SideRun:
        run = start(*args, **kwargs)
        runs.append(run)
        return run

    monkeypatch.setattr(served.runner, "start", counting_start)
    return runs


def api_error(client: Client, **values: Any) -> str:
    """The error message /generate answers with (fails the test if it answers normally)."""
    with pytest.raises(Exception) as info:
        client.predict(api_name="/generate", **dict(REQUEST, **values))
    return str(info.value)


def raw_call(base_url: str, timeout: float = 60.0, **values: Any) -> tuple[str, Any]:
    """Call /generate through Gradio's plain HTTP API with raw JSON (NaN and infinity allowed).

    ``values`` override :data:`REQUEST`. Returns ``(event, data)`` of the last event:
    ``("complete", outputs)`` or ``("error", {...})``.
    """
    body = json.dumps({"data": generate_payload(**dict(REQUEST, **values))}, allow_nan=True)
    with httpx.Client(timeout=timeout) as http:
        response = http.post(f"{base_url}gradio_api/call/generate", content=body,
                             headers={"content-type": "application/json"})
        if response.status_code != 200:
            return f"http {response.status_code}", response.text
        event_id = response.json()["event_id"]
        event, data = "", None
        with http.stream("GET", f"{base_url}gradio_api/call/generate/{event_id}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and event in {"complete", "error"}:
                    return event, json.loads(line[len("data: "):])
    return event or "no answer", data


def card_shown(runner: Runner, panel: Panel, model: str | None, custom: str | None) -> str:
    """The card line the page shows for a panel's selection (through the page's selection handler)."""
    shown = selection_handler(runner, panel, Policy())({panel.model: model, panel.custom: custom, panel.precision: "auto"})
    return shown[panel.card]


# ---------------------------------------------------------------------------------------------
# 3. bad input through the API
# ---------------------------------------------------------------------------------------------

#: /generate's numeric settings with their declared ranges (the one declaration in models.settings)
RANGES = {name: limits for name, limits in setting_ranges().items() if name in GENERATE_PARAMETERS}
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_TYPE = st.one_of(st.text(max_size=8), st.lists(st.integers(), max_size=3), st.booleans(),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
EMPTY = st.sampled_from([None, "", [], {}])
HUGE = st.integers(min_value=10**310, max_value=10**400)  # JSON integers too large for a float


def out_of_range(field: str) -> st.SearchStrategy:
    limits = RANGES[field]
    low, high = limits.low, limits.high
    if limits.integer:
        below = st.integers(min_value=-(10**30), max_value=int(low) - 1)
        above = st.integers(min_value=int(high) + 1, max_value=10**30)
        fraction = st.floats(min_value=low, max_value=high).filter(lambda x: not x.is_integer())
        return st.one_of(below, above, fraction, HUGE)
    # (an allowed bound is stepped over by 1e-6, not excluded: hypothesis may offer -0.0 just below 0.0)
    below = st.floats(max_value=low - 1e-6 if limits.low_inclusive else low, allow_nan=False, allow_infinity=False)
    above = st.floats(min_value=high + 1e-6, allow_nan=False, allow_infinity=False)
    return st.one_of(below, above, HUGE, HUGE.map(lambda n: -n))


def bad_value(field: str) -> st.SearchStrategy:
    if field == "load_in_8bit":  # None means "not given" (precision decides)
        return st.one_of(st.integers(), st.text(max_size=8), st.sampled_from(["", [], {}]), NON_FINITE,
                         st.lists(st.booleans(), max_size=2))
    if field == "precision":  # a bool is the old 8-bit checkbox's value, None and "" mean auto
        known = {"auto", "float32", "bfloat16", "float16", "8-bit"}
        return st.one_of(st.integers(), st.text(max_size=10).filter(lambda t: t.strip().lower() not in known | {""}),
                         NON_FINITE, st.lists(st.text(max_size=3), max_size=2), st.sampled_from([[], {}]))
    if field == "prompt":
        blank = st.text(alphabet=st.sampled_from(" \t\n\r\x00\x01\x07\x1b\x7f\x85\x9f"), max_size=20)
        return st.one_of(blank, st.integers(), st.lists(st.text(max_size=3), max_size=2), st.none(), NON_FINITE)
    return st.one_of(out_of_range(field), NON_FINITE, WRONG_TYPE, EMPTY)


BAD_SETTING = st.sampled_from([*RANGES, "load_in_8bit", "precision", "prompt"]).flatmap(
    lambda field: st.tuples(st.just(field), bad_value(field)))


def test_the_api_settings_are_the_declared_ones():
    assert set(RANGES) == {"max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "seed"}


def test_bad_settings_are_refused_naming_the_field_before_anything_runs(served, started_runs, load_requests):
    """Property: any out-of-range, non-finite, wrong-typed or empty value of any field is refused
    with an error naming that field, and no generation starts (not even a model load)."""
    loads_before = len(load_requests)

    @hypothesis_settings(max_examples=25, deadline=None)
    @given(BAD_SETTING)
    @example(("temperature", math.nan))
    @example(("top_p", math.inf))
    @example(("repetition_penalty", -math.inf))
    @example(("temperature", 10**400))
    @example(("max_new_tokens", "4"))
    @example(("seed", [1]))
    @example(("top_k", None))
    @example(("load_in_8bit", "yes"))
    @example(("precision", "float64"))
    @example(("prompt", ""))
    def check(bad_setting: tuple[str, Any]) -> None:
        field, value = bad_setting
        with case("bad_inputs"):
            event, data = raw_call(served.url, **{field: value})
            assert event == "error", f"{field}={value!r:.60} was accepted: {event} {data!r:.200}"
            message = (data or {}).get("error") or ""
            assert message.startswith(f"{field}:"), f"{field}={value!r:.60}: {message!r}"
            assert "Traceback" not in message
            assert not started_runs and not generation_threads()
            assert len(load_requests) == loads_before, "a refused request must not load a model"

    check()


def test_megabyte_prompt_is_refused_quickly_naming_the_prompt(client, started_runs):
    prompt = "word " * 200_000  # 1,000,000 characters
    with case("bad_inputs"):
        started = time.perf_counter()
        message = api_error(client, prompt=prompt)
        seconds = time.perf_counter() - started
        assert message.startswith("prompt: is 1,000,000 characters long"), message[:200]
        assert len(message) < 300, "the refusal does not echo the prompt back"
        assert seconds < 30, f"refusing a long prompt took {seconds:.1f} s"  # generous: the machine is shared
        assert not started_runs


@pytest.mark.parametrize("prompt", ["", "   \n\t ", "\x00\x01\x07\x1b\x7f\x85"], ids=["empty", "blank", "controls-only"])
def test_empty_prompts_are_refused(client, started_runs, prompt):
    with case("bad_inputs"):
        assert api_error(client, prompt=prompt).startswith("prompt: is empty")
        assert not started_runs


def test_control_characters_in_the_prompt_are_removed(served, client, started_runs):
    prompt = "The cat\x00 walks\x1b[31m to\x07 the\x7f river\r\n\tand\x85 back\x9b"
    text, stats = client.predict(model="tiny-gpt2", prompt=prompt, max_new_tokens=4, api_name="/generate")
    assert stats["finish_reason"] == "length" and text
    [api_run] = started_runs
    assert api_run.prompt == "The cat walks[31m to the river\n\tand back", repr(api_run.prompt)
    # what the model saw: the same run again, read to its result
    runner = served.runner
    *_, finished = runner.start(api_run.source, api_run.request, "control-test").events()
    seen = finished.result.prepared.text
    assert "cat walks[31m to the river" in seen and "\n\tand back" in seen, repr(seen)
    assert not any(ord(ch) < 32 and ch not in "\t\n" or 0x7F <= ord(ch) < 0xA0 for ch in seen), repr(seen)


ALLOWED_TAGS = {"p", "div", "span", "b", "i", "br", "code", "ul", "li", "details", "summary"}


def assert_inert(html: str) -> None:
    """No tag other than plain formatting, no event handler or javascript: URL in a real tag."""
    tags = {t.lower() for t in re.findall(r"<\s*/?\s*([a-zA-Z][\w-]*)", html)}
    assert tags <= ALLOWED_TAGS, f"unexpected tags {tags - ALLOWED_TAGS} in {html[:300]!r}"
    for tag in re.findall(r"<[^>]*>", html):
        bare = re.sub(r'"[^"]*"', '""', tag)  # attribute values are escaped text (quote=True): only names matter
        assert not re.search(r"\son\w+\s*=", bare, re.I) and "javascript:" not in bare.lower(), tag


def rendered_run(runner: Runner, panel: Panel, prompt: str) -> list[dict[Any, Any]]:
    """The panel updates the page sends for a run of tiny-gpt2 on ``prompt`` (with an HTML note on the card)."""
    run = runner.start(runner.resolve("tiny-gpt2"), RunRequest.parse(prompt=prompt, settings=GenerationSettings(max_new_tokens=4)),
                       "xss")
    return [render_event(event, panel, XSS) for event in run.events()]


def assert_page_updates_inert(updates: dict[Any, Any], panel: Panel) -> None:
    """Every Markdown or HTML value of a panel update is inert (the answer box is a plain text box)."""
    for component in (panel.stats, panel.card, panel.tokens):
        if component in updates:
            assert_inert(updates[component])


def test_html_in_prompts_and_model_output_is_rendered_inert(served, client, monkeypatch):
    panel = served.page.panels[Kind.CAUSAL]
    # the answer boxes are plain text boxes: their value is never parsed as HTML
    assert all(isinstance(side.output, gr.Textbox) for side in served.page.panels.values())
    assert all(block.sanitize_html for block in served.demo.blocks.values() if isinstance(block, gr.Markdown))
    # an HTML prompt is just text: it runs, and the token view and the script show it as text
    text, stats = client.predict(model="tiny-gpt2", prompt=XSS, max_new_tokens=4, api_name="/generate")
    assert stats["finish_reason"] == "length"
    updates = rendered_run(served.runner, panel, XSS)
    [ready] = [update for update in updates if panel.tokens in update]
    assert "&lt;" in ready[panel.tokens]
    strings = [node.value for node in ast.walk(ast.parse(ready[panel.code]))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert XSS in strings, "the reproducing script carries the prompt as a string literal only"
    for update in updates:
        assert_page_updates_inert(update, panel)
    # model text and errors that contain HTML: escaped in every Markdown line, kept as text in the box
    loaded = served.runner.engines["transformers"].cache.peek("tiny-gpt2")
    description = dict(loaded.description.to_dict(), origin=XSS, params_text=XSS, architecture=XSS)
    for rendered in (card_markdown(description, note=XSS), card_markdown(error=XSS), error_markdown(XSS),
                     card_markdown(architecture={"auto_class": XSS, "resolved_class": XSS, "architecture": XSS, "model_type": XSS}),
                     stats_markdown(None, status=XSS),
                     stats_markdown({"time_to_first_token": 0.1, "tokens_per_second": 5.0, "input_tokens": 3, "output_tokens": 2,
                                     "total_seconds": 0.5, "finish_reason": XSS, "notices": [XSS], "error": XSS})):
        assert "&lt;script&gt;" in rendered
        assert_inert(rendered)

    def html_stream(loaded, prepared, settings, **kwargs):  # a model whose output is HTML
        yield StreamUpdate(XSS, XSS)
        yield StreamUpdate(XSS, "", Stats(input_tokens=3, output_tokens=2, finish_reason=FinishReason.ERROR,
                                          error=XSS, notices=[XSS]))

    monkeypatch.setattr(local_engine, "stream", html_stream)
    updates = rendered_run(served.runner, panel, PROMPT)
    assert updates[-1][panel.output] == XSS, "the answer box gets the text as is (a Textbox shows it as text)"
    for update in updates:
        assert_page_updates_inert(update, panel)
    assert "&lt;script&gt;" in updates[-1][panel.stats]


def test_token_texts_and_diffs_holding_html_are_drawn_as_text():
    """Token texts are model output: the shading, its pop-ups, the diff and the token sentence escape them."""
    from components.render import confidence_html, parting_html
    from models.divergence import compare_answers
    from models.types import TokenChoice, TokenProb

    bad = ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "\"><svg onload=alert(1)>"]
    tokens = [TokenProb(i, text, 0.3, (TokenChoice(i, text, 0.3), TokenChoice(99, XSS, 0.2))) for i, text in enumerate(bad)]
    stats = Stats(input_tokens=3, output_tokens=3, tokens=tokens).to_dict()
    drawn = confidence_html(stats, "causal")
    assert_inert(drawn)
    assert "&lt;script&gt;" in drawn and "&lt;img" in drawn
    assert_inert(confidence_html({"tokens": None, "tokens_note": XSS}))
    other = [TokenProb(7, XSS, 0.5, (TokenChoice(7, XSS, 0.5),))] * 3
    divergence = compare_answers("".join(bad), XSS, tokens, other, same_vocabulary=True).to_dict()
    parted = parting_html(divergence, {"left": XSS, "right": XSS})
    assert_inert(parted)
    assert "&lt;script&gt;" in parted


# ---------------------------------------------------------------------------------------------
# 4. model ids, remote code, pickles, size limit
# ---------------------------------------------------------------------------------------------

BAD_IDS = [
    "../tiny-gpt2", "../../../../etc/passwd", "/etc/passwd", "/proc/self/environ", "~/.ssh/id_rsa", "./tiny-gpt2",
    "..", ".", "C:\\Windows\\win.ini", "owner\\name", "file:///etc/passwd", "https://evil.example/model",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2fetc%2fpasswd", "%252e%252e%252fetc", "owner/%2e%2e",
    "tiny-gpt2/../../etc", "owner/name/extra", "owner//name", "a" * 97, "owner/" + "n" * 120, "\x00", "na\nme",
    XSS, "", "   ",
]


def test_typed_model_ids_are_validated_before_anything_loads(served, client, started_runs, load_requests):
    runner, panel = served.runner, served.page.panels[Kind.SEQ2SEQ]
    loads_before = len(load_requests)
    for model_id in BAD_IDS:
        with case("bad_inputs"):
            message = api_error(client, model=model_id)  # the API: the id goes through the registry as typed
            assert message.startswith("model:"), (model_id, message)
            picked = "tiny-gpt2" if model_id.strip() else None  # the page: the custom box wins over the dropdown
            with pytest.raises(ModelIdError):
                runner.resolve(picked, model_id)
            card = card_shown(runner, panel, picked, model_id)
            assert card.startswith("⚠️ model:") and "<script" not in card, card
            assert not started_runs and len(load_requests) == loads_before and not generation_threads()
    assert api_error(client, model="a" * 97).startswith("model: id is 97 characters")


def test_model_needing_custom_code_is_refused_and_its_code_never_runs(served, hostile_models, client):
    code_ran = hostile_models / "REMOTE_CODE_RAN"
    with case("bad_inputs"):  # through the API
        message = api_error(client, model="custom-code")
        assert "needs custom code" in message and "trust_remote_code is off" in message, message
        assert not code_ran.exists(), "the repository's Python code was executed"
    with case("bad_inputs"):  # on the page, when picked
        card = card_shown(served.runner, served.page.panels[Kind.CAUSAL], "custom-code", None)
        assert "custom code" in card, card
        assert not code_ran.exists(), "the repository's Python code was executed"
    with case("bad_inputs"):  # the loader itself
        with pytest.raises(ModelLoadError, match="trust_remote_code is off"):
            load_model(served.runner.registry.resolve("custom-code"))
        assert not code_ran.exists(), "the repository's Python code was executed"


def test_pickle_weights_refused_unless_allowed_and_never_unpickled_unsafely(hostile_models, security_registry, client):
    pickle_ran = hostile_models / "PICKLE_RAN"
    for name in ("pickle-only", "evil-pickle"):
        with case("bad_inputs"):
            message = api_error(client, model=name)
            assert "pickle" in message and "refused" in message and "--allow-pickle" in message, message
            assert not pickle_ran.exists()
    # with --allow-pickle (the API handler of an app configured so): plain tensors load,
    # while a pickle carrying code is still refused (torch.load weights_only)
    generate = generate_endpoint(build_runner(AppConfig(allow_pickle=True, online=False, preload=False),
                                              registry=security_registry), Policy())
    text, stats = list(generate("pickle-only", PROMPT, max_new_tokens=4))[-1]
    assert stats["output_tokens"] == 4 and text
    with case("bad_inputs"):
        with pytest.raises(gr.Error, match="evil-pickle could not be loaded"):
            list(generate("evil-pickle", PROMPT, max_new_tokens=4))
        assert not pickle_ran.exists(), "a pickle ran code while loading"


GB = 10**9


@pytest.fixture
def hub_sizes(monkeypatch) -> dict[str, Any]:
    """The hub size lookup, monkeypatched: id -> bytes, or an exception to raise. Records the ids asked."""
    sizes: dict[str, Any] = {"asked": []}

    def lookup(repo_id: str, timeout: float = 10.0) -> int:
        sizes["asked"].append(repo_id)
        answer = sizes.get(repo_id, 0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(sources_module, "hub_weights_bytes", lookup)
    return sizes


def test_size_limit_refuses_big_typed_ids(hub_sizes, tiny_dir):
    not_found = RepositoryNotFoundError("404", response=httpx.Response(
        404, request=httpx.Request("GET", "https://huggingface.co/api/models/gone/model")))
    hub_sizes.update({"big/model": 3 * GB, "small/model": GB // 2, "exact/model": 2 * GB,
                      "gone/model": not_found, "flaky/model": TimeoutError("read timeout")})
    registry = ModelRegistry(online=True, max_custom_bytes=2 * GB)
    registry.register_dir(tiny_dir)
    refusals = [("big/model", r"^model: 'big/model' has 3\.0 GB of weights; custom models are limited to 2 GB"),
                ("gone/model", "not found on the Hugging Face hub"),
                ("flaky/model", "could not look up the size")]  # an unknown size is not let through
    for model_id, reason in refusals:
        with case("bad_inputs"):
            with pytest.raises(ModelIdError, match=reason):
                registry.resolve(model_id, custom=True)
    assert registry.resolve("small/model", custom=True).path == "small/model"
    assert registry.resolve("exact/model", custom=True).path == "exact/model"
    hub_sizes["asked"].clear()
    registry.resolve("google/flan-t5-small")  # presets and local models are never looked up
    registry.resolve("tiny-gpt2")
    with case("bad_inputs"):
        with pytest.raises(ModelIdError, match="file path"):  # ids are validated before any lookup
            registry.resolve("../big/model", custom=True)
        assert hub_sizes["asked"] == []
    # no limit, or offline (nothing to look up from): no lookup
    assert ModelRegistry(online=True).resolve("big/model", custom=True).path == "big/model"
    assert ModelRegistry(online=False, max_custom_bytes=2 * GB).resolve("big/model", custom=True).path == "big/model"
    assert hub_sizes["asked"] == []
    # through the app's handlers: the API and the page's custom box
    config = AppConfig(online=True, preload=False)
    runner = build_runner(config, registry=registry, cache=ModelCache(1))
    page = build_page(runner, config)
    with case("bad_inputs"):
        with pytest.raises(gr.Error, match="limited to 2 GB"):
            next(generate_endpoint(runner, Policy())("big/model", PROMPT))
    with case("bad_inputs"):
        assert "limited to 2 GB" in card_shown(runner, page.panels[Kind.CAUSAL], None, "big/model")


def test_size_lookup_sums_the_safetensors_files(monkeypatch):
    from types import SimpleNamespace

    import huggingface_hub

    files = {"with-safetensors": [("model-00001-of-00002.safetensors", 2 * GB), ("model-00002-of-00002.safetensors", GB),
                                  ("pytorch_model.bin", 3 * GB), ("config.json", 700)],
             "pickle-only": [("pytorch_model.bin", 5 * GB), ("README.md", 100)]}
    asked = []

    class FakeApi:
        def model_info(self, repo_id, *, files_metadata=False, timeout=None, **kwargs):
            asked.append((repo_id, files_metadata, timeout))
            return SimpleNamespace(siblings=[SimpleNamespace(rfilename=n, size=s) for n, s in files[repo_id]])

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    sources_module.hub_weights_bytes.cache_clear()
    try:
        assert sources_module.hub_weights_bytes("with-safetensors") == 3 * GB
        assert sources_module.hub_weights_bytes("pickle-only") == 5 * GB
    finally:
        sources_module.hub_weights_bytes.cache_clear()
    assert all(meta and timeout for _, meta, timeout in asked), "file sizes asked for, with a timeout"


def test_size_limit_command_line(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert parse_args([])[0].max_custom_bytes is None
    assert parse_args(["--max-custom-size", "0.5"])[0].max_custom_bytes == GB // 2
    monkeypatch.setenv("SPACE_ID", "someone/playground")
    assert parse_args([])[0].max_custom_bytes == 2 * GB
    config, _address = parse_args(["--max-custom-size", "4", "--offline"])
    assert config.max_custom_bytes == 4 * GB
    assert build_runner(config).registry.max_custom_bytes == 4 * GB, "the limit reaches the registry the app uses"


# ---------------------------------------------------------------------------------------------
# 5. Gradio hardening
# ---------------------------------------------------------------------------------------------

def front_matter(text: str) -> dict[str, str]:
    """The ``key: value`` lines of a Space's YAML header (README.md between ``---`` lines, or space.yaml)."""
    if text.startswith("---"):
        text = text.split("---", 2)[1]
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def test_installed_gradio_is_the_pinned_and_declared_release():
    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.lstrip().startswith("#"))
    assert pins["gradio"].strip() == gr.__version__, "the installed gradio is the pinned one"
    assert pins["gradio_client"].strip() == gradio_client.__version__, "the installed gradio_client is the pinned one"
    for header in ("README.md", "space.yaml"):  # a Space installs the sdk_version its header names
        assert front_matter((ROOT / header).read_text())["sdk_version"].strip() == pins["gradio"].strip(), header


def test_no_share_link_and_no_analytics(served):
    assert served.demo.share_url is None, "the app opened a public share link"
    assert not served.demo.share
    assert served.demo.analytics_enabled is False, "gradio would send launch analytics"


def raw_get(base_url: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``path`` byte for byte (no client-side normalisation of ``..`` or percent-escapes)."""
    port = urlparse(base_url).port
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and sum(map(len, chunks)) < 2**20:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


TRAVERSALS = [
    "/etc/passwd", "//etc/passwd", "../../../../../../etc/passwd", "..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%2fetc%2fpasswd", "%2Fetc%2Fpasswd",
    "%252fetc%252fpasswd", "%252e%252e%252f%252e%252e%252f%252e%252e%252fetc%252fpasswd", "..%252f..%252f..%252fetc%252fpasswd",
    "....//....//....//etc/passwd", "..%5c..%5c..%5cetc%5cpasswd", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "..%c0%af..%c0%af..%c0%afetc%c0%afpasswd", "/proc/self/environ", "%2fproc%2fself%2fenviron",
]
FILE_PREFIXES = ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/static/", "/assets/")
SECRETS = (b"root:", b"PATH=", b"import gradio", b"gradio==")  # /etc/passwd, the environment, app.py, requirements.txt


def test_file_routes_serve_nothing_outside_the_app(served):
    targets = [*TRAVERSALS, str(ROOT / "app.py"), "app.py", "../app.py", "requirements.txt"]
    for prefix in FILE_PREFIXES:
        for target in targets:
            with case("file_routes"):
                status, body = raw_get(served.url, prefix + target)
                assert not (status == 200 and any(secret in body for secret in SECRETS)), \
                    (prefix + target, status, body[:80])


def test_monitoring_endpoint_is_not_served(served):
    """Gradio's monitoring routes (the dashboard login, the event analytics summary) answer with a refusal."""
    paths = ("/monitoring", "/monitoring/", "/monitoring/summary", "/gradio_api/monitoring", "/gradio_api/monitoring/summary")
    with httpx.Client(timeout=10, follow_redirects=True) as http:
        for path in paths:
            status = http.get(served.url.rstrip("/") + path).status_code
            assert status in {401, 403, 404}, (path, status)


def test_internal_exception_details_never_reach_the_client(served, client, monkeypatch):
    secret = "internal detail /srv/secret/path.py line 42"

    def boom(*args, **kwargs):
        raise KeyError(secret)

    monkeypatch.setattr(served.runner.registry, "resolve", boom)
    message = api_error(client)
    event, data = raw_call(served.url)
    monkeypatch.undo()
    for text in (message, json.dumps(data)):
        assert "Traceback" not in text and 'File "' not in text and "secret" not in text and "KeyError" not in text, text
    assert event == "error"
    # gradio's own input checking (a call with too few values) does not leak either
    with httpx.Client(timeout=30) as http:
        event_id = http.post(f"{served.url}gradio_api/call/generate", json={"data": ["tiny-gpt2"]}).json()["event_id"]
        answer = http.get(f"{served.url}gradio_api/call/generate/{event_id}").text
    assert "error" in answer and "Traceback" not in answer and "Wanted inputs" not in answer, answer
    # and the app still answers
    assert client.predict(model="tiny-gpt2", prompt=PROMPT, max_new_tokens=3, api_name="/generate")[1]["output_tokens"] == 3
