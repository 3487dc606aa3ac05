"""The playground app through its API (gradio_client), as an API user or a page would use it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import gradio as gr
import yaml
from gradio_client import Client

from huggingface_hub import metadata_load

from components.settings import SHARED_FIELDS
from models import GenerationSettings, ModelCache, ModelRegistry
from models.settings import setting_ranges
from models.tiny import build_tiny
from tests.apphelpers import built_page, generation_threads, running_app, slowed
from tests.modelhelpers import generate_text
from web.config import Address, AppConfig, parse_args

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app_models(tmp_path_factory):
    """A private registry and cache (tests here slow models down; the session cache stays untouched)."""
    root = tmp_path_factory.mktemp("app-models")
    build_tiny("t5", root / "tiny-t5", never_stop=True)
    build_tiny("gpt2", root / "tiny-gpt2", never_stop=True)
    build_tiny("gpt2", root / "slow-gpt2", never_stop=True, seed=1)
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{ this is not json")
    registry = ModelRegistry(online=False)
    registry.register_dir(root)
    cache = ModelCache(8)
    return registry, cache


@pytest.fixture(scope="module")
def app(app_models):
    registry, cache = app_models
    with running_app(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2") as running:
        yield running


def _stream(job) -> list:
    outputs = []
    for out in job:
        outputs.append(out)
    return outputs


def test_named_endpoints_are_documented(app):
    api = Client(app.url, verbose=False).view_api(print_info=False, return_format="dict")
    endpoints = api["named_endpoints"]
    assert {"/generate", "/models", "/stop"} <= set(endpoints)
    params = [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert params == ["model", "prompt", "max_new_tokens", "temperature", "top_p", "top_k", "repetition_penalty",
                      "seed", "load_in_8bit", "precision"]
    assert not any(name.startswith("/lambda") for name in endpoints), "internal UI events must not be public API"


def test_generate_streams_growing_text_then_stats(app, app_models):
    registry, cache = app_models
    client = Client(app.url, verbose=False)
    job = client.submit(model="tiny-gpt2", prompt="The cat walks to the river", max_new_tokens=24, api_name="/generate")
    outputs = _stream(job)
    final_text, stats = job.result()
    texts = [text for text, _ in outputs]
    assert len(set(texts)) >= 3, "text must arrive in several steps, not all at once"
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:])), "each update extends the previous one"
    assert stats["finish_reason"] == "length" and stats["output_tokens"] == 24
    assert stats["description"]["resolved_class"] == "GPT2LMHeadModel"
    expected, expected_stats = generate_text(cache.peek("tiny-gpt2"), "The cat walks to the river",
                                             GenerationSettings(max_new_tokens=24))
    assert final_text == expected
    tokens = stats["tokens"]  # one entry per generated token, in order: id, text, probability and the top 5
    assert len(tokens) == 24 and "".join(t["text"] for t in tokens) == final_text and stats["tokens_note"] is None
    assert all(set(t) == {"id", "text", "prob", "top"} and len(t["top"]) == 5 for t in tokens)
    assert [t["id"] for t in tokens] == [t.id for t in expected_stats.tokens]
    assert stats["confidence"]["tokens"] == 24


def test_models_endpoint_lists_local_and_marks_hub_presets_unavailable(app):
    listing = Client(app.url, verbose=False).predict(api_name="/models")
    seq = {m["name"]: m for m in listing["seq2seq"]}
    assert seq["tiny-t5"]["unavailable"] is None
    assert "hub" in seq["google/flan-t5-small"]["unavailable"]


@pytest.mark.parametrize(("field", "value"), [
    ("max_new_tokens", 0), ("temperature", -1.0), ("top_p", 0.0), ("top_p", 1.5), ("top_k", -3),
    ("top_k", 2.5), ("repetition_penalty", 0.0), ("seed", -1),
])
def test_bad_settings_are_refused_naming_the_field(app, field, value):
    client = Client(app.url, verbose=False)
    with pytest.raises(Exception, match=field):
        client.predict(model="tiny-gpt2", prompt="hello", **{field: value}, api_name="/generate")
    assert not generation_threads()


def test_empty_prompt_and_path_ids_are_refused(app):
    client = Client(app.url, verbose=False)
    with pytest.raises(Exception, match="prompt"):
        client.predict(model="tiny-gpt2", prompt="   ", api_name="/generate")
    with pytest.raises(Exception, match="file path"):
        client.predict(model="/etc/passwd", prompt="hello", api_name="/generate")


def test_fast_side_is_not_held_back_by_slow_side(app, app_models):
    registry, cache = app_models
    slow = cache.get(registry.resolve("slow-gpt2"))
    client = Client(app.url, verbose=False)
    finished: dict[str, float] = {}
    with slowed(slow, 0.05):
        start = time.perf_counter()
        slow_job = client.submit(model="slow-gpt2", prompt="one two three", max_new_tokens=40, api_name="/generate")
        time.sleep(0.3)  # the slow side is already generating
        fast_job = client.submit(model="tiny-t5", prompt="one two three", max_new_tokens=40, api_name="/generate")
        fast_job.result()
        finished["fast"] = time.perf_counter() - start
        slow_job.result()
        finished["slow"] = time.perf_counter() - start
    assert finished["fast"] < finished["slow"], finished


def test_stop_ends_both_generations_and_keeps_partial_text(app, app_models):
    registry, cache = app_models
    slow = cache.get(registry.resolve("slow-gpt2"))
    client = Client(app.url, verbose=False)  # one client = one session, like one browser tab
    with slowed(slow, 0.05):
        jobs = [client.submit(model="slow-gpt2", prompt=p, max_new_tokens=400, api_name="/generate") for p in ("a b", "c d")]
        deadline = time.time() + 30
        while time.time() < deadline and not all(len(j.outputs()) >= 3 for j in jobs):
            time.sleep(0.05)
        client.predict(api_name="/stop")
        results = [j.result(timeout=30) for j in jobs]
    for text, stats in results:
        assert stats["finish_reason"] == "stopped"
        assert text and stats["output_tokens"] < 400
    deadline = time.time() + 5
    while generation_threads() and time.time() < deadline:
        time.sleep(0.05)
    assert not generation_threads()
    assert app.runner.running() == 0


def test_stop_from_another_session_does_not_stop_mine(app, app_models):
    registry, cache = app_models
    slow = cache.get(registry.resolve("slow-gpt2"))
    mine, other = Client(app.url, verbose=False), Client(app.url, verbose=False)
    with slowed(slow, 0.02):
        job = mine.submit(model="slow-gpt2", prompt="a b", max_new_tokens=30, api_name="/generate")
        while len(job.outputs()) < 2:
            time.sleep(0.02)
        other.predict(api_name="/stop")
        _text, stats = job.result(timeout=30)
    assert stats["finish_reason"] == "length"


def test_failing_model_errors_while_other_side_completes(app):
    client = Client(app.url, verbose=False)
    broken = client.submit(model="broken", prompt="hello", api_name="/generate")
    good = client.submit(model="tiny-t5", prompt="hello", max_new_tokens=12, api_name="/generate")
    with pytest.raises(Exception, match="missing or corrupt"):
        broken.result(timeout=60)
    text, stats = good.result(timeout=60)
    assert stats["finish_reason"] == "length" and text
    # and the app keeps serving
    assert client.predict(model="tiny-gpt2", prompt="again", max_new_tokens=4, api_name="/generate")[1]["output_tokens"] == 4


def test_command_line_defaults_and_model_dirs(tmp_path):
    config, address = parse_args([])
    assert address == Address("127.0.0.1", None), "Gradio picks 7860, or the next free port"
    assert isinstance(config, AppConfig) and config.model_dirs == []
    a, b = (tmp_path / "a", tmp_path / "b")
    a.mkdir(), b.mkdir()
    config, address = parse_args(["--host", "0.0.0.0", "--port", "9000", "--model-dir", str(a), "--model-dir", str(b),
                                  "--seq2seq", "x", "--causal", "y", "--no-allow-custom"])
    assert (address.host, address.port, config.model_dirs, config.seq2seq, config.causal, config.allow_custom) == \
        ("0.0.0.0", 9000, [str(a), str(b)], "x", "y", False)


@pytest.mark.parametrize("argv, says", [
    (["--model-dir", "/path/to/your/checkpoints"], "argument --model-dir: /path/to/your/checkpoints: not a folder "
                                                   "(give a folder that holds model folders or .gguf files)"),
    (["--port", "http"], "argument --port: expected a whole number, got 'http'"),
    (["--port", "70000"], "argument --port: expected 1 or more and at most 65535, got 70000"),
    (["--max-models", "0"], "argument --max-models: expected 1 or more, got 0"),
    (["--concurrency", "-3"], "argument --concurrency: expected 1 or more, got -3"),
    (["--queue-size", "2.5"], "argument --queue-size: expected a whole number, got '2.5'"),
    (["--group-window", "-1"], "argument --group-window: expected 0 or more, got -1"),
    (["--per-visitor", "-1"], "argument --per-visitor: expected 0 or more, got -1"),
    (["--keep-files", "0"], "argument --keep-files: expected more than 0, got 0"),
    (["--max-custom-size", "none"], "argument --max-custom-size: expected a number, got 'none'"),
    (["--public", "--max-new-tokens-public", "0"], "argument --max-new-tokens-public: expected 1 or more, got 0"),
])
def test_a_bad_command_line_value_is_one_line_naming_the_flag_and_exit_2(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(f"error: {says}"), err


def test_the_offline_command_of_the_docs_copied_literally_says_what_is_wrong_in_one_line():
    """docs/deploying.md's offline start with its placeholder folder: argparse's usage and one error line."""
    command = next(line for line in (ROOT / "docs" / "deploying.md").read_text().splitlines()
                   if line.startswith("python app.py") and "/path/to/your/checkpoints" in line)
    done = subprocess.run([sys.executable, *command.split()[1:], "--no-preload"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == \
        "app.py: error: argument --model-dir: /path/to/your/checkpoints: not a folder (give a folder that holds " \
        "model folders or .gguf files)"


def test_a_start_model_that_is_not_here_is_refused_before_serving(capsys, monkeypatch):
    """``--causal`` naming a model this machine does not have: one line naming the flag, exit 2, nothing served."""
    import app as app_module  # the entry point, as `python app.py` runs it
    monkeypatch.setattr(app_module, "launch", lambda *a, **k: pytest.fail("served despite a bad --causal"))
    with pytest.raises(SystemExit) as exit_info:
        app_module.main(["--offline", "--no-preload", "--no-allow-custom", "--causal", "no-such-model"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "error: argument --causal: model: 'no-such-model' is not one of this playground's models" in err


def test_custom_ids_off_by_default_on_a_space(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/playground")
    monkeypatch.delenv("PLAYGROUND_ALLOW_CUSTOM", raising=False)
    assert parse_args([])[0].allow_custom is False
    monkeypatch.setenv("PLAYGROUND_ALLOW_CUSTOM", "1")
    assert parse_args([])[0].allow_custom is True


def test_space_yaml_agrees_with_readme_header():
    space = yaml.safe_load((ROOT / "space.yaml").read_text())
    assert space == metadata_load(ROOT / "README.md"), "README.md must start with the Space's YAML header, equal to space.yaml"
    assert space["sdk"] == "gradio" and space["app_file"] == "app.py"
    pinned = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    assert space["sdk_version"] == pinned["gradio"]


def test_every_slider_spans_exactly_the_schema_range(app_models):
    """One declaration of each limit: the page's controls offer exactly the range the validator accepts."""
    registry, cache = app_models
    page, _runner = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2")
    ranges = setting_ranges()
    assert set(SHARED_FIELDS) == set(ranges)
    for panel in page.panels.values():
        for name, control in zip(SHARED_FIELDS, panel.settings.components()):
            declared = ranges[name]
            if not isinstance(control, gr.Slider):  # the seed box: checked by the schema, which names the field
                assert name == "seed" and control.value == declared.default
                continue
            assert (control.minimum, control.maximum) == (declared.lowest_allowed, declared.high), name
            GenerationSettings(**{name: control.minimum})  # the slider's ends are accepted…
            GenerationSettings(**{name: control.maximum})
            assert control.value == declared.default, name  # no preset here: the schema's default


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -r requirements.txt" in readme
    assert "python app.py" in readme
    assert "python -m pytest" in readme
    assert "python -m pytest" in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "docs" / "screenshot.png").is_file() and "(docs/screenshot.png)" in readme
    using = (ROOT / "docs" / "using.md").read_text()  # the manual page of the prompt-set tab, beside its shots
    for shot in ("prompt-set.png", "prompt-set-real.png"):
        assert (ROOT / "docs" / shot).is_file() and f"]({shot})" in using, shot
    for page in ("using", "api", "deploying", "benchmarks"):
        assert f"(docs/{page}.md)" in readme and (ROOT / "docs" / f"{page}.md").is_file(), page
