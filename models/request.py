"""A request, parsed once where it enters (the page, ``/generate``, the set tab, ``/run_set``) and passed down.

:class:`RunRequest` is one side's run: the validated prompt, the settings, the precision (the older
``load_in_8bit`` flag folded in, float16 refused on a CPU). :class:`SetRequest` is a prompt set's run:
its rows, task, both sides' models and precisions, the settings and the batch size. Each field is
declared once, with its range; a refusal is a :class:`~models.settings.SettingsError` naming the field,
and nothing below the edge parses a precision or validates a prompt again.

Example:
    >>> RunRequest.parse(prompt="Hi", precision="float32").precision.value
    'float32'
    >>> SetRequest.check_batch_size(8.0)
    8
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .loader import check_precision
from .settings import GenerationSettings, Precision, SettingsError, validate_prompt
from .sets.rows import PromptRow, Task
from .sources import ModelSource

MAX_BATCH_SIZE = 64  # rows per generate call at most, when a set names its batch size (0: automatic)


def _refusal(exc: ValidationError) -> SettingsError:
    """The first failure as a :class:`SettingsError` naming its field."""
    first = exc.errors(include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SettingsError):
        return cause
    return SettingsError(".".join(str(part) for part in first["loc"]) or "request", first["msg"])


class RunRequest(BaseModel):
    """One side's run, validated.

    Args:
        prompt: the visitor's text, control characters removed (refused when empty or over the limit).
        settings: the generation settings.
        precision: how the weights are held (auto, float32, bfloat16, float16 on a GPU, 8-bit).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: str
    settings: GenerationSettings = Field(default_factory=GenerationSettings)
    precision: Precision = Precision.AUTO

    @classmethod
    def parse(cls, *, prompt: Any, settings: GenerationSettings | Mapping[str, Any] | None = None,
              precision: Any = Precision.AUTO, load_in_8bit: Any = None, precision_field: str = "precision",
              legacy_field: str = "load_in_8bit") -> "RunRequest":
        """Validate what a visitor sent.

        Raises:
            SettingsError: naming the field that was wrong (``prompt``, a setting, ``precision`` / ``load_in_8bit``).
        """
        checked = validate_prompt(prompt)
        if not isinstance(settings, GenerationSettings):
            settings = GenerationSettings.from_mapping(settings or {})
        chosen = check_precision(precision, load_in_8bit, field=precision_field, legacy_field=legacy_field)
        try:
            return cls(prompt=checked, settings=settings, precision=chosen)
        except ValidationError as exc:
            raise _refusal(exc) from None


class SetRequest(BaseModel):
    """A prompt set's run, validated before anything runs.

    Args:
        name: the set's name (a built-in set's, the uploaded file's, or ``"api"``).
        rows: the validated rows.
        task: decides the scores.
        sources: per side (``"left"``, ``"right"``), the model.
        precision: per side, the precision.
        settings: the settings of both sides (a task prefix reaches whichever side is seq2seq).
        batch_size: rows per ``generate`` call; 0: chosen per model.
        max_seconds: the most wall-clock seconds the set may run (a public server's cap), then it stops keeping
            the rows done; ``None``: no cap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    rows: tuple[PromptRow, ...]
    task: Task
    sources: dict[str, ModelSource]
    precision: dict[str, Precision]
    settings: GenerationSettings
    batch_size: int = Field(0, ge=0, le=MAX_BATCH_SIZE)
    max_seconds: float | None = Field(None, gt=0)

    @staticmethod
    def check_batch_size(value: Any) -> int:
        """``value`` as a whole number within the declared range (a slider's ``8.0`` is 8), else a
        :class:`SettingsError` naming ``batch_size``."""
        field = SetRequest.model_fields["batch_size"]
        low, high = (next(getattr(m, bound) for m in field.metadata if hasattr(m, bound)) for bound in ("ge", "le"))
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SettingsError("batch_size", f"must be a whole number from {low} (automatic) to {high}, got {value!r:.40}")
        return value
