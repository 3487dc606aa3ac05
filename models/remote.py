"""Models served by an inference engine: vLLM, TGI, ``transformers serve``, llama.cpp, any OpenAI-compatible API.

Only the operator registers one, on the command line (``--endpoint NAME=URL[,option=value...]``):
a URL typed by a visitor would let anyone make the server call any address. An endpoint is one
more model source next to presets, hub ids, local folders and GGUF files: the same panel, the
same run events, the same stats.

* :func:`parse_endpoint_spec` checks one ``--endpoint`` value (no network); :func:`parse_endpoint_specs`
  checks them all (duplicate names refused).
* :func:`connect` reaches the server once at start: the model id (``/v1/models`` when ``model=`` is
  omitted), the engine, whether it takes chat messages. What it cannot settle is refused with
  :class:`EndpointError`.
* :meth:`Endpoint.stream` streams one answer as :class:`~models.stream.StreamUpdate` s, like a
  local model: deadlines for the first chunk and between chunks, stop, and every failure ending
  in a final update with ``finish_reason == "error"`` and the partial text.
* Token probabilities: every engine but ``transformers serve`` is asked for them (chat:
  ``logprobs=True, top_logprobs=5``; completions: ``logprobs=5``); :func:`token_probs` reads each
  chunk's ``logprobs`` into :class:`~models.types.TokenProb` s, which end in ``Stats.tokens``. A
  server that refuses those fields (HTTP 400 naming them) is asked again without them, once, and
  never again; ``Stats.tokens_note`` then says it returns none. Servers compute them their own way:
  vLLM by default from the raw model output (``--logprobs-mode raw_logprobs``), as the local engine
  does; others (TGI, llama.cpp with ``post_sampling_probs``) may apply their sampler (penalties,
  temperature, top-k/top-p) first. So an endpoint's probabilities are the server's figures, not
  always comparable with a local run's or another server's.

The client is the ``openai`` package (no HTTP or SSE parsing here). ``huggingface_hub``'s
``InferenceClient`` would do too, but it refuses every URL, loopback included, while
``HF_HUB_OFFLINE=1`` is set, and the app sets it when the hub cannot be reached: a local
engine must still work then. The ``openai`` client ignores that variable.

Streams run on one asyncio loop in a daemon thread (:func:`_io_loop`): cancelling a task closes
its connection at once, even while the server is silent, so Stop and a missed deadline really
hang up, and the engine sees its client go away.

Example:
    >>> spec = parse_endpoint_spec("big=http://127.0.0.1:8000/v1,model=meta-llama/Llama-3.1-70B-Instruct")
    >>> spec.name, spec.kind.value, spec.chat
    ('big', 'causal', None)
    >>> endpoint = connect(spec)                                                       # doctest: +SKIP
    >>> request = endpoint.request("Hello", GenerationSettings())                       # doctest: +SKIP
    >>> for update in endpoint.stream(request):                                         # doctest: +SKIP
    ...     print(update.delta, end="")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import math
import queue
import re
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import httpx2  # the HTTP client inside openai 3 (a fork of httpx): its errors are what the client wraps
import openai

from .endpoint_spec import EndpointError, EndpointSpec
from .engine import Explanation, Selection
from .explain import ClassReport, class_report
from .presets import Kind
from .settings import GenerationSettings, Precision
from .sets.rows import PromptRow, row_prompt, row_settings
from .sources import ModelIdError, ModelSource, validate_hub_id
from .stream import FIRST_TOKEN_TIMEOUT, TOKEN_TIMEOUT
from .types import TOP_TOKENS, FinishReason, RowResult, Stats, StreamUpdate, TokenChoice, TokenProb, finish_reason

NO_TOKEN = "EMPTY"  # sent as the bearer token when the endpoint needs none (the client requires one)
START_TIMEOUT = 10.0  # seconds for each request made at start (model list, chat probe)
PROBE_TIMEOUT = 3.0  # seconds for each question about the engine at start (/info, /openapi.json)
CONNECT_TIMEOUT = 10.0  # seconds to open a connection when streaming
POLL_SECONDS = 0.05  # how often a waiting stream notices a stop
MIN_RATE_SPAN = 0.005  # seconds: chunks read in one burst from the socket give no rate (tokens/s stays empty)
ENDPOINT_SOURCE_PREFIX = "endpoint "  # ModelSource.origin of an endpoint model starts with this
REMOTE_ENGINE = "openai"  # ModelSource.engine of a model an inference server serves

# ----- engines: what each one calls our settings -----

@dataclass(frozen=True)
class Engine:
    """What an engine accepts beyond the OpenAI parameters every one takes (temperature, top_p,
    max_tokens, seed).

    Args:
        name: shown in the card ("served by NAME (engine, model id)").
        top_k: the request field for top-k sampling, or ``None`` when the engine has none.
        repetition_penalty: the request field for a multiplicative repetition penalty (vLLM's
            ``repetition_penalty``, llama.cpp's ``repeat_penalty``); ``"frequency_penalty"`` when the
            engine turns ``frequency_penalty`` into ``repetition_penalty = 1 + frequency_penalty``
            (``transformers serve``); ``None``: none (OpenAI's ``frequency_penalty`` is additive,
            not the same setting, so it is not sent in its place).
        stream_usage: ask for token counts in the stream (``stream_options``); ``transformers serve``
            reports them unasked and logs a warning for the option.
        sampling_note: a limit of its sampling, shown in the stats when a run samples.
        logprobs: ask for each token's probability and its top alternatives (``logprobs``,
            ``top_logprobs``); ``transformers serve`` 5.23 lists both among the fields it does not
            support (it ignores them with a warning), so they are never sent to it.
    """

    name: str
    top_k: str | None = None
    repetition_penalty: str | None = None
    stream_usage: bool = True
    sampling_note: str | None = None
    logprobs: bool = True


TRANSFORMERS_SERVE = Engine(
    "transformers serve", repetition_penalty="frequency_penalty", stream_usage=False, logprobs=False,
    # transformers 5.23's server sets temperature and top_p but never do_sample=True (checked in its source)
    sampling_note="transformers serve samples only when the model's own generation_config turns sampling on "
                  "(do_sample); otherwise temperature, top_p and seed change nothing")
VLLM = Engine("vLLM", top_k="top_k", repetition_penalty="repetition_penalty")
LLAMA_CPP = Engine("llama.cpp", top_k="top_k", repetition_penalty="repeat_penalty")
TGI = Engine("TGI")
GENERIC = Engine("OpenAI-compatible server")


def _root(url: str) -> str:
    """The server's root URL: the API base without its ``/v1``."""
    return re.sub(r"/v1$", "", url)


