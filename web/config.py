"""What the command line decides: :class:`AppConfig`, and :func:`parse_args` that reads it."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from pydantic import ValidationError

from evidence.store import database_url
from models.grouping import GROUP_WINDOW
from models.settings import PublicLimits
from models.endpoint_spec import EndpointError, EndpointSpec, parse_endpoint_specs
from models.sources import MAX_CUSTOM_BYTES_ON_SPACE

from .intake import IntakeLimits

PUBLIC_DEFAULTS = PublicLimits()  # the schema's defaults for --max-new-tokens-public / --max-input-tokens-public
VOTES_PER_MINUTE_PUBLIC = 20  # a public server's votes per visitor and minute (a person reads two answers first)
PER_VISITOR = 2  # requests running or waiting per visitor, from the command line (one comparison = 2)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # a server listening only here is used by whoever started it


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
        concurrency: generations running at once, across all users (grouped requests count one each).
        queue_size: requests waiting at most; more get a "busy" answer.
        preload: load the start-up models in the background at start.
        first_token_timeout: seconds before a silent model counts as failed.
        max_custom_bytes: typed hub ids with more weights than this are refused; ``None`` = no limit.
        show_paths: show this machine's paths on the page, in the code and in exports (off: names only, and code
            that finds the model itself); ``parse_args`` turns it on for a local start (loopback, not public).
        auth: ``(user, password)`` pairs for Gradio's login; empty = no login.
        limits: what one request may cost (a Space, or ``--public``); ``None`` = no public limits.
        per_visitor: requests one visitor (client address) may have running or waiting; ``None`` = no limit.
        proxy_hops: proxies in front that append to ``X-Forwarded-For``: the visitor is the address the
            outermost one saw (1 on a Space); 0 = the connection's address as uvicorn resolved it.
        unread_grace: seconds a request's answer may sit unread before the request is cancelled.
        keep_files_s: seconds an export or upload is kept on disk before it is pruned.
        endpoints: models served by inference engines (``--endpoint``), checked but not yet reached.
        group_window: seconds the first greedy request for a model waits for others with the same settings,
            to answer them with one batched ``generate`` (``models.grouping``); 0 = every request alone.
        db: where comparisons and votes are kept (``--db``, see :func:`evidence.store.open_store`): ``"none"``
            keeps nothing (the default here, so that an ``AppConfig()`` built in code never writes anywhere),
            ``None`` the SQLite file in ``data_dir`` (the command line's default), or a database URL.
        data_dir: the playground's data folder (the default database, the hash key); ``None`` =
            :func:`evidence.store.default_data_dir`.
        keep_prompts: keep every prompt and answer in the database, not only shared ones (``--keep-prompts``).
        votes_per_minute: votes one visitor may cast a minute (public deployments); ``None`` = no limit.
        intake: what the server takes in (request bodies, uploads, connections; :mod:`web.intake`), set on public
            deployments; ``None`` = Gradio's own bounds only.
    """

    model_dirs: list[str] = field(default_factory=list)
    seq2seq: str | None = None
    causal: str | None = None
    allow_custom: bool = True
    allow_pickle: bool = False
    online: bool | None = None
    max_models: int = 4
    concurrency: int = 8  # 8 simultaneous visitors are grouped into one batch (see the "visitors" benchmark)
    queue_size: int = 16
    preload: bool = True
    first_token_timeout: float = 120.0
    max_custom_bytes: int | None = None
    show_paths: bool = False
    auth: list[tuple[str, str]] = field(default_factory=list, repr=False)  # never printed
    limits: PublicLimits | None = None
    per_visitor: int | None = None
    proxy_hops: int = 0
    unread_grace: float = 10.0
    keep_files_s: int = 3600
    endpoints: list[EndpointSpec] = field(default_factory=list)
    group_window: float = GROUP_WINDOW
    db: str | None = "none"
    data_dir: str | None = None
    keep_prompts: bool = False
    votes_per_minute: int | None = None
    intake: IntakeLimits | None = None


@dataclass(frozen=True)
class Address:
    """Where the server listens."""

    host: str
    port: int | None  # None: Gradio takes 7860 (or GRADIO_SERVER_PORT), else the next free port


def _folder(value: str) -> str:
    """An existing folder (``--model-dir``), else argparse's one-line error naming the flag."""
    if not Path(value).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"{value}: not a folder (give a folder that holds model folders or .gguf files)")
    return value


