"""What the store never keeps: endpoint tokens and other credentials, and the server's paths.

The rule, applied to every field the store writes except the visitor's own prompt and answers (which are kept
only when shared or with ``keep_prompts``, and verbatim):

- a mapping key that names a credential (``token``, ``api_key``, ``secret``, ``password``, ``authorization``,
  anything ending in ``_token`` / ``_key`` / ``_secret``...; not ``max_new_tokens``) is **dropped** with its value;
- a value that looks like a credential (``hf_…``, ``sk-…``, ``ghp_…``, a JWT, ``Bearer …``, the user and password
  of a URL, a ``token=`` query value) becomes ``[redacted]``;
- a server path (``/srv/models/x``, ``~/x``, ``C:\\x``, ``file://…``) inside a text becomes ``[path]``; a model
  name that is a path as a whole becomes its last part (``/srv/models/tiny-t5`` → ``tiny-t5``), as the page names it.

Example:
    >>> scrub({"api_key": "sk-abcdefghijklmnopqrstu", "max_new_tokens": 32, "note": "read /srv/m/config.json"})
    {'max_new_tokens': 32, 'note': 'read [path]'}
    >>> model_name("/srv/models/tiny-t5/")
    'tiny-t5'
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"
PATH = "[path]"

CREDENTIAL_KEY = re.compile(
    r"(?:^|[_\-.])(?:token|api[_\-]?key|key|secret|password|passwd|pwd|authorization|auth|bearer|cookie"
    r"|credentials?|private[_\-]?key)$",
    re.IGNORECASE,
)
_CREDENTIAL_VALUES = [
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"),
    re.compile(r"\bhf_[A-Za-z0-9]{16,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),  # a JWT
]
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]+@")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:access_token|token|api_key|apikey|key|secret|password|sig)=)[^&#\s]+")
_PATHS = [
    re.compile(r"(?i)\bfile://[^\s\"'<>]+"),
    re.compile(r"(?<![\w:/.~\-])~?/(?:[\w.@+\-]+/)*[\w.@+\-]+/?"),  # /srv/x, ~/x; not a URL's path, not "a/b"
    re.compile(r"(?<![\w])[A-Za-z]:\\[^\s\"'<>]*"),  # C:\models\x
]


def scrub_text(text: str) -> str:
    """``text`` with credentials replaced by ``[redacted]`` and server paths by ``[path]``."""
    text = _URL_USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, text)
    for pattern in _CREDENTIAL_VALUES:
        text = pattern.sub(REDACTED, text)
    for pattern in _PATHS:
        text = pattern.sub(PATH, text)
    return text


def scrub(value: Any) -> Any:
    """A JSON value with credential keys dropped and every string :func:`scrub_text`-ed (recursively)."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items() if not CREDENTIAL_KEY.search(str(key))}
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    return value


def is_path(text: str) -> bool:
    """Whether ``text`` as a whole is a filesystem path (absolute, home-relative, Windows or ``file://``)."""
    stripped = text.strip()
    return bool(stripped) and any(p.fullmatch(stripped) for p in _PATHS)


def model_name(name: str) -> str:
    """A model's name as the store keeps it: a path becomes its last part; credentials inside are redacted."""
    if is_path(name):
        last = re.split(r"[/\\]", name.strip().rstrip("/\\"))[-1]
        return scrub_text(last) or PATH
    return scrub_text(name)
