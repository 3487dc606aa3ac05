"""Seq2seq vs causal playground: one prompt, two models, both streaming side by side.

Run ``python app.py`` and open http://127.0.0.1:7860. ``python app.py --help`` lists options.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no analytics calls from a public demo

import gradio as gr  # noqa: E402

from components.examples import EXAMPLES  # noqa: E402
from components.export import (add_to_history, build_comparison, find_comparison, history_choices,  # noqa: E402
                               with_rating, write_exports)
from components.panel import Panel, build_panel  # noqa: E402
from components.render import (card_markdown, class_markdown, error_markdown, prompt_view_html,  # noqa: E402
                               stats_markdown)
from components.settings import SHARED_FIELDS  # noqa: E402
from components.share import ShareControls, build_share  # noqa: E402
from models import (DEFAULT_CAUSAL, DEFAULT_SEQ2SEQ, GenerationSettings, Kind, LoadedModel, ModelCache,  # noqa: E402
                    ModelIdError, ModelLoadError, ModelRegistry, ModelSource, PreparedPrompt, SettingsError,
                    UnsupportedModelError, build_snippet, class_report, eight_bit_status, get_preset, hub_reachable,
                    prepare, prompt_view, set_offline, stream, validate_prompt)
from models.sources import MAX_CUSTOM_BYTES_ON_SPACE  # noqa: E402
from models.tiny import UNTRAINED_NOTE  # noqa: E402

SIDES = (Kind.SEQ2SEQ, Kind.CAUSAL)
NO_LOCAL_SEQ2SEQ = ("No seq2seq model is available on this machine and the Hugging Face hub cannot be reached. "
                    "To get one: with a connection, run `python -c \"from transformers import pipeline; "
                    "pipeline('text2text-generation', 'google/flan-t5-small')\"` once (it stays in the local cache), "
                    "or start with `python app.py --model-dir DIR` pointing at a local checkpoint folder.")
KEYBOARD_JS = """
<script>
document.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
    const button = document.getElementById('run-btn');
    if (button) { e.preventDefault(); button.click(); }
  }
});
</script>
"""
CSS = "#seq2seq-output textarea, #causal-output textarea { font-family: ui-monospace, monospace; }"


class SideUpdate(NamedTuple):
    """One step of one side's run, as :meth:`Playground.generate` yields it."""

    text: str  # the answer so far
    status: str  # Markdown: a loading / generating status, an error, or the final stats line
    loaded: LoadedModel | None = None  # set once the model is ready
    prepared: PreparedPrompt | None = None  # the model input, set with ``loaded``
    record: dict[str, Any] | None = None  # set on the last step: what the export keeps


@dataclass
class AppConfig:
    """Everything the command line decides.

    Args:
        model_dirs: folders whose models are registered under their folder names.
        seq2seq / causal: the model each panel starts with (preset, hub id or registered name).
        allow_custom: accept typed hub ids (off by default on a public Space).
        allow_pickle: accept ``.bin`` (pickle) weights.
        online: hub reachable; ``None`` = detect at start.
        max_models: models kept loaded at once (LRU beyond).
        concurrency: generations running at once, across all users.
        queue_size: requests waiting at most; more get a "busy" answer.
        preload: load the start-up models in the background at start.
        first_token_timeout: seconds before a silent model counts as failed.
        max_custom_bytes: typed hub ids with more weights than this are refused; ``None`` = no limit.
    """

    model_dirs: list[str] = field(default_factory=list)
    seq2seq: str | None = None
    causal: str | None = None
    allow_custom: bool = True
    allow_pickle: bool = False
    online: bool | None = None
    max_models: int = 4
    concurrency: int = 4
    queue_size: int = 16
    preload: bool = True
    first_token_timeout: float = 120.0
    max_custom_bytes: int | None = None


