"""Lets no one in where they don't belong: bad input, model ids, remote code, pickles, Gradio's own routes.

The app runs in-process on 127.0.0.1 with a private registry and cache. Nothing here reaches
the network: the hub size lookup of typed ids is monkeypatched.

How the bad settings reach the app: gradio_client cannot send NaN or infinity (its JSON encoder
refuses them), so the property test posts raw JSON to Gradio's plain HTTP API
(``POST /gradio_api/call/generate``, then the event stream ``GET /gradio_api/call/generate/<id>``),
the same queue and handler as gradio_client. Python's JSON encoder writes ``NaN`` / ``Infinity``
and the server's decoder reads them, so a non-finite value arrives at the handler as a float.

The figures (bad inputs tried / refused, hypothesis examples, path-traversal requests) go to the
"bad_inputs" and "file_routes" sections of ``artifacts/reliability.json``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import pickle
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from hypothesis import example, given, settings as hypothesis_settings
from hypothesis import strategies as st

import app as app_module
from app import AppConfig, Playground, build_app, launch_kwargs, parse_args
from components.render import card_markdown, error_markdown, stats_markdown
from models import GenerationSettings, ModelCache, ModelIdError, ModelLoadError, ModelRegistry, load_model
from models import sources as sources_module
from models.stream import FinishReason, Stats, StreamUpdate
from tests.apphelpers import RunningApp, count_figures, describe, generation_threads, running_app

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The cat walks to the river"
XSS = '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a>'

# ---------------------------------------------------------------------------------------------
# figures for the README: this module fills the "bad_inputs" and "file_routes" sections
# ---------------------------------------------------------------------------------------------

def count_refusals(kind: str, tried: int, refused: int, hypothesis_examples: int = 0) -> None:
    count_figures("bad_inputs", tried=tried, refused=refused, hypothesis_examples=hypothesis_examples,
                  **{f"{kind}_tried": tried, f"{kind}_refused": refused})


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
def sec_root(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
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
def sec_registry(tiny_dir: Path, sec_root: Path) -> ModelRegistry:
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    registry.register_dir(sec_root)
    return registry


@pytest.fixture(scope="module")
def loads() -> list[str]:
    """Names the app's cache was asked to load, in order."""
    return []