def _get_json(client: openai.OpenAI, url: str) -> Any:
    """``GET url`` with the endpoint's credentials; ``None`` when it fails in any way (or takes over 3 s)."""
    try:
        return client.with_options(timeout=PROBE_TIMEOUT).get(url, cast_to=object)
    except Exception:  # noqa: BLE001 - a probe: no answer means "not this engine"
        return None


def detect_engine(client: openai.OpenAI, url: str, owners: set[str]) -> Engine:
    """Which engine serves ``url``, from what it says about itself (generic when it cannot be told).

    vLLM and llama.cpp name themselves as the owner of their models; TGI answers ``/info`` with
    its router; ``transformers serve`` lists its ``/load_model`` route in its OpenAPI schema.
    """
    if "vllm" in owners:
        return VLLM
    if "llamacpp" in owners:
        return LLAMA_CPP
    root = _root(url)
    info = _get_json(client, f"{root}/info")
    if isinstance(info, dict) and "router" in info and "model_id" in info:
        return TGI
    schema = _get_json(client, f"{root}/openapi.json")
    paths = schema.get("paths", {}) if isinstance(schema, dict) else {}
    if "/load_model" in paths and "/v1/chat/completions" in paths:
        return TRANSFORMERS_SERVE
    if "/tokenize" in paths and "/version" in paths:
        return VLLM
    return GENERIC


# ----- messages: errors as a visitor reads them -----