def _number(kind: type, *, low: float, high: float | None = None, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a number in a range (``above``: strictly more than ``low``)."""
    def convert(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {value!r}") from None
        if (number <= low if above else number < low) or (high is not None and number > high):
            bound = f"more than {low:g}" if above else f"{low:g} or more"
            raise argparse.ArgumentTypeError(f"expected {bound}{'' if high is None else f' and at most {high:g}'}, "
                                             f"got {value}")
        return number
    convert.__name__ = kind.__name__  # argparse names the type in its messages
    return convert


def _parser(on_space: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compare a seq2seq and a causal model side by side, streaming.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=_number(int, low=1, high=65535), default=None,
                        help="default: 7860, or the next free port above it (GRADIO_SERVER_PORT moves the start)")
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR", type=_folder,
                        help="register every model folder (with config.json) or .gguf file in DIR; repeatable")
    parser.add_argument("--seq2seq", metavar="NAME", help="model the seq2seq panel starts with")
    parser.add_argument("--causal", metavar="NAME", help="model the causal panel starts with")
    parser.add_argument("--allow-custom", action=argparse.BooleanOptionalAction,
                        default=os.environ.get("PLAYGROUND_ALLOW_CUSTOM", "0" if on_space else "1") == "1",
                        help="accept typed hub ids (default: on locally, off on a Space unless PLAYGROUND_ALLOW_CUSTOM=1)")
    parser.add_argument("--allow-pickle", action="store_true", help="accept .bin (pickle) weights when no safetensors exist")
    parser.add_argument("--offline", action="store_true", help="never contact the hub")
    parser.add_argument("--max-models", type=_number(int, low=1), default=4, help="models kept loaded at once")
    parser.add_argument("--concurrency", type=_number(int, low=1), default=8, help="generations running at once, all users together")
    parser.add_argument("--group-window", type=_number(float, low=0), default=GROUP_WINDOW, metavar="SECONDS",
                        help=f"answer simultaneous greedy requests for the same model and settings with one batched "
                             f"generate, waiting this long for them (default {GROUP_WINDOW:g}; 0 = every request alone)")
    parser.add_argument("--queue-size", type=_number(int, low=1), default=16, help="requests waiting at most before 'busy'")
    parser.add_argument("--no-preload", action="store_true", help="do not load the start-up models in the background")
    parser.add_argument("--max-custom-size", type=_number(float, low=0, above=True), metavar="GB",
                        default=MAX_CUSTOM_BYTES_ON_SPACE / 1e9 if on_space else None,
                        help="refuse typed hub ids with more GB of weights (default: 2 on a Space, no limit locally)")
    parser.add_argument("--show-paths", action=argparse.BooleanOptionalAction, default=None,
                        help="show this machine's paths (model folders, caches) on the page, in the code and in exports "
                             "(default: on for a local start: a loopback --host, no --public, not a Space; else off: "
                             "names only, and code that finds the model itself)")
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help="require a login (Gradio's own); repeatable. Also PLAYGROUND_AUTH (one USER:PASSWORD a line)")
    parser.add_argument("--auth-file", metavar="FILE", help="require a login: one USER:PASSWORD a line")
    parser.add_argument("--public", action="store_true", default=on_space,
                        help="bound each request's work (always on a Space): see --max-new-tokens-public")
    parser.add_argument("--max-new-tokens-public", type=_number(int, low=1), default=PUBLIC_DEFAULTS.max_new_tokens, metavar="N",
                        help=f"public: most tokens per answer (default {PUBLIC_DEFAULTS.max_new_tokens})")
    parser.add_argument("--max-input-tokens-public", type=_number(int, low=1), default=PUBLIC_DEFAULTS.max_input_tokens, metavar="N",
                        help=f"public: the model reads at most N input tokens (default {PUBLIC_DEFAULTS.max_input_tokens})")
    parser.add_argument("--max-set-tokens-public", type=_number(int, low=1), default=PUBLIC_DEFAULTS.max_set_tokens,
                        metavar="N", help="public: most new tokens a prompt set asks of each side, rows × max new tokens "
                                          f"(default {PUBLIC_DEFAULTS.max_set_tokens})")
    parser.add_argument("--max-set-seconds-public", type=_number(float, low=1), default=PUBLIC_DEFAULTS.max_set_seconds,
                        metavar="S", help="public: a prompt set stops after S seconds, keeping its rows done "
                                          f"(default {PUBLIC_DEFAULTS.max_set_seconds:g})")
    parser.add_argument("--per-visitor", type=_number(int, low=0), default=PER_VISITOR, metavar="N",
                        help=f"requests one visitor may have running or waiting (default {PER_VISITOR}; 0 = no limit)")
    parser.add_argument("--proxy-hops", type=_number(int, low=0), default=1 if on_space else 0, metavar="N",
                        help="proxies in front that append to X-Forwarded-For (default 1 on a Space, else 0)")
    parser.add_argument("--keep-files", type=_number(float, low=0, above=True), default=60, metavar="MINUTES",
                        help="minutes exports and uploads stay on disk before they are pruned (default 60)")
    parser.add_argument("--endpoint", action="append", default=[],
                        metavar="NAME=URL[,model=ID][,token_env=VAR][,kind=causal|seq2seq][,chat=true|false]",
                        help="add a model served by an inference engine (vLLM, TGI, transformers serve, llama.cpp, any "
                             "OpenAI-compatible API; URL is its base, e.g. http://host:8000/v1); repeatable")
    parser.add_argument("--db", metavar="URL", default=None,
                        help="where comparisons and votes are kept: sqlite:///FILE, postgresql+psycopg://USER:PASS@HOST:PORT/DB, "
                             "or none (keep nothing); default: playground.db in the data folder")
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="the playground's data folder (the default database, the hash key); default: $PLAYGROUND_DATA, "
                             "/data/playground on a Space with persistent storage, else ~/.local/share/seq2seq-causal-playground")
    parser.add_argument("--keep-prompts", action="store_true",
                        help="keep every prompt and both answers in the database (default: only shared comparisons')")
    return parser


def parse_credentials(lines: Sequence[str], where: str) -> list[tuple[str, str]]:
    """``USER:PASSWORD`` lines as pairs (blank lines and ``#`` comments skipped).

    Raises:
        ValueError: naming ``where`` and the line number, never the password.
    """
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"{where}, entry {number}: expected USER:PASSWORD with both parts non-empty")
        pairs.append((user.strip(), password))
    return pairs


def _credentials(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    try:
        pairs = parse_credentials(args.auth, "--auth")
        if args.auth_file:
            try:
                text = open(args.auth_file, encoding="utf-8").read()
            except OSError as exc:
                raise ValueError(f"--auth-file {args.auth_file}: cannot be read ({exc.strerror})") from None
            pairs += parse_credentials(text.splitlines(), f"--auth-file {args.auth_file}")
        pairs += parse_credentials(os.environ.get("PLAYGROUND_AUTH", "").splitlines(), "PLAYGROUND_AUTH")
    except ValueError as exc:
        parser.error(str(exc))
    return pairs


def parse_args(argv: Sequence[str] | None = None) -> tuple[AppConfig, Address]:
    """Read the command line into an :class:`AppConfig` and the :class:`Address` to listen on."""
    on_space = bool(os.environ.get("SPACE_ID"))
    parser = _parser(on_space=on_space)
    args = parser.parse_args(argv)
    local_start = args.host in LOOPBACK_HOSTS and not args.public and not on_space  # the visitor started the server
    config = AppConfig(model_dirs=args.model_dir, seq2seq=args.seq2seq, causal=args.causal, allow_custom=args.allow_custom,
                       allow_pickle=args.allow_pickle, online=False if args.offline else None, max_models=args.max_models,
                       concurrency=args.concurrency, queue_size=args.queue_size, preload=not args.no_preload,
                       max_custom_bytes=None if args.max_custom_size is None else int(args.max_custom_size * 1e9),
                       show_paths=local_start if args.show_paths is None else args.show_paths, auth=_credentials(args, parser), limits=_limits(args, parser),
                       per_visitor=args.per_visitor or None, proxy_hops=args.proxy_hops,
                       keep_files_s=max(1, round(args.keep_files * 60)), endpoints=_endpoints(args, parser),
                       group_window=args.group_window, db=_database(args, parser), data_dir=args.data_dir,
                       keep_prompts=args.keep_prompts, votes_per_minute=VOTES_PER_MINUTE_PUBLIC if args.public else None,
                       intake=IntakeLimits() if args.public else None)
    return config, Address(args.host, args.port)


def command_line_error(message: str) -> None:
    """End the start as argparse does for a bad value found after parsing (e.g. a ``--causal`` model that is
    not here): the usage, one ``error:`` line naming the flag, exit status 2."""
    _parser(on_space=bool(os.environ.get("SPACE_ID"))).error(message)


def start_models_error(config: AppConfig, resolve: Callable[[str], object],
                       availability: Callable[[str], str | None]) -> str | None:
    """Why ``--seq2seq`` / ``--causal`` cannot start a panel (a name that is not a model here, or one that cannot
    be loaded now), naming the flag; ``None`` when both can."""
    for flag, name in (("--seq2seq", config.seq2seq), ("--causal", config.causal)):
        if not name:
            continue
        try:
            resolve(name)
        except ValueError as exc:
            return f"argument {flag}: {exc}"
        reason = availability(name)
        if reason:
            return f"argument {flag}: {name}: {reason}"
    return None


def _database(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """The ``--db`` value, checked for its form (nothing is reached yet); a bad one stops the start, naming it."""
    if args.db is None:
        return None
    try:
        database_url(args.db, Path("."))
    except ValueError as exc:
        parser.error(str(exc))
    return args.db


def _endpoints(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[EndpointSpec]:
    """The ``--endpoint`` values, checked (no network yet); a bad one stops the start with its reason."""
    try:
        return parse_endpoint_specs(args.endpoint)
    except EndpointError as exc:
        parser.error(str(exc))


def _limits(args: argparse.Namespace, parser: argparse.ArgumentParser) -> PublicLimits | None:
    """The public limits asked for, checked against the schema's bounds (``None`` when not public)."""
    if not args.public:
        return None
    try:
        return PublicLimits(max_new_tokens=args.max_new_tokens_public, max_input_tokens=args.max_input_tokens_public,
                            max_set_tokens=args.max_set_tokens_public, max_set_seconds=args.max_set_seconds_public)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        parser.error(f"--{str(first['loc'][0]).replace('_', '-')}-public: {first['msg'].lower()}, got {first['input']}")
