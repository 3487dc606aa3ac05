"""One ``--endpoint NAME=URL[,model=ID][,token_env=VAR][,kind=causal|seq2seq][,chat=true|false]`` value, checked.

:class:`EndpointSpec` declares what each part may hold, as a frozen pydantic model: the name's
pattern, an http(s) URL with a host and no credentials, a model id, an environment variable that
is set, the kind, chat on or off; an option it does not declare is refused (``extra="forbid"``).
:func:`parse_endpoint_spec` only cuts the value at ``=`` and ``,`` and hands the parts to it. No
network here: :func:`models.remote.connect` reaches the server.

Every refusal is an :class:`EndpointError` naming ``--endpoint NAME`` and the part that is wrong,
the first one in the order the value is read (name, URL, each option as written, then the values
of kind, chat and token_env). It never quotes a token: ``token_env`` names a variable, and
credentials in a URL are masked.

Example:
    >>> spec = parse_endpoint_spec("big=http://127.0.0.1:8000/v1/,kind=seq2seq,chat=False")
    >>> spec.url, spec.kind.value, spec.chat
    ('http://127.0.0.1:8000/v1', 'seq2seq', False)
    >>> parse_endpoint_spec("big=http://127.0.0.1:8000/v1,engine=vllm")
    Traceback (most recent call last):
    ...
    models.endpoint_spec.EndpointError: --endpoint big: unknown option 'engine' (known: model, token_env, kind, chat)
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal, Sequence
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .presets import Kind

ENDPOINT_OPTIONS = ("model", "token_env", "kind", "chat")  # what may follow the URL, comma-separated
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
ENV_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CHAT_WORDS = {"true": True, "false": False}  # in any case; pydantic's lax bool would also take yes, on, 1...
_URL_CREDENTIALS = re.compile(r"//[^/]*@")  # user:password@ in a URL, masked wherever a message quotes one
_VALUE_ORDER = ("kind", "chat", "token_env")  # whose values are judged in this order, after the options' form
_REFUSED = {  # what a value that its field's declaration refuses must be
    "kind": "must be causal or seq2seq",
    "chat": "must be true or false",
    "token_env": "must name an environment variable",
}


class EndpointError(ValueError):
    """An ``--endpoint`` value is malformed, or the endpoint cannot be used; the message names it."""


class EndpointSpec(BaseModel):
    """One ``--endpoint`` value, checked but not yet connected (build it with :func:`parse_endpoint_spec`).

    Args:
        name: what visitors pick in the model list.
        url: the base of the OpenAI-compatible API (``http://host:8000/v1``), no trailing ``/``.
        model: the model id to request; ``None``: ask the server's ``/v1/models`` at start.
        token_env: the environment variable holding a bearer token; ``None``: no token.
        kind: the panel it appears in.
        chat: ``True``: ``/v1/chat/completions`` with messages; ``False``: ``/v1/completions`` with the
            raw prompt; ``None``: chat when the server accepts it (probed at start).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=rf"^{NAME_PATTERN.pattern}$")
    url: str
    model: str | None = Field(None, min_length=1)
    token_env: str | None = Field(None, pattern=rf"^{ENV_PATTERN.pattern}$")
    kind: Literal[Kind.CAUSAL, Kind.SEQ2SEQ] = Kind.CAUSAL  # "causal" / "seq2seq" become the Kind
    chat: Literal[True, False] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # an unclosed [IPv6 bracket
            parts, host = None, None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise ValueError(f"{_masked(url)!r} is not an http:// or https:// URL "
                             "(give the base of an OpenAI-compatible API, e.g. http://host:8000/v1)")
        if parts.username or parts.password:
            raise ValueError("put no credentials in the URL; name the variable holding the token with token_env=VAR")
        return url.rstrip("/")

    @field_validator("token_env")
    @classmethod
    def _token_is_set(cls, token_env: str | None) -> str | None:
        if token_env is not None and not os.environ.get(token_env):
            raise ValueError(f"token_env={token_env}, but that environment variable is not set")
        return token_env

    @field_validator("chat", mode="before")
    @classmethod
    def _chat_word(cls, value: Any) -> Any:
        return _CHAT_WORDS.get(value.lower(), value) if isinstance(value, str) else value

    def token(self) -> str | None:
        """The bearer token from :attr:`token_env` (never stored elsewhere, never shown)."""
        return os.environ.get(self.token_env) if self.token_env else None