def _server_message(exc: openai.APIStatusError) -> str:
    """The server's own words in an HTTP error (OpenAI ``error.message``, FastAPI ``detail``, or the body)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        for candidate in (inner.get("message") if isinstance(inner, dict) else inner, body.get("detail"), body.get("message")):
            if candidate:
                return " ".join(str(candidate).split())[:300]
        return json.dumps(body)[:300]
    if body:
        return " ".join(str(body).split())[:300]
    text = exc.response.text if exc.response is not None else ""
    return " ".join(text.split())[:300] or exc.response.reason_phrase


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from (causes and contexts, sub-exceptions of groups)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        link = todo.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        todo += [link.__cause__, link.__context__, *getattr(link, "exceptions", ())]


def describe_failure(name: str, exc: BaseException, *, streaming: bool) -> str:
    """One sentence for any failure of endpoint ``name``; ``streaming``: text had already arrived."""
    if isinstance(exc, openai.APIStatusError):
        return f"endpoint {name} answered HTTP {exc.status_code}: {_server_message(exc)}"
    if isinstance(exc, openai.APITimeoutError):
        return f"endpoint {name} did not answer in time ({exc.__cause__ or exc})"
    if any(isinstance(link, ConnectionRefusedError) for link in _chain(exc)):
        return f"endpoint {name} cannot be reached (connection refused: is the server running?)"
    cause = next((link for link in _chain(exc) if isinstance(link, httpx2.HTTPError)), exc)  # what the client wraps
    if isinstance(cause, (httpx2.ConnectError, openai.APIConnectionError)):
        return f"endpoint {name} cannot be reached ({type(cause).__name__}: {cause})"
    if isinstance(cause, httpx2.HTTPError):  # the server went away (or the network broke) while answering
        when = "mid-stream" if streaming else "before answering"
        return f"the connection to endpoint {name} broke {when} ({type(cause).__name__}: {cause})"
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return f"endpoint {name} reported an error: {' '.join(str(exc.message).split())[:300]}"
    if isinstance(exc, (ValueError, AttributeError, TypeError)):  # json.JSONDecodeError is a ValueError
        return f"endpoint {name} sent a malformed chunk ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    return f"endpoint {name} failed ({type(exc).__name__}: {exc})"


# ----- one request -----

@dataclass(frozen=True)
class RemoteRequest:
    """What one run sends to an endpoint, built once from the prompt and the settings.

    Args:
        chat: messages to ``/v1/chat/completions``, else the raw prompt to ``/v1/completions``.
        text: the prompt as sent (task prefix applied); the engine adds its chat template to it.
        parameters: OpenAI parameters (``max_tokens``, ``temperature``, ...).
        extra: engine parameters outside the OpenAI schema (sent as ``extra_body``).
        notices: the settings this engine cannot honour, each named, and other notes for the stats.
        max_new_tokens: as asked.
        logprobs: ask for each token's probability and its :data:`~models.types.TOP_TOKENS` most likely
            alternatives.
    """

    chat: bool
    text: str
    parameters: dict[str, Any]
    extra: dict[str, Any]
    notices: list[str]
    max_new_tokens: int
    logprobs: bool = False

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.text}]

    def arguments(self, model_id: str, usage: bool) -> dict[str, Any]:
        """Keyword arguments for the client's ``create(...)`` (streaming)."""
        args: dict[str, Any] = {"model": model_id, "stream": True, **self.parameters}
        args.update({"messages": self.messages} if self.chat else {"prompt": self.text})
        if usage:
            args["stream_options"] = {"include_usage": True}
        if self.logprobs:
            args.update({"logprobs": True, "top_logprobs": TOP_TOKENS} if self.chat else {"logprobs": TOP_TOKENS})
        if self.extra:
            args["extra_body"] = dict(self.extra)
        return args

    def without_logprobs(self) -> "RemoteRequest":
        """The same request, asking for no token probabilities."""
        return replace(self, logprobs=False)


def build_request(engine: Engine, chat: bool, kind: Kind, prompt: str, settings: GenerationSettings,
                  precision: str = "auto", *, logprobs: bool = True) -> RemoteRequest:
    """Map ``settings`` onto ``engine``'s parameters; every setting it cannot take is named in the notices
    (``precision``, the panel's choice, too: the engine decides how it holds the model). Token probabilities
    are asked for when ``logprobs`` and the engine gives them."""
    notices: list[str] = []
    text = (settings.task_prefix + prompt) if kind is Kind.SEQ2SEQ and settings.task_prefix else prompt
    use_chat = chat
    if chat and kind is Kind.CAUSAL and not settings.use_chat_template:
        use_chat = False
        notices.append("chat template off: the raw prompt goes to /v1/completions")
    elif not chat and kind is Kind.CAUSAL and settings.use_chat_template:
        notices.append("use_chat_template not sent: this endpoint takes the raw prompt (/v1/completions)")
    parameters: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                                  "seed": settings.seed}
    extra: dict[str, Any] = {}
    if not settings.greedy:
        parameters["top_p"] = settings.top_p
        if engine.sampling_note:
            notices.append(engine.sampling_note)
        if settings.top_k:
            if engine.top_k:
                extra[engine.top_k] = settings.top_k
            else:
                notices.append(f"top_k={settings.top_k} not sent: {engine.name} takes no top_k")
    if settings.repetition_penalty != 1.0:
        if engine.repetition_penalty == "frequency_penalty":
            parameters["frequency_penalty"] = round(settings.repetition_penalty - 1.0, 6)
        elif engine.repetition_penalty:
            extra[engine.repetition_penalty] = settings.repetition_penalty
        else:
            notices.append(f"repetition_penalty={settings.repetition_penalty:g} not sent: {engine.name} takes no "
                           "repetition penalty (its frequency_penalty is a different, additive setting)")
    if settings.no_repeat_ngram_size:
        notices.append(f"no_repeat_ngram_size={settings.no_repeat_ngram_size} not sent: {engine.name} takes no such setting")
    precision = str(getattr(precision, "value", precision))
    if precision != "auto":
        notices.append(f"precision {precision} not applied: the engine decides how it holds the model")
    return RemoteRequest(use_chat, text, parameters, extra, notices, settings.max_new_tokens,
                         logprobs=logprobs and engine.logprobs)


# ----- token probabilities: what a server sends, as the shared types -----