class Playground:
    """The handlers. Holds the registry and the process-wide model cache (shared by
    design: a model is loaded once for all users); everything per user lives in the
    request (Gradio session state), never here."""

    def __init__(self, config: AppConfig, registry: ModelRegistry, cache: ModelCache) -> None:
        self.config = config
        self.registry = registry
        self.cache = cache
        self._stops: dict[str, set[threading.Event]] = {}  # per session: events of its running generations
        self._stops_lock = threading.Lock()
        self._export_dir: Path | None = None  # created on the first export

    # ----- models -----
    def default_model(self, kind: Kind) -> str | None:
        """The model a panel starts with: the command line's choice, else the first available one."""
        wanted = self.config.seq2seq if kind is Kind.SEQ2SEQ else self.config.causal
        if wanted:
            return wanted
        default = DEFAULT_SEQ2SEQ if kind is Kind.SEQ2SEQ else DEFAULT_CAUSAL
        choices = self.registry.choices(kind)
        available = [name for name, _label, reason in choices if reason is None]
        if default in available:
            return default
        return available[0] if available else (choices[0][0] if choices else None)

    def resolve(self, name: str | None, custom: str | None) -> ModelSource:
        """The source for a panel's selection (a typed hub id wins over the dropdown)."""
        if custom and custom.strip():
            return self.registry.resolve(custom, custom=True)
        if not name:
            raise ModelIdError("model: no model selected")
        return self.registry.resolve(name)

    def unavailable(self, source: ModelSource) -> str | None:
        """Why ``source`` cannot be loaded now (offline and not cached), or ``None``."""
        reason = self.registry.availability(source.name)
        return f"{source.name} {reason}" if reason else None

    def load(self, source: ModelSource, eight_bit: bool, stop: threading.Event | None = None) -> Iterator[str | LoadedModel]:
        """Load through the cache in a helper thread, yielding status lines until the model is ready.

        The last item is the :class:`LoadedModel`; load errors are raised.
        """
        cached = self.cache.peek(source.name, eight_bit)
        if cached is not None:
            yield cached
            return
        reason = self.unavailable(source)
        if reason:
            raise ModelLoadError(reason)
        messages: queue.Queue[str] = queue.Queue()
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["model"] = self.cache.get(source, eight_bit, on_status=messages.put)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the handler
                box["error"] = exc

        started = time.perf_counter()
        thread = threading.Thread(target=work, name=f"load[{source.name}]", daemon=True)
        thread.start()
        status = f"Loading {source.name}"
        while thread.is_alive():
            thread.join(0.25)
            while not messages.empty():
                status = messages.get()
            if stop is not None and stop.is_set():
                raise ModelLoadError(f"stopped while loading {source.name} (it keeps loading in the background)")
            yield f"⏳ {status}… {time.perf_counter() - started:.0f} s"
        if "error" in box:
            raise box["error"]
        yield box["model"]

    def describe(self, panel: Panel):
        """Handler for a panel's selection: the model card line and the class question, from one config read.

        A loaded model gets its full description; otherwise the config alone answers (cached per model).
        """
        def handler(data: dict[Any, Any]) -> dict[Any, Any]:
            try:
                source = self.resolve(data[panel.model], data[panel.custom])
                reason = self.unavailable(source)
                if reason:
                    raise ModelLoadError(reason)
                report = class_report(source).to_dict()
            except (ModelIdError, ModelLoadError, UnsupportedModelError) as exc:
                return {panel.card: card_markdown(error=str(exc)), panel.class_info: class_markdown(error=str(exc))}
            loaded = self.cache.peek(source.name, bool(data[panel.eight_bit]))
            note = UNTRAINED_NOTE if _is_untrained(source) else None
            card = (card_markdown(_description(loaded), note=note) if loaded is not None else
                    card_markdown(architecture=dict(report, architecture=Kind(report["kind"]).architecture), note=note))
            return {panel.card: card, panel.class_info: class_markdown(report)}
        return handler

    def preload(self) -> threading.Thread:
        """Load the start-up models in the background so the first visitor does not wait for both."""
        def work() -> None:
            for kind in SIDES:
                name = self.default_model(kind)
                try:
                    if name and self.registry.availability(name) is None:
                        self.cache.get(self.registry.resolve(name))
                except Exception as exc:  # noqa: BLE001 - shown in the panel when a visitor runs it
                    print(f"preload of {name} failed: {exc}")
        thread = threading.Thread(target=work, name="preload", daemon=True)
        thread.start()
        return thread

    # ----- stop -----
    def _track(self, session: str, event: threading.Event, add: bool) -> None:
        with self._stops_lock:
            events = self._stops.setdefault(session, set())
            (events.add if add else events.discard)(event)
            if not events:
                self._stops.pop(session, None)

    def stop(self, request: gr.Request) -> None:
        """Stop every generation of this visitor's session (the worker threads end at the next token)."""
        with self._stops_lock:
            for event in self._stops.get(request.session_hash or "", ()):
                event.set()

    def running(self) -> int:
        """How many generations are running (for tests and the benchmark)."""
        with self._stops_lock:
            return sum(len(v) for v in self._stops.values())

    # ----- generation -----
    def generate(self, source: ModelSource, prompt: str, settings: GenerationSettings, eight_bit: bool,
                 session: str) -> Iterator[SideUpdate]:
        """Load and stream one model, yielding :class:`SideUpdate` steps.

        Errors become a status line; the partial text is kept. Stopped when this session's
        stop is pressed or when the consumer goes away (the page closed).
        """
        prompt = validate_prompt(prompt)  # raises SettingsError; callers normally validated already
        stop = threading.Event()
        self._track(session, stop, True)
        loaded: LoadedModel | None = None
        try:
            try:
                for item in self.load(source, eight_bit, stop):
                    if isinstance(item, LoadedModel):
                        loaded = item
                    else:
                        yield SideUpdate("", stats_markdown(None, status=item))
            except (ModelLoadError, UnsupportedModelError) as exc:
                yield SideUpdate("", error_markdown(str(exc)), record={"error": str(exc)})
                return
            except Exception as exc:  # noqa: BLE001 - nothing raw reaches the page
                message = f"{source.name} could not be loaded ({type(exc).__name__}: {exc})"
                yield SideUpdate("", error_markdown(message), record={"error": message})
                return
            if stop.is_set():
                yield SideUpdate("", stats_markdown(None, status="stopped"), loaded)
                return
            prepared = prepare(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings)
            generating = stats_markdown(None, status="generating…")
            yield SideUpdate("", generating, loaded, prepared)
            for update in stream(loaded, prompt, settings, stop_event=stop, prepared=prepared,
                                 first_token_timeout=self.config.first_token_timeout):
                if update.stats is None:
                    yield SideUpdate(update.text, generating)
                else:
                    record = {"model": source.name, "description": _description(loaded), "settings": settings.to_dict(),
                              "prompt_as_seen": prepared.text, "text": update.text, "stats": update.stats.to_dict()}
                    yield SideUpdate(update.text, stats_markdown(update.stats.to_dict()), record=record)
        finally:
            stop.set()  # the page went away or the stream ended: the worker must end too
            self._track(session, stop, False)

    def run_side(self, kind: Kind, panel: Panel, shared: Panel, prompt_box: gr.Textbox, link: gr.Checkbox):
        """Build the Gradio handler for one side (reads its inputs by component, returns by component)."""
        def handler(data: dict[Any, Any], request: gr.Request) -> Iterator[dict[Any, Any]]:
            settings_panel = shared if (kind is Kind.CAUSAL and data[link]) else panel
            values = {name: data[comp] for name, comp in zip(SHARED_FIELDS, settings_panel.settings.components())}
            if kind is Kind.SEQ2SEQ:
                values["task_prefix"] = data[panel.option] or ""
            else:
                values["use_chat_template"] = bool(data[panel.option])
            try:
                prompt = validate_prompt(data[prompt_box])
                settings = GenerationSettings.from_mapping(values)
                source = self.resolve(data[panel.model], data[panel.custom])
            except (SettingsError, ModelIdError) as exc:
                yield {panel.output: "", panel.stats: error_markdown(str(exc)), panel.record: {"error": str(exc)}}
                return
            session = request.session_hash or "anonymous"
            explained: dict[str, Any] = {}  # token view and code, made once when the model is ready
            finished = False
            for update in self.generate(source, prompt, settings, bool(data[panel.eight_bit]), session):
                out = {panel.output: update.text, panel.stats: update.status}
                if update.loaded is not None:  # sent once, not with every chunk
                    note = UNTRAINED_NOTE if _is_untrained(source) else None
                    out[panel.card] = card_markdown(_description(update.loaded), note=note)
                if update.prepared is not None:
                    view, out[panel.tokens], out[panel.code] = self.explain_run(update.loaded, prompt, settings, update.prepared)
                    explained = {"prompt_view": view, "code": out[panel.code]}
                if update.record is not None:
                    out[panel.record] = dict(update.record, prompt=prompt, **explained)
                    finished = True
                    if "error" in update.record and not explained:
                        out[panel.card] = card_markdown(error=update.record["error"])
                yield out
            if not finished:  # stopped before generating: the comparison still needs this side's record
                yield {panel.record: {"error": "stopped before generating", "model": source.name, "prompt": prompt}}
        return handler

    # ----- understand and share -----
    def explain_run(self, loaded: LoadedModel, prompt: str, settings: GenerationSettings,
                    prepared: PreparedPrompt | None = None) -> tuple[dict[str, Any] | None, str, str]:
        """``(token view dict, its HTML, reproducing code)`` for a run; a failure here never stops the run."""
        view: dict[str, Any] | None = None
        try:
            view = prompt_view(loaded.kind, loaded.tokenizer, loaded.model.config, prompt, settings, prepared).to_dict()
            html = prompt_view_html(view)
        except Exception as exc:  # noqa: BLE001
            html = prompt_view_html(None, error=f"could not show the tokens ({type(exc).__name__}: {exc})")
        try:
            code = build_snippet(loaded, prompt, settings, prepared)
        except Exception as exc:  # noqa: BLE001
            code = f"# could not write the code for this run ({type(exc).__name__}: {' '.join(str(exc).split())})\n"
        return view, html, code

    def export_dir(self) -> Path:
        """The temporary folder the downloads are written to (one per app, removed at exit;
        Gradio serves its own copies of the files)."""
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="playground-exports-"))
            atexit.register(shutil.rmtree, self._export_dir, True)
        return self._export_dir

    def _downloads(self, share: ShareControls, comparison: dict[str, Any]) -> dict[Any, Any]:
        """Write ``comparison`` as JSON and Markdown and point the download buttons at the files."""
        json_path, md_path = write_exports(comparison, self.export_dir())
        return {share.download_json: gr.DownloadButton(value=str(json_path), interactive=True),
                share.download_md: gr.DownloadButton(value=str(md_path), interactive=True)}

    def on_run_start(self, left: Panel, right: Panel, share: ShareControls):
        """Handler run before the sides start: no records, no rating, nothing to download until this run ends.

        Clearing the records is what pairs the two answers of one run in the comparison.
        """
        def handler() -> dict[Any, Any]:
            return {left.record: None, right.record: None, share.rating: None, share.history: gr.Dropdown(value=None),
                    share.download_json: gr.DownloadButton(value=None, interactive=False),
                    share.download_md: gr.DownloadButton(value=None, interactive=False)}
        return handler

    def on_side_done(self, left: Panel, right: Panel, share: ShareControls):
        """Handler run after either side finishes: once both have a record, the comparison joins the history
        (with the rating, if one was given while the run was going)."""
        def handler(data: dict[Any, Any]) -> dict[Any, Any]:
            records = data[left.record], data[right.record]
            if any(r is None for r in records) or not any("stats" in r for r in records):
                return gr.skip()  # the other side is still running, or neither side produced an answer
            comparison = build_comparison(*records, rating=data[share.rating])
            history = add_to_history(data[share.comparisons], comparison)
            return {share.comparisons: history, **self._downloads(share, comparison),
                    share.history: gr.Dropdown(choices=history_choices(history), value=comparison["id"])}
        return handler

    def on_rate(self, share: ShareControls):
        """Handler for the rating: stored with the comparison shown, and in its downloads."""
        def handler(data: dict[Any, Any]) -> dict[Any, Any]:
            current = find_comparison(data[share.comparisons], data[share.history])
            if current is None:
                return gr.skip()  # nothing to rate yet
            rated = with_rating(current, data[share.rating])
            history = add_to_history(data[share.comparisons], rated)
            return {share.comparisons: history, **self._downloads(share, rated),
                    share.history: gr.Dropdown(choices=history_choices(history), value=rated["id"])}
        return handler

    def on_reopen(self, left: Panel, right: Panel, prompt_box: gr.Textbox, share: ShareControls):
        """Handler for the history dropdown: puts a past comparison's prompt, outputs, stats and rating back."""
        def handler(data: dict[Any, Any]) -> dict[Any, Any]:
            comparison = find_comparison(data[share.comparisons], data[share.history])
            if comparison is None:
                return gr.skip()
            out: dict[Any, Any] = {prompt_box: comparison["prompt"], share.rating: comparison["rating"],
                                   **self._downloads(share, comparison)}
            for panel in (left, right):
                record = comparison["sides"].get(panel.side) or {}
                out[panel.output] = record.get("text", "")
                out[panel.stats] = (stats_markdown(record["stats"]) if record.get("stats")
                                    else error_markdown(record["error"]) if record.get("error") else "")
                out[panel.tokens] = prompt_view_html(record.get("prompt_view"))
                out[panel.code] = record.get("code") or "# No code: this side produced no answer.\n"
                out[panel.record] = comparison["sides"].get(panel.side)
            return out
        return handler

    def api_generate(self, model: str, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
                     top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0, seed: int = 0,
                     load_in_8bit: bool = False, request: gr.Request | None = None) -> Iterator[tuple[str, dict]]:
        """Stream one model's answer to a prompt.

        Yields the growing text with an empty stats object, then the final text with the stats
        (tokens in/out, time to first token, tokens/s, finish reason). Bad settings, ids or models
        are refused with an error naming what was wrong.
        """
        try:
            settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                          repetition_penalty=repetition_penalty, seed=seed)
            prompt = validate_prompt(prompt)
            if not isinstance(load_in_8bit, bool):
                raise SettingsError("load_in_8bit", f"must be true or false, got {load_in_8bit!r:.40}")
            source = self.registry.resolve(model, custom=True)
        except (SettingsError, ModelIdError) as exc:
            raise gr.Error(str(exc)) from None
        session = (request.session_hash if request is not None else None) or "api"
        for update in self.generate(source, prompt, settings, load_in_8bit, session):
            text, record = update.text, update.record
            if record is None:
                if text:
                    yield text, {}
                continue
            if "error" in record and "stats" not in record:
                raise gr.Error(record["error"])
            stats = dict(record["stats"], model=record["model"], description=record["description"])
            if stats.get("finish_reason") == "error":
                raise gr.Error(f"{stats['error']} (partial text: {text[-200:]!r})")
            yield text, stats

    def api_models(self) -> dict:
        """Every selectable model per kind, with the reason when it is unavailable."""
        return {kind.value: [{"name": n, "label": label, "unavailable": reason} for n, label, reason in self.registry.choices(kind)]
                for kind in SIDES}