@pytest.fixture(scope="module")
def sec_app(sec_registry: ModelRegistry, loads: list[str]) -> Iterator[RunningApp]:
    def counting_loader(source, **kwargs):
        loads.append(source.name)
        return load_model(source, **kwargs)

    cache = ModelCache(8, loader=counting_loader)
    with running_app(sec_registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as running:
        yield running


@pytest.fixture(scope="module")
def client(sec_app: RunningApp) -> Iterator[Client]:
    c = Client(sec_app.url, verbose=False, analytics_enabled=False, download_files=False)
    yield c
    c.close()


@pytest.fixture
def generate_calls(sec_app: RunningApp) -> Iterator[list[str]]:
    """Every generation the app starts while the test runs (wraps ``Playground.generate``)."""
    pg = sec_app.playground
    calls: list[str] = []
    original = pg.generate

    def counting(source, *args, **kwargs):
        calls.append(source.name)
        return original(source, *args, **kwargs)

    pg.generate = counting
    try:
        yield calls
    finally:
        del pg.generate


def api_error(client: Client, **kwargs: Any) -> str:
    """The error message /generate answers with (fails the test if it answers normally)."""
    kwargs = {"model": "tiny-gpt2", "prompt": PROMPT, "max_new_tokens": 4, **kwargs}
    with pytest.raises(Exception) as info:
        client.predict(api_name="/generate", **kwargs)
    return str(info.value)


DEFAULTS = {"model": "tiny-gpt2", "prompt": PROMPT, "max_new_tokens": 4, "temperature": 0.0, "top_p": 1.0, "top_k": 0,
            "repetition_penalty": 1.0, "seed": 0, "load_in_8bit": False}


def raw_call(base_url: str, values: dict[str, Any], timeout: float = 60.0) -> tuple[str, Any]:
    """Call /generate through Gradio's plain HTTP API with raw JSON (NaN and infinity allowed).

    Returns ``(event, data)`` of the last event: ``("complete", outputs)`` or ``("error", {...})``.
    """
    body = json.dumps({"data": [values[k] for k in DEFAULTS]}, allow_nan=True)
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


# ---------------------------------------------------------------------------------------------
# 3. bad input through the API
# ---------------------------------------------------------------------------------------------

#: field -> (whole number?, low, high, low allowed?, high allowed?)
RANGES = {
    "max_new_tokens": (True, 1, 2048, True, True),
    "temperature": (False, 0.0, 2.0, True, True),
    "top_p": (False, 0.0, 1.0, False, True),
    "top_k": (True, 0, 1000, True, True),
    "repetition_penalty": (False, 0.0, 10.0, False, True),
    "seed": (True, 0, 2**32 - 1, True, True),
}
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
WRONG_TYPE = st.one_of(st.text(max_size=8), st.lists(st.integers(), max_size=3), st.booleans(),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
EMPTY = st.sampled_from([None, "", [], {}])
HUGE = st.integers(min_value=10**310, max_value=10**400)  # JSON integers too large for a float


def out_of_range(field: str) -> st.SearchStrategy:
    integer, low, high, low_ok, high_ok = RANGES[field]
    if integer:
        below = st.integers(min_value=-(10**30), max_value=low - 1)
        above = st.integers(min_value=high + 1, max_value=10**30)
        fraction = st.floats(min_value=low, max_value=high).filter(lambda x: not x.is_integer())
        return st.one_of(below, above, fraction, HUGE)
    # (an allowed bound is stepped over by 1e-6, not excluded: hypothesis may offer -0.0 just below 0.0)
    below = st.floats(max_value=low - 1e-6 if low_ok else low, allow_nan=False, allow_infinity=False)
    above = st.floats(min_value=high + 1e-6 if high_ok else high, allow_nan=False, allow_infinity=False)
    return st.one_of(below, above, HUGE, HUGE.map(lambda n: -n))


def bad_value(field: str) -> st.SearchStrategy:
    if field == "load_in_8bit":
        return st.one_of(st.integers(), st.text(max_size=8), EMPTY, NON_FINITE, st.lists(st.booleans(), max_size=2))
    if field == "prompt":
        blank = st.text(alphabet=st.sampled_from(" \t\n\r\x00\x01\x07\x1b\x7f\x85\x9f"), max_size=20)
        return st.one_of(blank, st.integers(), st.lists(st.text(max_size=3), max_size=2), st.none(), NON_FINITE)
    return st.one_of(out_of_range(field), NON_FINITE, WRONG_TYPE, EMPTY)


BAD_SETTING = st.sampled_from([*RANGES, "load_in_8bit", "prompt"]).flatmap(
    lambda field: st.tuples(st.just(field), bad_value(field)))


def test_bad_settings_are_refused_naming_the_field_before_anything_runs(sec_app, generate_calls, loads):
    """Property: any out-of-range, non-finite, wrong-typed or empty value of any field is refused
    with an error naming that field, and no generation starts (not even a model load)."""
    seen = {"n": 0, "refused": 0}
    loads_before = len(loads)

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
    @example(("prompt", ""))
    def check(case: tuple[str, Any]) -> None:
        field, value = case
        seen["n"] += 1
        event, data = raw_call(sec_app.url, dict(DEFAULTS, **{field: value}))
        assert event == "error", f"{field}={value!r:.60} was accepted: {event} {data!r:.200}"
        message = (data or {}).get("error") or ""
        assert message.startswith(f"{field}:"), f"{field}={value!r:.60}: {message!r}"
        assert "Traceback" not in message
        assert not generate_calls and not generation_threads()
        seen["refused"] += 1

    check()
    assert len(loads) == loads_before, "a refused request must not load a model"
    count_refusals("settings", tried=seen["n"], refused=seen["refused"], hypothesis_examples=seen["n"])


def test_megabyte_prompt_is_refused_quickly_naming_the_prompt(client, generate_calls):
    prompt = "word " * 200_000  # 1,000,000 characters
    started = time.perf_counter()
    message = api_error(client, prompt=prompt)
    seconds = time.perf_counter() - started
    assert message.startswith("prompt: is 1,000,000 characters long"), message[:200]
    assert len(message) < 300, "the refusal does not echo the prompt back"
    assert seconds < 30, f"refusing a long prompt took {seconds:.1f} s"  # generous: the machine is shared
    assert not generate_calls
    count_refusals("prompt", tried=1, refused=1)


@pytest.mark.parametrize("prompt", ["", "   \n\t ", "\x00\x01\x07\x1b\x7f\x85"], ids=["empty", "blank", "controls-only"])
def test_empty_prompts_are_refused(client, generate_calls, prompt):
    assert api_error(client, prompt=prompt).startswith("prompt: is empty")
    assert not generate_calls
    count_refusals("prompt", tried=1, refused=1)


def test_control_characters_in_the_prompt_are_removed(sec_app, client):
    prompt = "The cat\x00 walks\x1b[31m to\x07 the\x7f river\r\n\tand\x85 back\x9b"
    text, stats = client.predict(model="tiny-gpt2", prompt=prompt, max_new_tokens=4, api_name="/generate")
    assert stats["finish_reason"] == "length" and text
    source = sec_app.playground.registry.resolve("tiny-gpt2")
    *_, last = sec_app.playground.generate(source, prompt, GenerationSettings(max_new_tokens=4), False, "control-test")
    record = last.record
    seen = record["prompt_as_seen"]
    assert "cat walks[31m to the river" in seen and "\n\tand back" in seen, repr(seen)
    assert not any(ord(ch) < 32 and ch not in "\t\n" or 0x7F <= ord(ch) < 0xA0 for ch in seen), repr(seen)


ALLOWED_TAGS = {"p", "div", "span", "b", "i", "br", "code", "ul", "li"}


def assert_inert(html: str) -> None:
    """No tag other than plain formatting, no event handler or javascript: URL in a real tag."""
    tags = {t.lower() for t in re.findall(r"<\s*/?\s*([a-zA-Z][\w-]*)", html)}
    assert tags <= ALLOWED_TAGS, f"unexpected tags {tags - ALLOWED_TAGS} in {html[:300]!r}"
    for tag in re.findall(r"<[^>]*>", html):
        bare = re.sub(r'"[^"]*"', '""', tag)  # attribute values are escaped text (quote=True): only names matter
        assert not re.search(r"\son\w+\s*=", bare, re.I) and "javascript:" not in bare.lower(), tag


def test_html_in_prompts_and_model_output_is_rendered_inert(sec_app, client, monkeypatch):
    pg = sec_app.playground
    # the answer boxes are plain text boxes: their value is never parsed as HTML
    outputs = {b.elem_id: b for b in sec_app.demo.blocks.values() if getattr(b, "elem_id", None) in {"seq2seq-output", "causal-output"}}
    assert set(outputs) == {"seq2seq-output", "causal-output"} and all(isinstance(b, gr.Textbox) for b in outputs.values())
    assert all(b.sanitize_html for b in sec_app.demo.blocks.values() if isinstance(b, gr.Markdown))
    # an HTML prompt is just text: it runs, and the token view shows it as text
    text, stats = client.predict(model="tiny-gpt2", prompt=XSS, max_new_tokens=4, api_name="/generate")
    assert stats["finish_reason"] == "length"
    loaded = pg.cache.peek("tiny-gpt2")
    view, tokens_html, code = pg.explain_run(loaded, XSS, GenerationSettings(max_new_tokens=4))
    assert view is not None and "&lt;" in tokens_html
    assert_inert(tokens_html)
    strings = [n.value for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert XSS in strings, "the reproducing script carries the prompt as a string literal only"
    # model text and errors that contain HTML: escaped in every Markdown line, kept as text in the box
    description = dict(loaded.description.to_dict(), origin=XSS, params_text=XSS, architecture=XSS)
    for rendered in (card_markdown(description, note=XSS), card_markdown(error=XSS), error_markdown(XSS),
                     card_markdown(architecture={"auto_class": XSS, "resolved_class": XSS, "architecture": XSS, "model_type": XSS}),
                     stats_markdown(None, status=XSS),
                     stats_markdown({"time_to_first_token": 0.1, "tokens_per_second": 5.0, "input_tokens": 3, "output_tokens": 2,
                                     "total_seconds": 0.5, "finish_reason": XSS, "notices": [XSS], "error": XSS})):
        assert "&lt;script&gt;" in rendered
        assert_inert(rendered)

    def fake_stream(loaded, prompt, settings, **kwargs):  # a model whose output is HTML
        from models.prompt import prepare

        prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings)
        yield StreamUpdate(XSS, XSS, prepared)
        yield StreamUpdate(XSS, "", prepared, Stats(input_tokens=3, output_tokens=2, finish_reason=FinishReason.ERROR,
                                                    error=XSS, notices=[XSS]))

    monkeypatch.setattr(app_module, "stream", fake_stream)
    updates = list(pg.generate(pg.registry.resolve("tiny-gpt2"), PROMPT, GenerationSettings(max_new_tokens=4), False, "xss"))
    assert updates[-1].text == XSS, "the answer box gets the text as is (a Textbox shows it as text)"
    for update in updates:
        assert_inert(update.status)
    assert "&lt;script&gt;" in updates[-1].status


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


def test_typed_model_ids_are_validated_before_anything_loads(sec_app, client, generate_calls, loads):
    pg = sec_app.playground
    loads_before, refused = len(loads), 0
    for model_id in BAD_IDS:
        message = api_error(client, model=model_id)  # the API: the id goes through the registry as typed
        assert message.startswith("model:"), (model_id, message)
        with pytest.raises(ModelIdError):  # the page: the custom box wins over the dropdown
            pg.resolve("tiny-gpt2", model_id) if model_id.strip() else pg.resolve(None, model_id)
        card = describe(sec_app.demo, "seq2seq", "tiny-gpt2" if model_id.strip() else None, model_id)["card"]
        assert card.startswith("⚠️ model:") and "<script" not in card, card
        refused += 1
    assert api_error(client, model="a" * 97).startswith("model: id is 97 characters")
    assert not generate_calls and len(loads) == loads_before and not generation_threads()
    count_refusals("model_id", tried=len(BAD_IDS), refused=refused)


def test_model_needing_custom_code_is_refused_and_its_code_never_runs(sec_app, sec_root, client):
    message = api_error(client, model="custom-code")
    assert "needs custom code" in message and "trust_remote_code is off" in message, message
    card = describe(sec_app.demo, "causal", "custom-code", None)["card"]
    assert "custom code" in card, card
    with pytest.raises(ModelLoadError, match="trust_remote_code is off"):
        load_model(sec_app.playground.registry.resolve("custom-code"))
    assert not (sec_root / "REMOTE_CODE_RAN").exists(), "the repository's Python code was executed"
    count_refusals("remote_code", tried=3, refused=3)


def test_pickle_weights_refused_unless_allowed_and_never_unpickled_unsafely(sec_app, sec_root, sec_registry, client):
    for name in ("pickle-only", "evil-pickle"):
        message = api_error(client, model=name)
        assert "pickle" in message and "refused" in message and "--allow-pickle" in message, message
    assert not (sec_root / "PICKLE_RAN").exists()
    # with --allow-pickle (an app configured so, driven through its API handler): plain
    # tensors load, while a pickle carrying code is still refused (torch.load weights_only)
    pg = Playground(AppConfig(allow_pickle=True, online=False, preload=False), sec_registry, ModelCache(2, allow_pickle=True))
    text, stats = list(pg.api_generate("pickle-only", PROMPT, max_new_tokens=4))[-1]
    assert stats["output_tokens"] == 4 and text
    with pytest.raises(gr.Error, match="evil-pickle could not be loaded"):
        list(pg.api_generate("evil-pickle", PROMPT, max_new_tokens=4))
    assert not (sec_root / "PICKLE_RAN").exists(), "a pickle ran code while loading"
    count_refusals("pickle", tried=3, refused=3)


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
    class RepositoryNotFoundError(Exception):  # matched by name, as huggingface_hub's is
        pass

    hub_sizes.update({"big/model": 3 * GB, "small/model": GB // 2, "exact/model": 2 * GB,
                      "gone/model": RepositoryNotFoundError("404"), "flaky/model": TimeoutError("read timeout")})
    registry = ModelRegistry(online=True, max_custom_bytes=2 * GB)
    registry.register_dir(tiny_dir)
    with pytest.raises(ModelIdError, match=r"^model: 'big/model' has 3\.0 GB of weights; custom models are limited to 2 GB"):
        registry.resolve("big/model", custom=True)
    assert registry.resolve("small/model", custom=True).path == "small/model"
    assert registry.resolve("exact/model", custom=True).path == "exact/model"
    with pytest.raises(ModelIdError, match="not found on the Hugging Face hub"):
        registry.resolve("gone/model", custom=True)
    with pytest.raises(ModelIdError, match="could not look up the size"):  # an unknown size is not let through
        registry.resolve("flaky/model", custom=True)
    hub_sizes["asked"].clear()
    registry.resolve("google/flan-t5-small")  # presets and local models are never looked up
    registry.resolve("tiny-gpt2")
    with pytest.raises(ModelIdError, match="file path"):  # ids are validated before any lookup
        registry.resolve("../big/model", custom=True)
    assert hub_sizes["asked"] == []
    # no limit, or offline (nothing to look up from): no lookup
    assert ModelRegistry(online=True).resolve("big/model", custom=True).path == "big/model"
    assert ModelRegistry(online=False, max_custom_bytes=2 * GB).resolve("big/model", custom=True).path == "big/model"
    assert hub_sizes["asked"] == []
    # through the app's handlers: the API and the page's custom box
    demo = build_app(AppConfig(online=True, preload=False), registry=registry, cache=ModelCache(1))
    pg = demo.playground
    with pytest.raises(gr.Error, match="limited to 2 GB"):
        next(pg.api_generate("big/model", PROMPT))
    assert "limited to 2 GB" in describe(demo, "causal", None, "big/model")["card"]
    count_refusals("size_limit", tried=4, refused=4)


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
    assert parse_args(["--max-custom-size", "4"])[0].max_custom_bytes == 4 * GB
    demo = app_module.build_app(AppConfig(online=True, preload=False, max_custom_bytes=3 * GB))
    try:
        assert demo.playground.registry.max_custom_bytes == 3 * GB
    finally:
        demo.close()


# ---------------------------------------------------------------------------------------------
# 5. Gradio hardening
# ---------------------------------------------------------------------------------------------

MIN_GRADIO = (6, 31, 0)  # the audited release; moving below it must be a decision that updates this test


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_gradio_is_pinned_to_a_recent_release():
    pins = dict(line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.lstrip().startswith("#"))
    assert "gradio" in pins and "gradio_client" in pins
    assert _version(pins["gradio"]) >= MIN_GRADIO, pins["gradio"]
    assert pins["gradio"].strip() == gr.__version__, "the installed gradio is the pinned one"


def test_launch_options_and_analytics_are_safe(sec_app):
    kwargs = launch_kwargs()
    assert kwargs["share"] is False and kwargs["show_error"] is False and kwargs["enable_monitoring"] is False
    assert os.environ.get("GRADIO_ANALYTICS_ENABLED") == "False"
    assert sec_app.demo.analytics_enabled is False
    assert sec_app.demo.share is False and sec_app.demo.show_error is False


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


def test_file_routes_serve_nothing_outside_the_app(sec_app):
    app_source = str(ROOT / "app.py")
    targets = [*TRAVERSALS, app_source, "app.py", "../app.py", "requirements.txt"]
    served = []
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/static/", "/assets/"):
        for target in targets:
            status, body = raw_get(sec_app.url, prefix + target)
            if status == 200 and (b"root:" in body or b"PATH=" in body or b"import gradio" in body or b"gradio==" in body):
                served.append((prefix + target, status, body[:80]))
    assert not served, served
    count_figures("file_routes", tried=5 * len(targets), served=len(served))


def test_monitoring_endpoint_is_not_served(sec_app):
    for path in ("/monitoring", "/gradio_api/monitoring", "/monitoring/", "/gradio_api/monitoring/"):
        status, _body = raw_get(sec_app.url, path)
        assert status != 200, path


def test_internal_exception_details_never_reach_the_client(sec_app, client, monkeypatch):
    secret = "internal detail /srv/secret/path.py line 42"

    def boom(*args, **kwargs):
        raise KeyError(secret)

    monkeypatch.setattr(sec_app.playground.registry, "resolve", boom)
    message = api_error(client)
    event, data = raw_call(sec_app.url, DEFAULTS)
    monkeypatch.undo()
    for text in (message, json.dumps(data)):
        assert "Traceback" not in text and 'File "' not in text and "secret" not in text and "KeyError" not in text, text
    assert event == "error"
    # gradio's own input checking (a call with too few values) does not leak either
    with httpx.Client(timeout=30) as http:
        event_id = http.post(f"{sec_app.url}gradio_api/call/generate", json={"data": ["tiny-gpt2"]}).json()["event_id"]
        answer = http.get(f"{sec_app.url}gradio_api/call/generate/{event_id}").text
    assert "error" in answer and "Traceback" not in answer and "Wanted inputs" not in answer, answer
    # and the app still answers
    assert client.predict(model="tiny-gpt2", prompt=PROMPT, max_new_tokens=3, api_name="/generate")[1]["output_tokens"] == 3