def _field(item: Any, name: str) -> Any:
    """A field of a payload object: an attribute of the ``openai`` type, or a key where the client left a plain
    dict (fields outside its schema, such as llama.cpp's ``content`` on a completions chunk, stay dicts)."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def _top(candidates: Iterable[tuple[int | None, str, float]]) -> tuple[TokenChoice, ...]:
    """``(id, text, logprob)`` candidates as choices, most likely first (ties in the server's order), at most
    :data:`~models.types.TOP_TOKENS`."""
    choices = sorted((TokenChoice(token_id, text, math.exp(logprob)) for token_id, text, logprob in candidates),
                     key=lambda choice: -choice.prob)
    return tuple(choices[:TOP_TOKENS])


def _entry_prob(entry: Any) -> TokenProb:
    """One chat-shaped entry (``{token, logprob, top_logprobs, id?}``) as a token."""
    alternatives = _field(entry, "top_logprobs") or ()
    top = _top((_field(alt, "id"), _field(alt, "token"), _field(alt, "logprob")) for alt in alternatives)
    return TokenProb(_field(entry, "id"), _field(entry, "token"), math.exp(_field(entry, "logprob")), top)


def token_probs(logprobs: Any) -> list[TokenProb]:
    """The tokens in one streamed choice's ``logprobs`` (``[]`` for ``None``), in order, each with
    ``prob = exp(logprob)`` and its alternatives.

    Two shapes, told apart by their fields, not by the route (llama.cpp answers ``/v1/completions`` in the chat
    shape): chat's ``content`` list of ``{token, logprob, top_logprobs: [{token, logprob}]}`` (vLLM, TGI,
    llama.cpp, which adds each token's ``id``), and completions' parallel lists ``tokens``, ``token_logprobs``
    and ``top_logprobs`` (one ``{token: logprob}`` dict per token, which may hold the chosen token besides the
    top ones: vLLM's does).

    Raises:
        TypeError, ValueError, AttributeError: a payload of neither shape.

    Example:
        >>> from openai.types.chat import ChatCompletionChunk
        >>> chunk = ChatCompletionChunk.model_validate({"id": "1", "object": "chat.completion.chunk", "created": 0,
        ...     "model": "m", "choices": [{"index": 0, "delta": {"content": " Paris"}, "logprobs": {"content": [
        ...     {"token": " Paris", "logprob": -0.1, "top_logprobs": [{"token": " Paris", "logprob": -0.1}]}]}}]})
        >>> [(t.text, round(t.prob, 3)) for t in token_probs(chunk.choices[0].logprobs)]
        [(' Paris', 0.905)]
    """
    if logprobs is None:
        return []
    content = _field(logprobs, "content")
    if content is not None:
        found = [_entry_prob(entry) for entry in content]
    else:
        tokens = _field(logprobs, "tokens") or []
        tops = _field(logprobs, "top_logprobs") or [None] * len(tokens)
        found = [TokenProb(None, token, math.exp(logprob), _top((None, text, lp) for text, lp in (top or {}).items()))
                 for token, logprob, top in zip(tokens, _field(logprobs, "token_logprobs") or [], tops, strict=True)]
    if not all(isinstance(token.text, str) for token in found):
        raise TypeError("a token without its text")
    return found


def align_tokens(tokens: Sequence[TokenProb], text: str) -> list[TokenProb] | None:
    """``tokens`` as the answer ``text``'s tokens (their texts add up to it), or ``None`` when they do not.

    Tokens after the whole answer keep their probabilities with the text ``""``: an end token that the server
    names (``</s>``) but that is not part of the answer.
    """
    aligned, at = [], 0
    for token in tokens:
        if at == len(text):
            token = replace(token, text="")
        elif not text.startswith(token.text, at):
            return None
        aligned.append(token)
        at += len(token.text)
    return aligned if at == len(text) else None


def refuses_logprobs(exc: BaseException) -> bool:
    """Whether ``exc`` is a server refusing the logprobs request fields: HTTP 400 (or 422, a validation
    error) whose message names them. Any other failure is not retried."""
    return (isinstance(exc, openai.APIStatusError) and exc.status_code in (400, 422)
            and "logprob" in _server_message(exc).lower())


# ----- the connected endpoint -----

@dataclass(frozen=True)
class EndpointDescription:
    """What the page, the API and exports say about an endpoint model (never its URL or token).

    Args:
        name: the endpoint's name.
        kind: its panel.
        engine: the engine's name, as detected.
        model_id: the model id it serves.
    """

    name: str
    kind: Kind
    engine: str
    model_id: str

    @property
    def served_by(self) -> str:
        return f"served by {self.name} ({self.engine}, {self.model_id})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "architecture": self.kind.architecture,
                "endpoint": self.name, "engine": self.engine, "model_id": self.model_id, "served_by": self.served_by,
                "origin": f"endpoint {self.name}", "revision": None}


@functools.cache
def _io_loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop every endpoint stream of this process runs on, in one daemon thread."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="endpoint-io", daemon=True).start()
    return loop


_END = object()  # the stream ended normally


@dataclass
class _Failure:
    error: BaseException


@functools.lru_cache(maxsize=16)
def _tokenizer_for(model_id: str) -> Any:
    """The model's tokenizer on this machine (a local folder, or a hub id in the cache or on the hub), else ``None``."""
    from huggingface_hub import is_offline_mode
    from transformers import AutoTokenizer

    try:
        if Path(model_id).is_absolute():
            return AutoTokenizer.from_pretrained(model_id) if (Path(model_id) / "tokenizer_config.json").is_file() else None
        return AutoTokenizer.from_pretrained(validate_hub_id(model_id), local_files_only=is_offline_mode())
    except Exception:  # noqa: BLE001 - no tokenizer here: counts fall back to chunks
        return None


class Endpoint:
    """A model served by an inference engine, reached through its OpenAI-compatible API.

    Built by :func:`connect`. Shared by every visitor; each :meth:`stream` is independent.

    Args:
        spec: the checked ``--endpoint`` value.
        model_id: the model id sent with each request.
        engine: the engine, as detected.
        chat: send chat messages (else the raw prompt).
    """

    def __init__(self, spec: EndpointSpec, model_id: str, engine: Engine, chat: bool) -> None:
        self.spec, self.model_id, self.engine, self.chat = spec, model_id, engine, chat
        self.description = EndpointDescription(spec.name, spec.kind, engine.name, model_id)
        self._client: openai.AsyncOpenAI | None = None
        self._lock = threading.Lock()
        self.logprobs_refused = False  # the server answered HTTP 400 to the logprobs fields: never sent again

    def __repr__(self) -> str:  # no token, no URL
        return f"Endpoint({self.spec.name!r}, engine={self.engine.name!r}, model={self.model_id!r})"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> Kind:
        return self.spec.kind

    @property
    def source(self) -> ModelSource:
        """The model source visitors pick (named after the endpoint)."""
        return ModelSource(self.name, self.model_id, f"{ENDPOINT_SOURCE_PREFIX}{self.name} ({self.engine.name})",
                           kind=self.kind, engine=REMOTE_ENGINE, server=self.engine.name)

    def hub_source(self) -> ModelSource | None:
        """The model id as a hub model, when it is a valid hub id (its config may then be readable here)."""
        try:
            return ModelSource(validate_hub_id(self.model_id), self.model_id, "Hugging Face hub", kind=self.kind)
        except ModelIdError:
            return None

    def client(self) -> openai.AsyncOpenAI:
        """The streaming client (one per endpoint, used on :func:`_io_loop` only)."""
        with self._lock:
            if self._client is None:
                self._client = openai.AsyncOpenAI(
                    base_url=self.spec.url, api_key=self.spec.token() or NO_TOKEN, max_retries=0,
                    timeout=openai.Timeout(None, connect=CONNECT_TIMEOUT))  # read deadlines are kept by stream()
            return self._client

    def request(self, prompt: str, settings: GenerationSettings, precision: Precision | str = "auto") -> RemoteRequest:
        """What a run of ``prompt`` with ``settings`` sends to this endpoint (``precision``: the panel's choice)."""
        return build_request(self.engine, self.chat, self.kind, prompt, settings, precision,
                             logprobs=not self.logprobs_refused)

    def no_tokens_note(self) -> str:
        """Why a run of this endpoint has no token probabilities, in one line."""
        if not self.engine.logprobs:
            return f"{self.engine.name} returns no token probabilities"
        if self.logprobs_refused:
            return (f"endpoint {self.name} ({self.engine.name}) returns no token probabilities: "
                    "it refused the logprobs request fields")
        return f"{self.engine.name} sent no token probabilities (they were asked for)"

    # ----- the engine interface (models.engine.Engine) -----
    def prepare(self, prompt: str, settings: GenerationSettings, precision: Precision = Precision.AUTO, *,
                max_input_tokens: int | None = None) -> RemoteRequest:
        """The request, built once (the server applies its own context limits: ``max_input_tokens`` is not sent)."""
        return self.request(prompt, settings, precision)

    def explain(self, prepared: RemoteRequest, settings: GenerationSettings, prompt: str) -> Explanation:
        """No token view (the server tokenizes); the code is the same request through the ``openai`` client."""
        return Explanation(None, f"the tokens are made on the server ({self.engine.name} serving {self.model_id}), "
                           "not on this machine", endpoint_snippet(self, prepared))

    def rows(self, rows: Sequence[PromptRow | str], settings: GenerationSettings, *, batch_size: int = 0,
             stop_event: threading.Event | None = None) -> Iterator[RowResult]:
        """Every row of a prompt set, one request each, in order, errors included (nothing raises once it starts).

        The engine batches concurrent requests on its side (``batch_size`` is not sent); here rows go one after
        another, so Stop ends the running request at once and leaves the rest not run.
        """
        stop_event = stop_event if stop_event is not None else threading.Event()
        for index, row in enumerate(rows):
            row = PromptRow(row) if isinstance(row, str) else row
            if stop_event.is_set():
                yield RowResult.not_run(index)
                continue
            try:
                request = self.request(row_prompt(self.kind, row), row_settings(settings, row))
            except Exception as exc:  # noqa: BLE001 - a row whose settings are refused fails alone
                yield RowResult.failed(index, f"could not prepare the prompt: {exc}"[:500])
                continue
            for final in self.stream(request, stop_event=stop_event):  # each update holds the text so far: keep the last
                pass
            stats = final.stats
            yield RowResult(index, final.text, stats.output_tokens, stats.input_tokens or 0, stats.total_seconds,
                            stats.finish_reason, stats.error, batch_size=1, batch_seconds=stats.total_seconds,
                            notices=tuple(stats.notices), tokens=None if stats.tokens is None else tuple(stats.tokens),
                            tokens_note=stats.tokens_note)

    async def _pump(self, request: RemoteRequest, out: queue.Queue) -> None:
        """Stream one answer into ``out``: chunks, then ``_END`` or a ``_Failure``. Cancelling it hangs up."""
        try:
            stream = await self._open(request)
            async with stream:  # closes the response (and so the connection) on the way out, cancelled or not
                async for chunk in stream:
                    out.put((time.perf_counter(), chunk))  # timed on arrival, not when the consumer reads it
            out.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported to the consumer, never lost
            out.put(_Failure(exc))

    async def _open(self, request: RemoteRequest) -> Any:
        """The server's stream for ``request``; asked once more without the logprobs fields when the server
        refuses them (remembered: this endpoint's later requests go without)."""
        try:
            return await self._create(request)
        except openai.APIStatusError as exc:
            if not (request.logprobs and refuses_logprobs(exc)):
                raise
        self.logprobs_refused = True
        return await self._create(request.without_logprobs())

    async def _create(self, request: RemoteRequest) -> Any:
        completions = self.client().chat.completions if request.chat else self.client().completions
        return await completions.create(**request.arguments(self.model_id, self.engine.stream_usage))

    def stream(self, request: RemoteRequest, settings: GenerationSettings | None = None, *,
               stop_event: threading.Event | None = None, first_token_timeout: float = FIRST_TOKEN_TIMEOUT,
               token_timeout: float = TOKEN_TIMEOUT) -> Iterator[StreamUpdate]:
        """Stream the answer to ``request``, yielding the growing text; the last update carries the stats
        (``settings`` are already in the request).

        Never raises for a failure of the server or the network: the last update then has
        ``finish_reason == "error"``, the message and the partial text. Setting ``stop_event`` (or
        closing this generator) cancels the request, which closes its connection.
        """
        stop_event = stop_event if stop_event is not None else threading.Event()
        out: queue.Queue = queue.Queue()
        started = time.perf_counter()
        task: concurrent.futures.Future = asyncio.run_coroutine_threadsafe(self._pump(request, out), _io_loop())
        counter = _Counter(started)
        text, error, finish, stopped = "", None, None, False
        deadline = started + first_token_timeout
        try:
            while True:
                if stop_event.is_set():
                    stopped = True
                    break
                now = time.perf_counter()
                if now >= deadline:
                    error = (f"endpoint {self.name}: no first token within {first_token_timeout:g} s; request abandoned"
                             if counter.first_at is None else
                             f"endpoint {self.name}: no new chunk within {token_timeout:g} s; request abandoned")
                    break
                try:
                    item = out.get(timeout=min(POLL_SECONDS, deadline - now))
                except queue.Empty:
                    continue
                if item is _END:
                    break
                if isinstance(item, _Failure):
                    error = describe_failure(self.name, item.error, streaming=bool(text))
                    break
                try:
                    delta, reason = counter.read(*item, request.chat)
                except (AttributeError, TypeError, ValueError, IndexError) as exc:
                    error = describe_failure(self.name, exc, streaming=bool(text))
                    break
                finish = reason or finish
                if counter.first_at is not None:
                    deadline = counter.last_at + token_timeout
                if delta:
                    text += delta
                    yield StreamUpdate(text, delta)
        finally:
            task.cancel()  # thread-safe; a finished task ignores it
        stats = counter.stats(self, request, text, finish, error, stopped)
        yield StreamUpdate(text, "", stats)


FINISH_REASONS = {"stop": FinishReason.EOS, "eos_token": FinishReason.EOS, "eos": FinishReason.EOS,
                  "stop_sequence": FinishReason.EOS, "length": FinishReason.LENGTH, "max_tokens": FinishReason.LENGTH}


@dataclass
class _Counter:
    """Times and counts of one stream, read chunk by chunk."""

    started: float
    first_at: float | None = None
    last_at: float | None = None
    chunks: int = 0
    usage: Any = None
    notices: list[str] = field(default_factory=list)
    tokens: list[TokenProb] | None = None  # None until a chunk carries token probabilities
    tokens_error: str | None = None  # why the server's token probabilities could not be read

    def read(self, at: float, chunk: Any, chat: bool) -> tuple[str, str | None]:
        """``(new text, finish reason)`` of one chunk that arrived at ``at`` (raises on a chunk of the wrong shape)."""
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        choices = chunk.choices
        if not choices:
            if self.usage is None:
                raise ValueError("a chunk with neither choices nor usage")
            return "", None
        choice = choices[0]
        delta = choice.delta.content if chat else choice.text
        if delta is not None and not isinstance(delta, str):
            raise TypeError(f"text of type {type(delta).__name__}")
        if delta:
            self.chunks += 1
            self.first_at = self.first_at or at
        if self.first_at is not None:
            self.last_at = at
        self._read_tokens(choice)
        return delta or "", choice.finish_reason

    def _read_tokens(self, choice: Any) -> None:
        """Keep the token probabilities of one chunk's choice; a payload that cannot be read loses them all,
        never the answer."""
        try:
            found = token_probs(getattr(choice, "logprobs", None))
        except (AttributeError, TypeError, ValueError, OverflowError) as exc:
            self.tokens_error = self.tokens_error or " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            return
        if found:
            self.tokens = self.tokens or []
            self.tokens.extend(found)

    def stats(self, endpoint: Endpoint, request: RemoteRequest, text: str, finish: str | None, error: str | None,
              stopped: bool) -> Stats:
        stats = Stats(input_tokens=None, total_seconds=time.perf_counter() - self.started, notices=list(request.notices))
        self._count(stats, endpoint, request, text)
        stats.tokens, stats.tokens_note = self._tokens(endpoint, text)
        if self.first_at is not None:
            stats.time_to_first_token = self.first_at - self.started
            if stats.output_tokens > 1 and self.last_at and self.last_at - self.first_at >= MIN_RATE_SPAN:
                stats.tokens_per_second = (stats.output_tokens - 1) / (self.last_at - self.first_at)
        if not error and not stopped and finish is None and not text:
            error = f"endpoint {endpoint.name} ended the stream without an answer"
        told = FINISH_REASONS.get(finish) if not stopped else None  # the server's reason, unless the visitor stopped
        stats.error = error
        stats.finish_reason = finish_reason(error=error, eos=told is FinishReason.EOS, length=told is FinishReason.LENGTH,
                                            stopped=stopped, otherwise=FinishReason.EOS)
        if stats.finish_reason is FinishReason.EOS and told is None:
            stats.notices.append(f"the server's finish reason: {finish}" if finish else "the server gave no finish reason")
        return stats

    def _tokens(self, endpoint: Endpoint, text: str) -> tuple[list[TokenProb] | None, str | None]:
        """The answer's tokens with their probabilities, or ``None`` and why there are none."""
        if self.tokens_error:
            return None, f"the token probabilities {endpoint.engine.name} sent could not be read ({self.tokens_error})"
        if self.tokens is None:
            return None, endpoint.no_tokens_note()
        aligned = align_tokens(self.tokens, text)
        if aligned is None:
            return None, f"the tokens {endpoint.engine.name} sent do not add up to the answer: no token probabilities"
        return aligned, None

    def _count(self, stats: Stats, endpoint: Endpoint, request: RemoteRequest, text: str) -> None:
        """Token counts from the server's usage, else the model's tokenizer here, else stream chunks (labelled)."""
        usage = self.usage
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            stats.input_tokens, stats.output_tokens = usage.prompt_tokens, usage.completion_tokens
            stats.count_unit = "tokens"
            return
        tokenizer = _tokenizer_for(endpoint.model_id)
        if tokenizer is not None:
            seen = request.text
            if request.chat and getattr(tokenizer, "chat_template", None):
                seen = tokenizer.apply_chat_template(request.messages, add_generation_prompt=True, tokenize=False)
            stats.input_tokens = len(tokenizer(seen, add_special_tokens=not request.chat)["input_ids"])
            stats.output_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
            stats.notices.append("token counts from the model's tokenizer on this machine (the server reported none)")
            return
        stats.output_tokens, stats.count_unit = self.chunks, "chunks"
        stats.notices.append("the server reported no token counts and its tokenizer is not on this machine: "
                             "counts are stream chunks, not tokens")


# ----- start-up -----

def _probe_chat(client: openai.OpenAI, name: str, model_id: str) -> tuple[bool | None, str]:
    """Whether the server takes chat messages for ``model_id``: ``(True|False, why)``, or ``(None, why)``
    when it could not be told (token refused, busy, unreachable)."""
    try:
        client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}], max_tokens=1)
    except openai.APIStatusError as exc:
        undecided = exc.status_code in (401, 403, 408, 429) or exc.status_code >= 502
        return (None if undecided else False), f"HTTP {exc.status_code}: {_server_message(exc)}"
    except openai.APIError as exc:
        return None, describe_failure(name, exc, streaming=False)
    return True, "the server accepts chat messages"