def _is_untrained(source: ModelSource) -> bool:
    return source.local and os.path.isfile(os.path.join(source.path, "PLAYGROUND_NOTE.json"))


def _has_usable_model(registry: ModelRegistry, kind: Kind) -> bool:
    """True if a model of ``kind`` can be loaded now and is not an untrained demo model."""
    return any(reason is None and not (name in registry.local and _is_untrained(registry.local[name]))
               for name, _label, reason in registry.choices(kind))


def _description(loaded: LoadedModel) -> dict[str, Any]:
    d = loaded.description.to_dict()
    d["params_text"] = loaded.description.params_text
    d["architecture"] = loaded.kind.architecture
    return d


def build_app(config: AppConfig, *, registry: ModelRegistry | None = None, cache: ModelCache | None = None) -> gr.Blocks:
    """Compose the page. ``registry`` and ``cache`` may be given (tests share them)."""
    if registry is None:
        online = hub_reachable() if config.online is None else config.online
        if not online:
            set_offline()
        registry = ModelRegistry(allow_custom=config.allow_custom, online=online, max_custom_bytes=config.max_custom_bytes)
        for folder in config.model_dirs:
            registry.register_dir(folder)
        registry.register_packaged()
    if cache is None:
        cache = ModelCache(config.max_models, allow_pickle=config.allow_pickle)
    pg = Playground(config, registry, cache)
    eight = eight_bit_status()

    with gr.Blocks(title="Seq2seq vs causal playground", analytics_enabled=False) as demo:
        demo.playground = pg  # for tests and the benchmark
        gr.Markdown(
            "# Seq2seq vs causal: one prompt, two kinds of model\n"
            "Left: an **encoder-decoder** (`AutoModelForSeq2SeqLM`) reads your input and writes a new text. "
            "Right: a **decoder-only** (`AutoModelForCausalLM`) continues your prompt. Both answers stream live. "
            + ("" if registry.online else "\n\n**Offline:** the Hugging Face hub cannot be reached; only models on this machine are offered."))
        prompt = gr.Textbox(label="Prompt (Ctrl/Cmd+Enter runs)", lines=3, max_lines=12, elem_id="prompt",
                            placeholder="Ask, instruct, or paste a text to summarize or translate…")
        with gr.Row():
            run_btn = gr.Button("Run both", variant="primary", elem_id="run-btn")
            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn")
            clear_btn = gr.Button("Clear", elem_id="clear-btn")
            link = gr.Checkbox(True, label="Same settings for both sides", elem_id="link-settings")
        with gr.Row(elem_id="examples"):
            example_buttons = [gr.Button(ex.title, size="sm", elem_id=f"example-{i}") for i, ex in enumerate(EXAMPLES)]
        how = gr.Markdown("", elem_id="example-how")
        run_token = gr.State(0)  # bumped by the examples to start a run
        panels: dict[Kind, Panel] = {}
        with gr.Row(equal_height=False):
            for kind in SIDES:
                value = pg.default_model(kind)
                preset = get_preset(value or "")
                notice = NO_LOCAL_SEQ2SEQ if kind is Kind.SEQ2SEQ and not _has_usable_model(registry, kind) else None
                panels[kind] = build_panel(
                    kind.value, title="Seq2seq · encoder-decoder" if kind is Kind.SEQ2SEQ else "Causal · decoder-only",
                    choices=registry.choices(kind), value=value, allow_custom=registry.allow_custom, eight_bit=eight,
                    defaults=preset.defaults if preset else {}, notice=notice)
        left, right = panels[Kind.SEQ2SEQ], panels[Kind.CAUSAL]
        share = build_share()
        demo.panels, demo.share = panels, share  # for tests
        link.change(lambda linked: gr.Accordion(visible=not linked), link, right.settings.accordion, queue=False,
                    api_visibility="private")
        demo.load(lambda linked: gr.Accordion(visible=not linked), link, right.settings.accordion, queue=False,
                  api_visibility="private")

        # Registered before the sides' "start" step: the page runs a trigger's listeners in order.
        gr.on([run_btn.click, run_token.change], pg.on_run_start(left, right, share), None,
              {left.record, right.record, share.rating, share.history, share.download_json, share.download_md},
              queue=False, show_progress="hidden", api_visibility="private")
        events = []
        # Gradio 6's page runs the listeners of one trigger one after another (it awaits each
        # generator to its end), so the two sides hang off a browser-only "start" step instead:
        # the page starts every .then() of a finished step at once, and both sides stream together.
        start = gr.on([run_btn.click, run_token.change], None, None, None, js="() => {}", queue=False,
                      api_visibility="private")
        for kind, panel in panels.items():
            inputs = {prompt, link, panel.model, panel.custom, panel.eight_bit, panel.option,
                      *panel.settings.components(), *left.settings.components()}
            events.append(start.then(pg.run_side(kind, panel, left, prompt, link), inputs=inputs,
                                     outputs={panel.output, panel.stats, panel.card, panel.record, panel.tokens, panel.code},
                                     concurrency_id="generate",
                                     concurrency_limit=config.concurrency, show_progress="hidden", api_visibility="private"))
            gr.on([panel.model.change, panel.custom.submit, panel.eight_bit.change, demo.load], pg.describe(panel),
                  inputs={panel.model, panel.custom, panel.eight_bit}, outputs={panel.card, panel.class_info},
                  concurrency_limit=4, concurrency_id="card", show_progress="hidden", api_visibility="private")
        share_outputs = {share.comparisons, share.history, share.download_json, share.download_md}
        for event in events:
            event.then(pg.on_side_done(left, right, share), inputs={left.record, right.record, share.comparisons, share.rating},
                       outputs=share_outputs, queue=False, show_progress="hidden", api_visibility="private")
        share.rating.input(pg.on_rate(share), inputs={share.rating, share.history, share.comparisons}, outputs=share_outputs,
                           queue=False, show_progress="hidden", api_visibility="private")
        share.history.input(pg.on_reopen(left, right, prompt, share), inputs={share.history, share.comparisons},
                            outputs={prompt, share.rating, share.download_json, share.download_md,
                                     *[c for p in (left, right) for c in (p.output, p.stats, p.tokens, p.code, p.record)]},
                            queue=False, show_progress="hidden", api_visibility="private")
        stop_btn.click(pg.stop, None, None, queue=False, api_name="stop")
        clear_btn.click(lambda: ("", "", "", "", "", ""), None, [prompt, left.output, right.output, left.stats, right.stats, how],
                        queue=False, api_visibility="private")
        for button, example in zip(example_buttons, EXAMPLES):  # queued: Gradio 6 fires a State's .change only then
            button.click(lambda token, ex=example: (ex.prompt, ex.task_prefix, f"ℹ️ {ex.how}", token + 1), run_token,
                         [prompt, left.option, how, run_token], show_progress="hidden", api_visibility="private")
        gr.api(pg.api_generate, api_name="generate", concurrency_id="generate", concurrency_limit=config.concurrency)
        gr.api(pg.api_models, api_name="models", queue=False)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency)
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Safe launch options: no share link, no visitor tracebacks, no monitoring endpoint."""
    return {"share": False, "show_error": False, "enable_monitoring": False, "head": KEYBOARD_JS, "css": CSS,
            "ssr_mode": False, "footer_links": ["api"]}


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(config: AppConfig, *, registry: ModelRegistry | None = None,
            cache: ModelCache | None = None) -> Iterator[tuple[gr.Blocks, str]]:
    """The app served in this process on a free loopback port, as ``(demo, url)``; closed on exit.

    For tests, the benchmark and notebooks; ``python app.py`` serves in the foreground instead.
    """
    demo = build_app(config, registry=registry, cache=cache)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def parse_args(argv: Sequence[str] | None = None) -> tuple[AppConfig, str, int]:
    """Read the command line into an :class:`AppConfig`, host and port."""
    on_space = bool(os.environ.get("SPACE_ID"))
    parser = argparse.ArgumentParser(description="Compare a seq2seq and a causal model side by side, streaming.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="register every model folder (with config.json) or .gguf file in DIR; repeatable")
    parser.add_argument("--seq2seq", metavar="NAME", help="model the seq2seq panel starts with")
    parser.add_argument("--causal", metavar="NAME", help="model the causal panel starts with")
    parser.add_argument("--allow-custom", action=argparse.BooleanOptionalAction,
                        default=os.environ.get("PLAYGROUND_ALLOW_CUSTOM", "0" if on_space else "1") == "1",
                        help="accept typed hub ids (default: on locally, off on a Space unless PLAYGROUND_ALLOW_CUSTOM=1)")
    parser.add_argument("--allow-pickle", action="store_true", help="accept .bin (pickle) weights when no safetensors exist")
    parser.add_argument("--offline", action="store_true", help="never contact the hub")
    parser.add_argument("--max-models", type=int, default=4, help="models kept loaded at once")
    parser.add_argument("--concurrency", type=int, default=4, help="generations running at once, all users together")
    parser.add_argument("--queue-size", type=int, default=16, help="requests waiting at most before 'busy'")
    parser.add_argument("--no-preload", action="store_true", help="do not load the start-up models in the background")
    parser.add_argument("--max-custom-size", type=float, metavar="GB", default=MAX_CUSTOM_BYTES_ON_SPACE / 1e9 if on_space else None,
                        help="refuse typed hub ids with more GB of weights (default: 2 on a Space, no limit locally)")
    args = parser.parse_args(argv)
    config = AppConfig(model_dirs=args.model_dir, seq2seq=args.seq2seq, causal=args.causal, allow_custom=args.allow_custom,
                       allow_pickle=args.allow_pickle, online=False if args.offline else None, max_models=args.max_models,
                       concurrency=args.concurrency, queue_size=args.queue_size, preload=not args.no_preload,
                       max_custom_bytes=None if args.max_custom_size is None else int(args.max_custom_size * 1e9))
    return config, args.host, args.port


def main(argv: Sequence[str] | None = None) -> None:
    """Start the playground."""
    config, host, port = parse_args(argv)
    demo = build_app(config)
    if config.preload:
        demo.playground.preload()
    demo.launch(server_name=host, server_port=port, **launch_kwargs())


if __name__ == "__main__":
    main()
