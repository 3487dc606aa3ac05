"""What the command line decides: :class:`AppConfig`, and :func:`parse_args` that reads it."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Sequence

from pydantic import ValidationError

from models.grouping import GROUP_WINDOW
from models.settings import PublicLimits
from models.endpoint_spec import EndpointError, EndpointSpec, parse_endpoint_specs
from models.sources import MAX_CUSTOM_BYTES_ON_SPACE

PUBLIC_DEFAULTS = PublicLimits()  # the schema's defaults for --max-new-tokens-public / --max-input-tokens-public
PER_VISITOR = 2  # requests running or waiting per visitor, from the command line (one comparison = 2)


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
        show_paths: show local models' absolute paths on the page and in exports (off: names only).
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


@dataclass(frozen=True)
class Address:
    """Where the server listens."""

    host: str
    port: int | None  # None: Gradio takes 7860 (or GRADIO_SERVER_PORT), else the next free port


def _parser(on_space: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compare a seq2seq and a causal model side by side, streaming.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=None,
                        help="default: 7860, or the next free port above it (GRADIO_SERVER_PORT moves the start)")
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
    parser.add_argument("--concurrency", type=int, default=8, help="generations running at once, all users together")
    parser.add_argument("--group-window", type=float, default=GROUP_WINDOW, metavar="SECONDS",
                        help=f"answer simultaneous greedy requests for the same model and settings with one batched "
                             f"generate, waiting this long for them (default {GROUP_WINDOW:g}; 0 = every request alone)")
    parser.add_argument("--queue-size", type=int, default=16, help="requests waiting at most before 'busy'")
    parser.add_argument("--no-preload", action="store_true", help="do not load the start-up models in the background")
    parser.add_argument("--max-custom-size", type=float, metavar="GB",
                        default=MAX_CUSTOM_BYTES_ON_SPACE / 1e9 if on_space else None,
                        help="refuse typed hub ids with more GB of weights (default: 2 on a Space, no limit locally)")
    parser.add_argument("--show-paths", action="store_true",
                        help="show local models' absolute paths on the page and in exports (default: folder names only)")
    parser.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                        help="require a login (Gradio's own); repeatable. Also PLAYGROUND_AUTH (one USER:PASSWORD a line)")
    parser.add_argument("--auth-file", metavar="FILE", help="require a login: one USER:PASSWORD a line")
    parser.add_argument("--public", action="store_true", default=on_space,
                        help="bound each request's work (always on a Space): see --max-new-tokens-public")
    parser.add_argument("--max-new-tokens-public", type=int, default=PUBLIC_DEFAULTS.max_new_tokens, metavar="N",
                        help=f"public: most tokens per answer (default {PUBLIC_DEFAULTS.max_new_tokens})")
    parser.add_argument("--max-input-tokens-public", type=int, default=PUBLIC_DEFAULTS.max_input_tokens, metavar="N",
                        help=f"public: the model reads at most N input tokens (default {PUBLIC_DEFAULTS.max_input_tokens})")
    parser.add_argument("--per-visitor", type=int, default=PER_VISITOR, metavar="N",
                        help=f"requests one visitor may have running or waiting (default {PER_VISITOR}; 0 = no limit)")
    parser.add_argument("--proxy-hops", type=int, default=1 if on_space else 0, metavar="N",
                        help="proxies in front that append to X-Forwarded-For (default 1 on a Space, else 0)")
    parser.add_argument("--keep-files", type=float, default=60, metavar="MINUTES",
                        help="minutes exports and uploads stay on disk before they are pruned (default 60)")
    parser.add_argument("--endpoint", action="append", default=[],
                        metavar="NAME=URL[,model=ID][,token_env=VAR][,kind=causal|seq2seq][,chat=true|false]",
                        help="add a model served by an inference engine (vLLM, TGI, transformers serve, llama.cpp, any "
                             "OpenAI-compatible API; URL is its base, e.g. http://host:8000/v1); repeatable")
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
    parser = _parser(on_space=bool(os.environ.get("SPACE_ID")))
    args = parser.parse_args(argv)
    config = AppConfig(model_dirs=args.model_dir, seq2seq=args.seq2seq, causal=args.causal, allow_custom=args.allow_custom,
                       allow_pickle=args.allow_pickle, online=False if args.offline else None, max_models=args.max_models,
                       concurrency=args.concurrency, queue_size=args.queue_size, preload=not args.no_preload,
                       max_custom_bytes=None if args.max_custom_size is None else int(args.max_custom_size * 1e9),
                       show_paths=args.show_paths, auth=_credentials(args, parser), limits=_limits(args, parser),
                       per_visitor=args.per_visitor or None, proxy_hops=args.proxy_hops,
                       keep_files_s=max(1, round(args.keep_files * 60)), endpoints=_endpoints(args, parser),
                       group_window=args.group_window)
    if args.per_visitor < 0 or args.proxy_hops < 0 or args.group_window < 0:
        parser.error("--per-visitor, --proxy-hops and --group-window must be 0 or more")
    return config, Address(args.host, args.port)


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
        return PublicLimits(max_new_tokens=args.max_new_tokens_public, max_input_tokens=args.max_input_tokens_public)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        parser.error(f"--{str(first['loc'][0]).replace('_', '-')}-public: {first['msg'].lower()}, got {first['input']}")