def connect(spec: EndpointSpec, *, timeout: float = START_TIMEOUT, warn: Any = print) -> Endpoint:
    """Reach ``spec``'s server once: its model (asked when not given), its engine, chat or not.

    A server that cannot be reached is accepted when ``model=`` is given (it may start later; the
    panel then says it cannot be reached), with a warning through ``warn``.

    Raises:
        EndpointError: ``model=`` omitted and the server cannot be asked, lists no model, or lists
            several (they are named, to pick one with ``model=``).
    """
    client = openai.OpenAI(base_url=spec.url, api_key=spec.token() or NO_TOKEN, max_retries=0, timeout=timeout)
    try:
        owners: set[str] = set()
        listed: list[str] | None = None
        reachable = True
        try:
            models = list(client.models.list())
            listed = [m.id for m in models]
            owners = {str(getattr(m, "owned_by", "")) for m in models}
        except Exception as exc:  # noqa: BLE001 - judged below
            reachable = not isinstance(exc, openai.APIConnectionError)
            if spec.model is None:
                raise EndpointError(f"--endpoint {spec.name}: model= is not given and the server's model list could not be "
                                    f"read ({describe_failure(spec.name, exc, streaming=False)}); start the server first "
                                    "or add model=ID") from None
        model_id = spec.model
        if model_id is None:
            if not listed:
                raise EndpointError(f"--endpoint {spec.name}: the server lists no model; add model=ID")
            if len(listed) > 1:
                raise EndpointError(f"--endpoint {spec.name}: the server lists {len(listed)} models; pick one with model=ID: "
                                    + ", ".join(listed))
            model_id = listed[0]
        if not reachable:
            warn(f"warning: --endpoint {spec.name}: the server cannot be reached now; registered as {model_id!r} "
                 f"({'chat' if spec.chat is not False else 'raw prompt'}), and each run says so until it answers")
            return Endpoint(spec, model_id, GENERIC, spec.chat is not False)
        engine = detect_engine(client, spec.url, owners)
        chat = spec.chat
        if chat is None:
            chat, why = _probe_chat(client, spec.name, model_id)
            if chat is None:
                chat = True
                warn(f"warning: --endpoint {spec.name}: could not tell whether it takes chat messages ({why}); "
                     "sending chat messages (add chat=false for the raw prompt)")
            elif not chat:
                warn(f"--endpoint {spec.name}: chat messages refused ({why}); the raw prompt goes to /v1/completions")
        return Endpoint(spec, model_id, engine, chat)
    finally:
        client.close()


