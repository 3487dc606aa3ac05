"""What a deployment allows and hides, in one object every handler receives: the paths it redacts, the limits
of a public server, and how a visitor is named in the log.

Example:
    >>> policy = Policy(limits=PublicLimits(max_new_tokens=64))
    >>> policy.check(GenerationSettings(max_new_tokens=32)).max_new_tokens
    32
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from models import GenerationSettings
from models.settings import PublicLimits

from .privacy import NO_REDACTION, PathRedactor


@dataclass(frozen=True)
class Policy:
    """One deployment's rules for every handler (page, set tab, API).

    Args:
        redact: hides the server's paths from visitors (``NO_REDACTION`` with ``--show-paths``).
        limits: what one request may cost on a public server (``None``: no limits beyond the settings' own).
        visitor: names the visitor of a request in a log line (the fair share's address), ``None``: not named.
    """

    redact: PathRedactor = NO_REDACTION
    limits: PublicLimits | None = None
    visitor: Callable[[Any], str] | None = None

    def who(self, request: Any) -> str | None:
        """The visitor of ``request`` as the log names them, or ``None``."""
        return self.visitor(request) if self.visitor is not None and request is not None else None

    def check(self, settings: GenerationSettings) -> GenerationSettings:
        """``settings`` when this deployment allows them, else a ``SettingsError`` naming the field."""
        return self.limits.check(settings) if self.limits is not None else settings

    def check_set(self, rows: int, settings: GenerationSettings) -> None:
        """Refuse a prompt set of ``rows`` rows that asks more new tokens than this deployment allows (a
        ``SettingsError`` naming the cap and what would fit)."""
        if self.limits is not None:
            self.limits.check_set(rows, settings)

    @property
    def set_seconds(self) -> float | None:
        """The most wall-clock seconds a prompt set may run here (``None``: no cap)."""
        return self.limits.max_set_seconds if self.limits is not None else None