def parse_endpoint_spec(value: str) -> EndpointSpec:
    """Check one ``NAME=URL[,model=ID][,token_env=VAR][,kind=causal|seq2seq][,chat=true|false]``.

    Raises:
        EndpointError: saying what is wrong (no name, not http(s), an unknown or repeated option,
            a bad value, an unset token variable), quoting the value without any token.
    """
    name, sep, rest = value.partition("=")
    name = name.strip()
    if not sep or not name:
        raise EndpointError(f"--endpoint {_masked(value)!r}: expected NAME=URL "
                            "(a name for the model list, then '=' and the API's base URL)")
    url, *options = [part.strip() for part in rest.split(",")]
    given: dict[str, str] = {}
    written: dict[str, tuple[int, str]] = {}  # each key: where it was first written, and how
    refusals: list[tuple[tuple[int, int], str]] = []  # what only the cutting can see: a repeat, name/url as options
    for position, option in enumerate(options):
        key, _, val = (part.strip() for part in option.partition("="))
        if key in written and key in ENDPOINT_OPTIONS:
            refusals.append(((2, position), f"option {key} needs a value ({key}=...)" if not val
                             else f"option {key} is given twice"))
            continue
        written.setdefault(key, (position, option))
        if key in ("name", "url"):  # fields, but not options
            refusals.append(((2, position), _unknown(key, option)))
        else:
            given.setdefault(key, val)
    try:
        spec = EndpointSpec.model_validate({**given, "name": name, "url": url})
    except ValidationError as exc:
        refusals += [_refusal(error, written) for error in exc.errors(include_url=False)]
    if not refusals:
        return spec
    (stage, _), message = min(refusals, key=lambda refusal: refusal[0])
    if stage == 0:  # the name itself is wrong: say it with the value
        raise EndpointError(f"--endpoint {_masked(value)!r}: {message}")
    raise EndpointError(f"--endpoint {name}: {message}")


def parse_endpoint_specs(values: Sequence[str]) -> list[EndpointSpec]:
    """Every ``--endpoint`` value checked; a name given twice is refused."""
    specs: list[EndpointSpec] = []
    for value in values:
        spec = parse_endpoint_spec(value)
        if any(other.name == spec.name for other in specs):
            raise EndpointError(f"--endpoint {spec.name}: the name is used by another --endpoint; give each a different name")
        specs.append(spec)
    return specs


def _refusal(error: dict[str, Any], written: dict[str, tuple[int, str]]) -> tuple[tuple[int, int], str]:
    """One pydantic error as (its rank, its message without ``--endpoint NAME:``).

    Ranks: 0 the name, 1 the URL, 2 an option's form (unknown, no value) where it is written,
    3 a value the field refuses, kind before chat before token_env.
    """
    key = str(error["loc"][0]) if error["loc"] else ""
    cause = (error.get("ctx") or {}).get("error")
    if key == "name":
        return (0, 0), (f"the name {error['input']!r} must start with a letter or digit and hold only letters, "
                        "digits and . _ : / - (at most 64 characters)")
    if key == "url":
        return (1, 0), str(cause) if isinstance(cause, ValueError) else f"the URL is refused: {error['msg']}"
    position, option = written.get(key, (len(written), key))
    if error["type"] == "extra_forbidden":
        return (2, position), _unknown(key, option)
    if error["input"] == "":
        return (2, position), f"option {key} needs a value ({key}=...)"
    rank = (3, _VALUE_ORDER.index(key) if key in _VALUE_ORDER else len(_VALUE_ORDER))
    if isinstance(cause, ValueError):  # a validator's own words (token_env not set)
        return rank, str(cause)
    return rank, f"{key} {_REFUSED.get(key, 'is refused')}, got {error['input']!r}"


def _unknown(key: str, option: str) -> str:
    return f"unknown option {key or option!r} (known: {', '.join(ENDPOINT_OPTIONS)})"


def _masked(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL in it replaced by ``***@``."""
    return _URL_CREDENTIALS.sub("//***@", text)