def connect_all(specs: Sequence[EndpointSpec], *, timeout: float = START_TIMEOUT, warn: Any = print) -> list[Endpoint]:
    """:func:`connect` every spec, in order (the first refusal stops start-up)."""
    return [connect(spec, timeout=timeout, warn=warn) for spec in specs]


def endpoint_snippet(endpoint: Endpoint, request: RemoteRequest) -> str:
    """A runnable script sending the same request with the ``openai`` client (URL and token from the environment)."""
    token = f'os.environ["{endpoint.spec.token_env}"]' if endpoint.spec.token_env else f'"{NO_TOKEN}"'
    args = request.arguments(endpoint.model_id, endpoint.engine.stream_usage)
    args.pop("stream")
    call = "client.chat.completions.create" if request.chat else "client.completions.create"
    body = ",\n    ".join(f"{key}={value!r}" for key, value in args.items())
    text = "chunk.choices[0].delta.content" if request.chat else "chunk.choices[0].text"
    return (f"# {endpoint.description.served_by}: the request this playground sent.\n"
            "# pip install openai; set ENDPOINT_URL to the endpoint's base URL (kept off the page).\n"
            "import os\n\nfrom openai import OpenAI\n\n"
            f"client = OpenAI(base_url=os.environ[\"ENDPOINT_URL\"], api_key={token}, max_retries=0)\n"
            f"stream = {call}(\n    {body},\n    stream=True,\n)\n"
            "for chunk in stream:\n"
            f"    if chunk.choices and {text}:\n"
            f"        print({text}, end=\"\", flush=True)\n"
            "print()\n")


# ----- the provider -----

class RemoteEngines:
    """The provider of the endpoints registered at start (``--endpoint``), for sources whose ``engine`` is
    ``"openai"``: nothing loads here, each endpoint is its own engine.

    Args:
        endpoints: the connected endpoints.
    """

    name = REMOTE_ENGINE

    def __init__(self, endpoints: Sequence[Endpoint] = ()) -> None:
        self.endpoints = {endpoint.name: endpoint for endpoint in endpoints}
        self._reports: dict[str, ClassReport | None] = {}  # endpoint name -> its hub config's class report

    def ready(self, source: ModelSource, precision: Precision) -> Endpoint:
        return self.endpoints[source.name]

    def unavailable(self, source: ModelSource) -> str | None:
        return None if source.name in self.endpoints else f"{source.name}: no such endpoint"

    def open(self, source: ModelSource, precision: Precision, on_status: Any = None) -> Endpoint:
        return self.endpoints[source.name]

    def inspect(self, source: ModelSource, precision: Precision) -> Selection:
        """The endpoint's description, and the class report of its model id's hub config when that can be read
        here (tried once per endpoint)."""
        endpoint = self.endpoints[source.name]
        if endpoint.name not in self._reports:
            report, hub = None, endpoint.hub_source()
            if hub is not None:
                try:
                    report = class_report(hub)
                except Exception:  # noqa: BLE001 - not on the hub, gated, offline and not cached: nothing to show
                    report = None
            self._reports[endpoint.name] = report
        return Selection(self._reports[endpoint.name], endpoint.description, served_by=endpoint.description.served_by)
